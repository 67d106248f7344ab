// Crash injection (issue 7): `depmod-tx commit` on a real kernel tree with pending journal events is
// SIGKILLed at every step that touches disk (DEPMOD_TX_CRASH_AT, src/io/atomic.ts crashPoint). After
// each kill: every modules.* file is wholly the old or wholly the new version, the journal still
// holds the kernel's events unless the database is wholly new, the other kernel's event is never
// lost, and one more commit gives exactly what Debian's depmod writes for the changed tree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { merge } from '../../src/merge/merge.ts';
import { commit } from '../../src/txn/commit.ts';
import { journalDir, readJournal } from '../../src/txn/journal.ts';
import { updateMerge } from '../../src/txn/merge-adapter.ts';
import { recordEvents } from '../../src/txn/record.ts';
import { writeLastResults } from '../../src/txn/status.ts';
import { cloneRoot, realKernel, realKernelSkipReason } from '../support/kernels.ts';
import { diffFileSets, oracleFiles, outputFiles } from '../merge/oracle-dir.ts';
import { cli, tempFiles } from './crash-support.ts';

const OTHER = '6.1.0-99-other';

/** A clone whose state directory is a real copy: journal appends must never reach the base's inodes. */
function restore(base: string, dst: string): void {
  cloneRoot(base, dst);
  rmSync(join(dst, 'var'), { recursive: true, force: true });
  execFileSync('cp', ['-a', join(base, 'var'), join(dst, 'var')]);
}

