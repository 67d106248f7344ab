// A module file that cannot be read is kmod's "failed to load symbols from PATH: strerror" (a
// record with loadError), not a stop; a file that is gone stays an error outcome (the merge starts
// over from a fresh listing, src/merge/merge.ts vanished); a decompression bomb is "File too large".
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseBatch } from '../../src/io/parse-batch.ts';
import type { ParseOutcome } from '../../src/io/parse-outcome.ts';
import { buildModuleElf } from '../support/fixture-elf.ts';

const CHILD = fileURLToPath(new URL('./parse-batch-child.ts', import.meta.url));

function loadError(o: ParseOutcome | undefined): string | undefined {
  assert.ok(o?.ok, `expected a record, got ${JSON.stringify(o)}`);
  return o.record.loadError;
}

test('read errors: a directory is EISDIR, a missing file an error outcome (ENOENT), a good file a record', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dtx-parsebatch-'));
  try {
    mkdirSync(join(dir, 'dir.ko'));
    writeFileSync(join(dir, 'good.ko'), buildModuleElf({ modinfo: [['alias', 'x']] }));
    const [isDir, gone, good] = await parseBatch(['dir.ko', 'gone.ko', 'good.ko'].map((f) => ({ abs: join(dir, f), display: f })));
    assert.equal(loadError(isDir), 'Is a directory');
    assert.ok(isDir?.ok && isDir.record.name === 'dir' && isDir.record.modinfo.length === 0);
    assert.deepEqual(gone?.ok === false ? [gone.kind, gone.errno] : gone, ['io', 'ENOENT']);
    assert.equal(loadError(good), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file its reader may not open is EACCES, "Permission denied" as depmod prints it', () => {
  const asRoot = process.getuid?.() === 0;
  const setpriv = spawnSync('sh', ['-c', 'command -v setpriv'], { encoding: 'utf8' }).stdout.trim();
  if (asRoot && setpriv === '') {
    if (process.env.CI === 'true') assert.fail('CI=true: running as root needs setpriv(1) to read as another user');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'dtx-parsebatch-perm-'));
  try {
    chmodSync(dir, 0o755);
    const file = join(dir, 'locked.ko');
    writeFileSync(file, buildModuleElf({}));
    chmodSync(file, 0o000);
    const argv = [...(asRoot ? [setpriv, '--reuid=65534', '--regid=65534', '--clear-groups'] : []), process.execPath, '--import', 'tsx', CHILD, file];
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', cwd: fileURLToPath(new URL('../..', import.meta.url)) });
    assert.equal(r.status, 0, r.stderr);
    const [o] = JSON.parse(r.stdout) as ParseOutcome[];
    assert.equal(loadError(o), 'Permission denied');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a decompression bomb over the cap is EFBIG ("File too large"): kmod would try, depmod-tx does not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dtx-parsebatch-bomb-'));
  try {
    // One zstd frame without a content size, 2,100 RLE blocks of 128 KiB: 262 MiB from 6 KiB.
    const blocks = 2100;
    const b = new Uint8Array(6 + blocks * 4);
    b.set([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58]);
    for (let i = 0; i < blocks; i++) {
      const h = ((128 * 1024) << 3) | (1 << 1) | (i === blocks - 1 ? 1 : 0);
      b.set([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff, 0], 6 + i * 4);
    }
    writeFileSync(join(dir, 'bomb.ko.zst'), b);
    const [o] = await parseBatch([{ abs: join(dir, 'bomb.ko.zst'), display: 'bomb.ko.zst' }]);
    assert.equal(loadError(o), 'File too large');
    assert.match((o?.ok && o.record.loadDetail) || '', /exceeds 268435456 bytes/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
