// The CLI writes to its descriptors directly (src/cli/io.ts). A parent that reads through a pipe
// (spawnSync, package managers' script runners) may hand over a non-blocking one: when it fills,
// the rest must still arrive whole and in order (found by the depmod compatibility suite: the
// 18,780 KABI lines of a real tree came out reordered).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../support/kernels.ts';

test('large output through a pipe arrives complete and in order, on stdout and stderr', () => {
  const lines = 40_000;
  const script = `
    const { io } = await import(${JSON.stringify(join(repoRoot, 'src', 'cli', 'io.ts'))});
    for (let i = 0; i < ${lines}; i++) { io.stderr('line ' + i + ' of the findings\\n'); io.stdout('out ' + i + '\\n'); }
    io.stdout(new Uint8Array(1 << 20).fill(0x61));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, maxBuffer: 1 << 28 });
  assert.equal(r.status, 0, r.stderr.toString());
  const err = r.stderr.toString().split('\n');
  assert.equal(err.length, lines + 1);
  err.slice(0, lines).forEach((l, i) => assert.equal(l, `line ${i} of the findings`));
  const out = r.stdout.toString();
  const tail = out.slice(out.length - (1 << 20));
  assert.equal(tail, 'a'.repeat(1 << 20));
  out.slice(0, out.length - (1 << 20)).split('\n').slice(0, lines).forEach((l, i) => assert.equal(l, `out ${i}`));
});