test('commit SIGKILLed at each of >= 50 disk steps: files old-or-new, journal kept, next commit equals depmod', { skip: realKernelSkipReason() ?? false, timeout: 600_000 }, async (t) => {
  const k = realKernel('cloud-amd64');
  const work = mkdtempSync(join(tmpdir(), 'dtx-crash-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const base = join(work, 'base');
  cloneRoot(k.root, base);
  const moddirRel = join('lib', 'modules', k.kver);
  await merge({ root: base, kver: k.kver, symvers: 'auto', workers: 2 });
  const OLD = outputFiles(join(base, moddirRel));

  // The transaction: remove cuse (devname), cifs (softdep), crc7 (exports symbols), two net drivers;
  // move a third to updates/.
  const md = join(base, moddirRel);
  const nets = readdirSync(join(md, 'kernel/drivers/net')).filter((f) => f.endsWith('.ko')).sort();
  const [n1, n2, moved] = nets as [string, string, string];
  const removed = ['kernel/fs/fuse/cuse.ko', 'kernel/fs/smb/client/cifs.ko', 'kernel/lib/crc7.ko', `kernel/drivers/net/${n1}`, `kernel/drivers/net/${n2}`, `kernel/drivers/net/${moved}`];
  for (const r of removed.slice(0, -1)) unlinkSync(join(md, r));
  mkdirSync(join(md, 'updates'));
  renameSync(join(md, `kernel/drivers/net/${moved}`), join(md, 'updates', moved));
  const sys = (rel: string) => `/lib/modules/${k.kver}/${rel}`;
  await recordEvents({ root: base, op: 'remove', package: 'p1', txn: 'tx1', paths: removed.map(sys) });
  // A half-written line, as a recorder killed mid-append leaves it: it must end in rejected/, not vanish.
  appendFileSync(join(journalDir(base), 'tx1.jsonl'), '{"op":"add","path":"/lib/mod');
  await recordEvents({ root: base, op: 'add', package: 'p2', txn: 'tx2', paths: [sys(`updates/${moved}`)] });
  await recordEvents({ root: base, op: 'add', package: 'p3', txn: 'tx2', paths: [`/lib/modules/${OTHER}/extra/x.ko`] });
  const before = await readJournal(base);
  const ourIds = before.events.filter((e) => e.module.kver === k.kver).map((e) => e.id).sort();
  const otherIds = before.events.filter((e) => e.module.kver === OTHER).map((e) => e.id);
  assert.equal(ourIds.length, 7);
  assert.equal(otherIds.length, 1);

  // The uncrashed run gives the new set, which must be depmod's.
  const NEW = oracleFiles(base, k.kver);
  const ref = join(work, 'ref');
  restore(base, ref);
  const r0 = cli(['commit', '-b', ref, '--kernel', k.kver, '--json']);
  assert.equal(r0.status, 0, r0.stderr);
  assert.deepEqual(diffFileSets(outputFiles(join(ref, moddirRel)), NEW), [], 'uncrashed commit vs depmod');
  const changed = (JSON.parse(r0.stdout) as { kernels: Array<{ files: string[] }> }).kernels[0]!.files;
  for (const f of changed) assert.ok(Buffer.compare(Buffer.from(OLD.get(f) ?? []), Buffer.from(NEW.get(f)!)) !== 0, `${f} reported changed`);

  const journalLock = 'lock:acquired:journal.lock';
  const points = [
    `${journalLock}#1`,
    `lock:acquired:${k.kver}.lock`,
    `${journalLock}#2`,
    ...changed.flatMap((f) => [`before-temp:${f}`, `after-temp:${f}`]),
    ...changed.flatMap((f) => [`before-rename:${f}`, `after-rename:${f}`]),
    'before-dir-fsync',
    'after-outputs',
    'before-cache-temp',
    'before-cache-rename',
    'cache:before-dir-fsync',
    `commit:after-merge:${k.kver}`,
    `${journalLock}#3`,
    'journal:before-reject:tx1.jsonl',
    'journal:before-unlink:tx1.jsonl',
    'journal:before-rewrite-temp:tx2.jsonl',
    'journal:before-rewrite-rename:tx2.jsonl',
    'journal:before-dir-fsync',
    `commit:after-remove:${k.kver}`,
    `${journalLock}#4`,
    'status:before-temp',
    'status:before-rename',
    'status:before-dir-fsync',
  ];
  t.diagnostic(`${points.length} kill points, ${changed.length} changed outputs: ${changed.join(' ')}`);
  assert.ok(points.length >= 50, `only ${points.length} kill points`);
  assert.equal(new Set(points).size, points.length);

  const firstRemoval = points.indexOf('journal:before-unlink:tx1.jsonl');
  const w = join(work, 'w');
  const problems: string[] = [];
  for (const [i, point] of points.entries()) {
    restore(base, w);
    const r = cli(['commit', '-b', w, '--kernel', k.kver], { crashAt: point });
    if (r.signal !== 'SIGKILL') {
      problems.push(`${point}: not reached (exit ${r.status}): ${r.stderr.slice(0, 300)}`);
      continue;
    }
    const moddir = join(w, moddirRel);
    const now = outputFiles(moddir);
    let allNew = true;
    for (const name of new Set([...OLD.keys(), ...NEW.keys()])) {
      const cur = now.get(name);
      const o = OLD.get(name), n = NEW.get(name);
      const isOld = cur !== undefined && o !== undefined && Buffer.compare(Buffer.from(cur), Buffer.from(o)) === 0;
      const isNew = cur !== undefined && n !== undefined && Buffer.compare(Buffer.from(cur), Buffer.from(n)) === 0;
      if (!isOld && !isNew) problems.push(`${point}: ${name} is neither old nor new (${cur?.length ?? 'missing'} bytes)`);
      if (!isNew) allNew = false;
    }
    const j = await readJournal(w);
    const ids = j.events.filter((e) => e.module.kver === k.kver).map((e) => e.id).sort();
    if (j.events.filter((e) => e.module.kver === OTHER).length !== 1) problems.push(`${point}: the other kernel's event was lost or duplicated`);
    // Events leave the journal file by file after the merge, so a kill between two files leaves some:
    // allowed only once the database is wholly new (a repeated merge of the same paths is a no-op).
    if (ids.length < ourIds.length && !allNew) problems.push(`${point}: ${ourIds.length - ids.length} event(s) gone but the database is not wholly new`);
    if (ids.some((id) => !ourIds.includes(id))) problems.push(`${point}: unknown events in the journal`);
    if (i < firstRemoval && ids.length === 0) problems.push(`${point}: events removed before the removal step`);

    // Recovery: one more commit (in-process, the same code) → exactly depmod's output, nothing left behind.
    const s = await commit({ root: w, merge: updateMerge({ workers: 2 }), kernels: [k.kver], lockTimeoutMs: 20_000 });
    if (s.kernels.some((x) => x.status === 'failed')) problems.push(`${point}: recovery commit failed: ${JSON.stringify(s.kernels)}`);
    const d = diffFileSets(outputFiles(moddir), NEW);
    if (d.length > 0) problems.push(`${point}: after recovery: ${d.join('; ')}`);
    const j2 = await readJournal(w);
    if (j2.events.length !== 1 || j2.events[0]?.module.kver !== OTHER) problems.push(`${point}: journal after recovery holds ${j2.events.length} events`);
    const temps = [...tempFiles(moddir), ...tempFiles(join(w, 'var/cache')), ...tempFiles(join(w, 'var/lib')).filter((f) => !f.includes('.status.json.'))];
    if (temps.length > 0) problems.push(`${point}: temporaries left after recovery: ${temps.join(' ')}`);
    // A recovery with nothing pending writes no status; the next status write sweeps a dead writer's temporary.
    await writeLastResults(w, [], new Date());
    const st = tempFiles(join(w, 'var/lib'));
    if (st.length > 0) problems.push(`${point}: state temporaries not swept: ${st.join(' ')}`);
  }
  assert.deepEqual(problems, []);
});

test('record SIGKILLed around its journal append: the event is wholly there or absent; a retry plus commit equals depmod', { skip: realKernelSkipReason() ?? false, timeout: 300_000 }, async (t) => {
  const k = realKernel('cloud-amd64');
  const work = mkdtempSync(join(tmpdir(), 'dtx-crash-rec-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const base = join(work, 'base');
  cloneRoot(k.root, base);
  await merge({ root: base, kver: k.kver, symvers: 'auto', workers: 2 });
  // Journal and lock already exist, so the append path (not the first-creation path) is exercised.
  await recordEvents({ root: base, op: 'add', txn: 'tx', paths: [`/lib/modules/${k.kver}/extra/none.ko`] });
  unlinkSync(join(base, 'lib/modules', k.kver, 'kernel/lib/crc7.ko'));
  const NEW = oracleFiles(base, k.kver);
  const path = `/lib/modules/${k.kver}/kernel/lib/crc7.ko`;
  const w = join(work, 'w');
  for (const point of ['lock:acquired:journal.lock', 'journal:before-append-fsync', 'journal:before-append-dir-fsync']) {
    restore(base, w);
    const r = cli(['record', '-b', w, '--op', 'remove', '--txn', 'tx', path], { crashAt: point });
    assert.equal(r.signal, 'SIGKILL', `${point}: ${r.stderr}`);
    const j = await readJournal(w);
    assert.deepEqual(j.warnings, [], `${point}: no half line`);
    const mine = j.events.filter((e) => e.path === path);
    assert.ok(mine.length <= 1, point);
    // The hook failed, so the package manager reports it and the transaction's hook runs again.
    const again = cli(['record', '-b', w, '--op', 'remove', '--txn', 'tx', path]);
    assert.equal(again.status, 0, again.stderr);
    const c = cli(['commit', '-b', w]);
    assert.equal(c.status, 0, c.stderr);
    assert.deepEqual(diffFileSets(outputFiles(join(w, 'lib/modules', k.kver)), NEW), [], point);
    assert.deepEqual((await readJournal(w)).events, [], `${point}: journal drained`);
  }
});
