// A directory changed twice within one clock tick keeps its mtime (file system timestamps are
// coarse: a jiffy), so a listing cached between the two changes looks current. The hint must still
// win: a touched path's directories are listed again. The same tick is simulated by putting the
// directory's mtime back to the value the cache recorded.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { merge } from '../../src/merge/merge.ts';
import { buildModuleElf } from '../support/fixture-elf.ts';
import { depmodConfigArgs, writeFixtureTree } from '../support/fixture-tree.ts';
import { realKernelSkipReason } from '../support/kernels.ts';
import { oracleFilesByLinks } from './oracle-dir.ts';
import { diffFileSets, outputFiles } from './oracle-dir.ts';

const skip = realKernelSkipReason();
const KVER = '6.1.0-racy';

function sameTick(dir: string, before: { atime: Date; mtime: Date }): void {
  utimesSync(dir, before.atime, before.mtime);
}

test('hinted add and remove in a directory whose mtime did not move are still seen', { skip }, async () => {
  const work = mkdtempSync(join(tmpdir(), 'dtx-racy-'));
  try {
    const root = join(work, 'r');
    const moddir = writeFixtureTree(root, KVER, [
      { path: 'kernel/a/base.ko', module: { exports: [{ name: 'base_fn', crc: 1 }] } },
      { path: 'kernel/a/user.ko', module: { imports: [{ name: 'base_fn', crc: 1 }] } },
    ]);
    const cfg = depmodConfigArgs(root, undefined);
    const config = cfg.filter((a) => a !== '-C');
    await merge({ root, kver: KVER, config });
    const dir = join(moddir, 'kernel/a');

    let st = statSync(dir);
    writeFileSync(join(dir, 'late.ko'), buildModuleElf({ imports: [{ name: 'base_fn', crc: 1 }] }));
    sameTick(dir, st);
    const r1 = await merge({ root, kver: KVER, config, hints: [join(dir, 'late.ko')] });
    assert.equal(r1.parsed, 1);
    assert.deepEqual(diffFileSets(outputFiles(moddir), oracleFilesByLinks(root, KVER, cfg)), [], 'added');

    st = statSync(dir);
    unlinkSync(join(dir, 'user.ko'));
    sameTick(dir, st);
    const r2 = await merge({ root, kver: KVER, config, hints: [join(dir, 'user.ko')] });
    assert.equal(r2.removed, 1);
    assert.deepEqual(diffFileSets(outputFiles(moddir), oracleFilesByLinks(root, KVER, cfg)), [], 'removed');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
