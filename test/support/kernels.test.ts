// recompressedKernel on a tree that ships compressed modules (as Debian 13's 6.12 does, .ko.xz): the
// bench's .ko and .ko.zst variants must hold the same modules, byte for byte once decompressed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { recompressedKernel, shippedCompression, type RealKernel } from './kernels.ts';

function missingTools(): string | false {
  const missing = ['xz', 'zstd'].filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0);
  if (missing.length === 0) return false;
  if (process.env.CI === 'true') throw new Error(`CI=true but ${missing.join(', ')} missing (.ci/run installs xz-utils and zstd)`);
  return `needs ${missing.join(', ')}`;
}

/** Every file under dir, relative, sorted. */
function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

describe('recompressedKernel of a tree shipping .ko.xz', { skip: missingTools() }, () => {
  it('makes .ko and .ko.zst trees holding the same modules, leaves the shipped tree alone, and reuses what it made', () => {
    const base = mkdtempSync(join(tmpdir(), 'dtx-recompress-'));
    try {
      const kver = '6.12.0-test';
      const root = join(base, 'root');
      const moddir = join(root, 'lib', 'modules', kver);
      const modules: Record<string, Buffer> = {
        'kernel/drivers/a.ko': Buffer.from('\x7fELF module a, not parsed here'),
        'kernel/drivers/sub/b.ko': Buffer.alloc(70_000, 7),
      };
      for (const [rel, bytes] of Object.entries(modules)) {
        mkdirSync(join(moddir, rel, '..'), { recursive: true });
        writeFileSync(join(moddir, rel), bytes);
        execFileSync('xz', ['--check=crc32', join(moddir, rel)]);
      }
      writeFileSync(join(moddir, 'modules.order'), 'kernel/drivers/a.ko\nkernel/drivers/sub/b.ko\n');
      const k: RealKernel = { kver, root, moddir, symvers: '' };
      const shipped = files(moddir);
      assert.equal(shippedCompression(k), 'xz');
      assert.equal(recompressedKernel(k, 'xz'), k);

      const plain = recompressedKernel(k, 'none');
      assert.equal(plain.root, join(base, 'root-none'));
      assert.deepEqual(files(plain.moddir), ['kernel/drivers/a.ko', 'kernel/drivers/sub/b.ko', 'modules.order']);
      for (const [rel, bytes] of Object.entries(modules)) assert.ok(readFileSync(join(plain.moddir, rel)).equals(bytes), rel);

      const zst = recompressedKernel(k, 'zst');
      assert.deepEqual(files(zst.moddir), ['kernel/drivers/a.ko.zst', 'kernel/drivers/sub/b.ko.zst', 'modules.order']);
      for (const [rel, bytes] of Object.entries(modules)) assert.ok(execFileSync('zstd', ['-dc', join(zst.moddir, `${rel}.zst`)]).equals(bytes), rel);
      assert.equal(shippedCompression(zst), 'zst');

      assert.deepEqual(files(moddir), shipped, 'the shipped tree is untouched');
      // Made once: a second call finds the .complete mark and does not recompress.
      rmSync(join(zst.moddir, 'kernel/drivers/a.ko.zst'));
      recompressedKernel(k, 'zst');
      assert.deepEqual(files(zst.moddir), ['kernel/drivers/sub/b.ko.zst', 'modules.order']);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('says so when a tree has no module file', () => {
    const base = mkdtempSync(join(tmpdir(), 'dtx-recompress-'));
    try {
      mkdirSync(join(base, 'lib', 'modules', 'x'), { recursive: true });
      assert.throws(() => shippedCompression({ kver: 'x', root: base, moddir: join(base, 'lib', 'modules', 'x'), symvers: '' }), /no module file .* under /);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
