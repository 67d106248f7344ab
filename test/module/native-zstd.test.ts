// The runtime's own zstd (Node 22.15+): on such a runtime .ko.zst modules are decompressed
// in-process (src/module/decompress.ts) and the zstd(1) batches are not used. The host's node may
// be older, so a Node 22 is fetched (test/support/node-builtin-zstd.ts) and runs: every module of
// the cloud kernel recompressed with zstd decompresses to the shipped bytes, damaged and oversized
// streams give typed errors, and a rebuild of that tree equals Debian's depmod -a, file for file.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { nodeWithBuiltinZstd } from '../support/node-builtin-zstd.ts';
import { DEPMOD_OUTPUTS, oracleOutput, realKernel, realKernelSkipReason, recompressedKernel, repoRoot } from '../support/kernels.ts';

const skipKernels = realKernelSkipReason();
const runtime = skipKernels ? { reason: skipKernels } : nodeWithBuiltinZstd();
const skip = 'reason' in runtime ? runtime.reason : false;

test('Node with zlib zstd: cloud .ko.zst tree decompressed in-process equals the shipped modules; errors typed; rebuild equals depmod', { skip, timeout: 600_000 }, () => {
  const node = (runtime as { node: string }).node;
  const plain = realKernel('cloud-amd64');
  const zst = recompressedKernel(plain, 'zst');
  const child = spawnSync(node, ['--import', 'tsx', join(repoRoot, 'test/module/native-zstd-child.ts'), zst.moddir, plain.moddir], {
    cwd: repoRoot,
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  assert.equal(child.status, 0, child.stderr);
  const r = JSON.parse(child.stdout.trim().split('\n').pop()!);
  assert.equal(r.native, true, 'the child runtime has zlib.zstdDecompressSync');
  assert.ok(r.files > 1000, `${r.files} .ko.zst files`);
  assert.deepEqual(r.differ, []);
  assert.equal(r.same, r.files);
  assert.match(r.overCap, /^x\.ko\.zst: decompressed module exceeds 1000 bytes/);
  assert.match(r.corrupt, /^x\.ko\.zst: corrupt zstd stream/);
  assert.match(r.truncated, /^x\.ko\.zst: corrupt zstd stream/);

  const out = mkdtempSync(join(tmpdir(), 'dtx-zstd22-'));
  try {
    const rb = spawnSync(node, ['--import', 'tsx', join(repoRoot, 'src/cli/bin.ts'), 'rebuild', '--root', zst.root, '--outdir', out, '--json', zst.kver], {
      cwd: repoRoot,
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    assert.equal(rb.status, 0, rb.stderr);
    assert.equal(JSON.parse(rb.stdout).modules, r.files);
    const oracle = oracleOutput(zst, 'zst');
    for (const f of DEPMOD_OUTPUTS) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(oracle, f))), `${f} differs from depmod's`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
