// A module file that disappears between the merge's listing and its read (another program is
// changing the tree): the merge starts over from a fresh listing and the result equals depmod -a of
// the tree as it ends up; a file that keeps vanishing fails the merge with a typed I/O error naming
// it, nothing written. The vanishing is simulated inside fs.statSync (the merge's fingerprint read).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { IoError } from '../../src/errors.ts';
import { merge } from '../../src/merge/merge.ts';
import { depmodConfigArgs, writeFixtureTree, type FixtureTreeModule } from '../support/fixture-tree.ts';
import { realKernelSkipReason } from '../support/kernels.ts';
import { diffFileSets, oracleFiles, outputFiles } from './oracle-dir.ts';

const skip = realKernelSkipReason(); // needs Debian's depmod
const KVER = '6.1.0-vanish';

const base: FixtureTreeModule[] = [
  { path: 'kernel/lib/core.ko', module: { exports: [{ name: 'core_fn', crc: 1 }] } },
  { path: 'kernel/drivers/a.ko', module: { modinfo: [['alias', 'pci:v1d2*']], imports: [{ name: 'core_fn', crc: 1 }] } },
];
const added: FixtureTreeModule[] = [
  { path: 'updates/gone.ko', module: { modinfo: [['alias', 'usb:vGONE*']], imports: [{ name: 'core_fn', crc: 1 }] } },
  { path: 'updates/kept.ko', module: { modinfo: [['alias', 'usb:vKEPT*']], imports: [{ name: 'core_fn', crc: 1 }] } },
];

/** Runs fn with fs.statSync replaced for paths ending in `suffix`; returns how often that happened. */
async function withStatHook<T>(suffix: string, onStat: (path: string) => never, fn: () => Promise<T>): Promise<{ value: T | undefined; error: unknown; hits: number }> {
  const real = fs.statSync;
  const writable = fs as { statSync: typeof fs.statSync };
  let hits = 0;
  writable.statSync = ((p: fs.PathLike, o?: fs.StatSyncOptions) => {
    if (String(p).endsWith(suffix)) {
      hits++;
      onStat(String(p));
    }
    return real(p, o);
  }) as typeof fs.statSync;
  syncBuiltinESMExports();
  try {
    return { value: await fn(), error: undefined, hits };
  } catch (error) {
    return { value: undefined, error, hits };
  } finally {
    writable.statSync = real;
    syncBuiltinESMExports();
  }
}

function enoent(path: string): Error {
  return Object.assign(new Error(`ENOENT: no such file or directory, stat '${path}'`), { code: 'ENOENT', path });
}

test('a module vanishing under the merge: the merge starts over and equals depmod; one that keeps vanishing is an I/O error, nothing written', { skip }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'dtx-vanish-'));
  try {
    const moddir = join(root, 'lib', 'modules', KVER);
    writeFixtureTree(root, KVER, base);
    await merge({ root, kver: KVER, workers: 0 });
    writeFixtureTree(root, KVER, added);
    const hints = added.map((m) => `/lib/modules/${KVER}/${m.path}`);

    // Deleted just as the merge reads it, once.
    let deleted = false;
    const r1 = await withStatHook('updates/gone.ko', (p) => {
      if (deleted) throw new Error('the retry listed the deleted file again');
      deleted = true;
      fs.unlinkSync(p);
      throw enoent(p);
    }, () => merge({ root, kver: KVER, hints, workers: 0 }));
    assert.equal(r1.error, undefined, String(r1.error));
    assert.equal(r1.hits, 1);
    assert.ok(!fs.existsSync(join(moddir, 'updates/gone.ko')));
    assert.equal(r1.value!.modules, 3);
    assert.deepEqual(diffFileSets(outputFiles(moddir), oracleFiles(root, KVER, depmodConfigArgs(root, undefined))), []);

    // Vanishing on every read (a tree that keeps changing): typed error naming the file, outputs untouched.
    writeFixtureTree(root, KVER, [added[0]!]);
    const before = outputFiles(moddir);
    const r2 = await withStatHook('updates/gone.ko', (p) => {
      throw enoent(p);
    }, () => merge({ root, kver: KVER, hints, workers: 0 }));
    assert.ok(r2.error instanceof IoError, String(r2.error));
    assert.equal((r2.error as IoError).kind, 'io');
    assert.match((r2.error as Error).message, /^updates\/gone\.ko: module file vanished while merging/);
    assert.equal(r2.hits, 3, 'first try and two retries');
    assert.deepEqual(diffFileSets(outputFiles(moddir), before), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
