// Writes the documents rendered from the command table (src/cli/docs.ts):
//   --out DIR   DIR/depmod-tx.1 (man page) and DIR/depmod-tx.bash-completion (npm run build: dist/)
//   --readme    rewrites README.md's generated blocks (options, exit codes, files); a test fails
//               when they are stale
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pkg from '../package.json' with { type: 'json' };
import { renderBashCompletion, renderManPage, updateReadme } from '../src/cli/docs.ts';

const repo = resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const outAt = args.indexOf('--out');
if (outAt >= 0) {
  const out = resolve(args[outAt + 1] ?? 'dist');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'depmod-tx.1'), renderManPage(pkg.version));
  writeFileSync(join(out, 'depmod-tx.bash-completion'), renderBashCompletion());
}
if (args.includes('--readme')) {
  const file = join(repo, 'README.md');
  writeFileSync(file, updateReadme(readFileSync(file, 'utf8')));
}
if (outAt < 0 && !args.includes('--readme')) {
  console.error('usage: node --import tsx scripts/docs.ts [--out DIR] [--readme]');
  process.exit(64);
}
