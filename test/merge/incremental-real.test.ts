// Incremental merges on Debian's real 4,023-module amd64 tree (plain and .ko.xz): after every step
// of a package-transaction-like sequence the module directory holds exactly the files Debian's
// depmod -a writes for the tree as it now is, and only the changed files were parsed. The steps
// include both failures of kmod's `depmod -I` (pull request 253): a module replaced in place at
// the same path, and the removal of a set of modules that is not closed under their users.
//
// The work tree is a real copy (not hard links): other tests clone the same pristine tree with
// cp -al at any time, which changes the ctime of every shared inode and would make the cache
// (rightly) distrust files. The oracle runs on a symlink farm for the same reason.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { cacheFile } from '../../src/cache/store.ts';
import { merge, type MergeOptions, type MergeResult } from '../../src/merge/merge.ts';
import { buildModuleElf } from '../support/fixture-elf.ts';
import { compressForPath } from '../support/fixture-tree.ts';
import { realKernel, realKernelSkipReason, recompressedKernel, type RealKernel } from '../support/kernels.ts';
import { oracleFilesByLinks } from './oracle-dir.ts';
import { diffFileSets, outputFiles } from './oracle-dir.ts';

const skip = realKernelSkipReason();

/** Every module file under dir (relative to base), sorted. */
function modulesUnder(base: string, rel: string): string[] {
  const out: string[] = [];
  const walk = (r: string): void => {
    for (const e of readdirSync(join(base, r), { withFileTypes: true })) {
      const p = `${r}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (/\.ko(\.xz|\.zst|\.gz)?$/.test(e.name)) out.push(p);
    }
  };
  walk(rel);
  return out.sort();
}

function outputStats(moddir: string): string {
  return [...outputFiles(moddir).keys()]
    .sort()
    .map((f) => {
      const st = statSync(join(moddir, f), { bigint: true });
      return `${f}:${st.ino}:${st.mtimeNs}`;
    })
    .join('\n');
}

type StepName = 'add10' | 'addSet' | 'removeSet' | 'readdSet' | 'replaceHint' | 'replaceScan' | 'updatesAdd' | 'updatesRemove' | 'noop';

async function scenario(k: RealKernel, steps: readonly StepName[]): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'dtx-incr-real-'));
  const root = join(work, 'r');
  const stash = join(work, 'stash');
  const timings: string[] = [];
  try {
    execFileSync('cp', ['-a', '--reflink=auto', k.root, root]);
    const moddir = join(root, 'lib', 'modules', k.kver);
    const sfx = existsSync(join(moddir, 'kernel/lib/libcrc32c.ko.xz')) ? '.ko.xz' : '.ko';
    // Ten leaf modules, and the ~730 of drivers/net and sound, whose users live elsewhere.
    const ten = modulesUnder(moddir, 'kernel/fs/nls').filter((p) => p.includes('/mac-')).slice(0, 10);
    const setDirs = ['kernel/drivers/net', 'kernel/sound'];
    const set = setDirs.flatMap((d) => modulesUnder(moddir, d));
    assert.equal(ten.length, 10);
    assert.ok(set.length > 700, `drivers/net + sound: ${set.length} modules`);

    const base: Omit<MergeOptions, 'hints'> = { root, kver: k.kver, config: [] };
    const checkStep = (what: string, r: MergeResult, expect: { parsed: number; removed?: number }): void => {
      const t0 = performance.now();
      const theirs = oracleFilesByLinks(root, k.kver);
      timings.push(`${what}: merge ${Math.round(r.ms)} ms, oracle ${Math.round(performance.now() - t0)} ms`);
      assert.deepEqual(diffFileSets(outputFiles(moddir), theirs), [], `${k.kver} ${what}: files differ from depmod -a`);
      assert.equal(r.parsed, expect.parsed, `${what}: parsed`);
      if (expect.removed !== undefined) assert.equal(r.removed, expect.removed, `${what}: removed`);
      assert.equal(r.fullReason, undefined, `${what}: the cache should have been used`);
    };
    const stashOut = (rels: string[]): void => {
      for (const p of rels) {
        mkdirSync(dirname(join(stash, p)), { recursive: true });
        renameSync(join(moddir, p), join(stash, p));
      }
    };
    const stashIn = (rels: string[]): void => {
      for (const p of rels) {
        mkdirSync(dirname(join(moddir, p)), { recursive: true });
        renameSync(join(stash, p), join(moddir, p));
      }
    };
    const abs = (rels: string[]): string[] => rels.map((p) => join(moddir, p));

    // Setup: the ten (and the set, when a step adds it) are not installed yet; full parse.
    const setStartsOut = steps.includes('addSet');
    stashOut(ten);
    if (setStartsOut) stashOut(set);
    const total = readFileSync(join(moddir, 'modules.order'), 'latin1').split('\n').length - 1;
    const r0 = await merge(base);
    assert.equal(r0.fullReason, 'no module cache yet');
    assert.equal(r0.parsed, r0.modules);
    assert.ok(r0.modules < total);
    timings.push(`setup: full merge of ${r0.modules} modules ${Math.round(r0.ms)} ms`);
    assert.deepEqual(diffFileSets(outputFiles(moddir), oracleFilesByLinks(root, k.kver)), [], 'setup');

    // The module replaced in place: its own inode (not shared with anything), known to the cache.
    const victim = `kernel/lib/libcrc32c${sfx}`;
    const original = readFileSync(join(moddir, victim));

    for (const step of steps) {
      switch (step) {
        case 'add10': {
          stashIn(ten);
          checkStep(step, await merge({ ...base, hints: abs(ten) }), { parsed: 10, removed: 0 });
          break;
        }
        case 'addSet':
        case 'readdSet': {
          stashIn(set);
          checkStep(step, await merge({ ...base, hints: abs(set) }), { parsed: set.length, removed: 0 });
          break;
        }
        case 'removeSet': {
          stashOut(set);
          // Their users (elsewhere in the tree) stay, and must lose these dependencies.
          checkStep(step, await merge({ ...base, hints: abs(set) }), { parsed: 0, removed: set.length });
          break;
        }
        case 'replaceHint': {
          // Same path, same inode, other content: exports crc32c with another CRC and gains a
          // dependency on crc-itu-t, so its users' lines and its own line change.
          const ino = statSync(join(moddir, victim)).ino;
          const fake = buildModuleElf({
            modinfo: [['license', 'GPL'], ['alias', 'crypto-crc32c-replaced']],
            exports: [{ name: 'crc32c', crc: 0x0badcafe }, { name: 'crc32c_replaced_extra', crc: 0x12345678 }],
            imports: [{ name: 'crc_itu_t', crc: 0 }, { name: '_printk', crc: 0 }],
          });
          writeFileSync(join(moddir, victim), compressForPath(victim, fake));
          assert.equal(statSync(join(moddir, victim)).ino, ino, 'replaced in place');
          checkStep(step, await merge({ ...base, hints: abs([victim]) }), { parsed: 1, removed: 0 });
          break;
        }
        case 'replaceScan': {
          // The original bytes back, in place, behind the package manager's back: no hint, and the
          // directory mtime does not change; only --full-scan finds it.
          writeFileSync(join(moddir, victim), original);
          checkStep(step, await merge({ ...base, fullScan: true }), { parsed: 1, removed: 0 });
          break;
        }
        case 'updatesAdd': {
          const from = `kernel/fs/btrfs/btrfs${sfx}`;
          mkdirSync(join(moddir, 'updates'), { recursive: true });
          copyFileSync(join(moddir, from), join(moddir, `updates/btrfs${sfx}`));
          // The updates/ copy wins; the kernel/ copy stays on disk but leaves the database.
          checkStep(step, await merge({ ...base, hints: abs([`updates/btrfs${sfx}`]) }), { parsed: 1 });
          break;
        }
        case 'updatesRemove': {
          unlinkSync(join(moddir, `updates/btrfs${sfx}`));
          // The kernel/ copy is back; the cache held only the winner, so it is parsed again.
          checkStep(step, await merge({ ...base, hints: abs([`updates/btrfs${sfx}`]) }), { parsed: 1 });
          break;
        }
        case 'noop': {
          const before = outputStats(moddir);
          const cache = statSync(cacheFile(root, k.kver), { bigint: true });
          const r = await merge(base);
          timings.push(`noop: ${r.ms.toFixed(1)} ms`);
          assert.equal(r.noop, true);
          assert.equal(r.parsed, 0);
          assert.deepEqual(r.written, []);
          assert.equal(outputStats(moddir), before, 'no output file rewritten');
          const after = statSync(cacheFile(root, k.kver), { bigint: true });
          assert.deepEqual([after.ino, after.mtimeNs, after.size], [cache.ino, cache.mtimeNs, cache.size], 'cache untouched');
          break;
        }
      }
    }
  } finally {
    console.log(`${k.kver} ${k.root.endsWith('root-xz') ? 'xz' : 'plain'}:\n  ${timings.join('\n  ')}`);
    rmSync(work, { recursive: true, force: true });
  }
}

test('amd64 plain: add 10, add drivers/net+sound, remove them (users stay), re-add, replace in place (hint, full scan), updates/ copy in and out, no-op', { skip }, async () => {
  await scenario(realKernel('amd64'), ['add10', 'addSet', 'removeSet', 'readdSet', 'replaceHint', 'replaceScan', 'updatesAdd', 'updatesRemove', 'noop']);
});

test('amd64 .ko.xz: add 10, replace in place, no-op', { skip }, async () => {
  await scenario(recompressedKernel(realKernel('amd64'), 'xz'), ['add10', 'replaceHint', 'noop']);
});
