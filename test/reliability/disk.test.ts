// Disk full, read-only and permission denied while a commit writes the new database (issue 7): the
// module directory is a small tmpfs we fill, remount read-only, or write as an unprivileged user.
// Each time: exit 74, a message naming the file, the old database byte for byte, no temporaries,
// the journal entry kept; once the disk is fixed, the next commit writes exactly depmod's output.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { merge } from '../../src/merge/merge.ts';
import { readJournal } from '../../src/txn/journal.ts';
import { recordEvents } from '../../src/txn/record.ts';
import { buildModuleElf } from '../support/fixture-elf.ts';
import { depmodConfigArgs, writeFixtureTree } from '../support/fixture-tree.ts';
import { oracleDepmod, repoRoot } from '../support/kernels.ts';
import { diffFileSets, outputFiles } from '../merge/oracle-dir.ts';
import { BIN, cli, syntheticModules, tempFiles } from './crash-support.ts';

const KVER = '6.1.0-disk';

function canMount(): string | undefined {
  const d = mkdtempSync(join(tmpdir(), 'dtx-mnt-probe-'));
  try {
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', d], { encoding: 'utf8' });
    if (r.status !== 0) return `cannot mount a tmpfs here (${(r.stderr || r.error?.message || '').trim()}): needs root in a VM or container with CAP_SYS_ADMIN`;
    spawnSync('umount', [d]);
    return undefined;
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}
const mountSkip = canMount();
if (mountSkip !== undefined && process.env.CI === 'true') throw new Error(mountSkip);

interface Setup {
  root: string;
  moddir: string;
  old: Map<string, Uint8Array>;
  expected: Map<string, Uint8Array>;
}

/** A synthetic kernel whose module directory is a fresh tmpfs; database written; one add pending. */
async function setup(t: TestContext, name: string): Promise<Setup> {
  const work = mkdtempSync(join(tmpdir(), `dtx-disk-${name}-`));
  chmodSync(work, 0o755);
  const root = join(work, 'root');
  const moddir = join(root, 'lib', 'modules', KVER);
  mkdirSync(moddir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', moddir]);
  t.after(() => {
    spawnSync('umount', [moddir]);
    rmSync(work, { recursive: true, force: true });
  });
  writeFixtureTree(root, KVER, syntheticModules(30, 'd', 8));
  await merge({ root, kver: KVER, workers: 1 });
  const old = outputFiles(moddir);
  writeFileSync(join(moddir, 'kernel/drivers/d/extra_new.ko'), buildModuleElf({
    modinfo: Array.from({ length: 40 }, (_, i) => ['alias', `usb:v1234p${i.toString(16).padStart(4, '0')}d*dc*dsc*dp*ic*isc*ip*in*`] as [string, string]),
    exports: [{ name: 'extra_new_sym', crc: 5 }],
    imports: [{ name: 'd_sym_3', crc: 0x1003 }],
  }));
  await recordEvents({ root, op: 'add', package: 'extra', txn: 'tx', paths: [`/lib/modules/${KVER}/kernel/drivers/d/extra_new.ko`] });
  // depmod's answer for the tree as it is now, on a real copy (hard links cannot leave the tmpfs).
  const oracle = join(work, 'oracle');
  execFileSync('cp', ['-a', root, oracle]);
  oracleDepmod(oracle, KVER, depmodConfigArgs(oracle, undefined));
  const expected = outputFiles(join(oracle, 'lib', 'modules', KVER));
  assert.ok(diffFileSets(old, expected).length > 0, 'the pending add changes the database');
  return { root, moddir, old, expected };
}

async function assertRefused(s: Setup, r: ReturnType<typeof cli>, errno: RegExp): Promise<void> {
  assert.equal(r.status, 74, `exit code: ${r.stdout}\n${r.stderr}`);
  // The per-kernel result line (stdout) carries the error, as for every other failure of a kernel.
  assert.match(r.stdout + r.stderr, new RegExp(`FAILED.*${s.moddir}/modules\\.[a-z.]+`), 'the message names the file');
  assert.match(r.stdout + r.stderr, errno);
  assert.deepEqual(diffFileSets(outputFiles(s.moddir), s.old), [], 'old database intact');
  assert.deepEqual(tempFiles(s.moddir), [], 'no temporaries left behind');
  assert.equal((await readJournal(s.root)).events.length, 1, 'journal entry kept');
}

async function assertRecovered(s: Setup): Promise<void> {
  const r = cli(['commit', '-b', s.root]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(diffFileSets(outputFiles(s.moddir), s.expected), [], 'after the fix: equals depmod');
  assert.equal((await readJournal(s.root)).events.length, 0);
}

test('ENOSPC while writing the new database: exit 74, old database intact, journal kept', { skip: mountSkip ?? false }, async (t) => {
  const s = await setup(t, 'enospc');
  // Leave 8 KiB: the first temporaries fit, a later one does not, so the cleanup of written ones is exercised.
  const st = statfsSync(s.moddir);
  const free = Number(st.bavail) * Number(st.bsize);
  const filler = join(s.moddir, 'filler');
  writeFileSync(filler, Buffer.alloc(Math.max(0, free - 8192)));
  const r = cli(['commit', '-b', s.root]);
  await assertRefused(s, r, /ENOSPC|no space/i);
  rmSync(filler);
  await assertRecovered(s);
});

test('EROFS (module directory remounted read-only): exit 74, old database intact, journal kept', { skip: mountSkip ?? false }, async (t) => {
  const s = await setup(t, 'erofs');
  execFileSync('mount', ['-o', 'remount,ro', s.moddir]);
  const r = cli(['commit', '-b', s.root]);
  await assertRefused(s, r, /EROFS|read-only/i);
  execFileSync('mount', ['-o', 'remount,rw', s.moddir]);
  await assertRecovered(s);
});

test('EACCES (commit run by a user who may not write the module directory): exit 74, old database intact', { skip: mountSkip ?? false }, async (t) => {
  const s = await setup(t, 'eacces');
  // The state directories are the user's, the module directory stays root's 0755.
  execFileSync('chown', ['-R', 'nobody', join(s.root, 'var')]);
  const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--', process.execPath, '--import', 'tsx', BIN, 'commit', '-b', s.root], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, HOME: '/nonexistent', DEPMOD_TX_CRASH_AT: '' },
  });
  assert.notEqual(r.error?.message ?? '', 'spawnSync setpriv ENOENT', 'setpriv (util-linux) is needed');
  await assertRefused(s, r, /EACCES|permission denied/i);
  execFileSync('chown', ['-R', 'root', join(s.root, 'var')]);
  await assertRecovered(s);
});
