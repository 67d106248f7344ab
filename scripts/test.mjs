// Runs every test/**/*.test.ts with Node's built-in runner (tsx strips the types).
// Node 20's --test does not expand globs, so the file list is built here.
// DEPMOD_TX_TEST_FILTER=substring limits the run to matching files.
// The bundle (dist/) is built once first: CLI tests run it (test/support/cli.ts), and no test file
// may rebuild it while others run (e2e packaging passes --no-build).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const built = spawnSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
if (built.status !== 0) process.exit(built.status ?? 1);

function walk(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const filter = process.env.DEPMOD_TX_TEST_FILTER ?? '';
const files = walk('test').filter((f) => f.includes(filter)).sort();
const args = ['--import', 'tsx', '--test', '--test-reporter=spec', ...process.argv.slice(2), ...files];
const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(r.status ?? 1);
