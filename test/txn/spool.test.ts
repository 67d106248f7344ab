// The spool (src/txn/spool.ts) and the shell that writes it (hooks/depmod-tx-hook, run by /bin/sh):
// what the hooks collect without Node.js reaches the journal through the commit's ingest; a torn or
// foreign spool file is refused whole, moved aside and reported; a hook killed before its rename
// leaves a temporary file that makes the commit scan; a commit point with nothing pending starts
// nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FormatError } from '../../src/errors.ts';
import { readJournal } from '../../src/txn/journal.ts';
import { ingestSpool, parseSpool, spoolDir, spoolPending } from '../../src/txn/spool.ts';
import { realKernelSkipReason, repoRoot } from '../support/kernels.ts';
import { BASE_ORDER, runCli, withCliRoot } from '../support/cli.ts';
import { writeFixtureTree } from '../support/fixture-tree.ts';
import { diffFileSets, oracleFiles, outputFiles } from '../merge/oracle-dir.ts';

const HOOK = join(repoRoot, 'hooks', 'depmod-tx-hook');
const K = '6.1.0-9-test';

function tempRoot(t: { after(fn: () => void): void }): string {
  const root = mkdtempSync(join(tmpdir(), 'depmod-tx-spool-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'lib/modules', K, 'kernel'), { recursive: true });
  return root;
}

function spoolFile(root: string, name: string, text: string): string {
  mkdirSync(spoolDir(root), { recursive: true });
  const file = join(spoolDir(root), name);
  writeFileSync(file, text);
  return file;
}

/**
 * Runs the hook under /bin/sh with DEPMOD_TX a script that logs its arguments (no Node.js), then
 * runs BODY (default: answer "ready 0" on the --ready-fd, as the commit does).
 */
function hook(root: string, args: string[], input = '', body = 'case "$*" in *--ready-fd*) echo "ready 0" >&3 ;; esac'): { status: number | null; stdout: string; stderr: string; calls: string[]; ms: number } {
  const log = join(root, 'calls.log');
  const fake = join(root, 'fake-depmod-tx');
  writeFileSync(fake, `#!/bin/sh\necho "$*" >>'${log}'\n${body}\n`);
  chmodSync(fake, 0o755);
  const t0 = Date.now();
  const r = spawnSync('/bin/sh', [HOOK, ...args], { input, encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DEPMOD_TX_ROOT: root, DEPMOD_TX: fake } });
  const ms = Date.now() - t0;
  const calls = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter((l) => l !== '') : [];
  rmSync(log, { force: true });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, calls, ms };
}

const spooled = (root: string): string[] => (existsSync(spoolDir(root)) ? readdirSync(spoolDir(root)).filter((n) => n.endsWith('.spool')) : []);

test('parseSpool: records in order; a torn or foreign file is a FormatError naming it, never half-read', () => {
  const ok = parseSpool(`depmod-tx-spool 1 rpm\nadd kmp /lib/modules/${K}/extra/a b.ko\nremove - /lib/modules/${K}/x.ko\ndeb kmp /var/cache/apt/archives/k.deb\nend 3\n`, 'f');
  assert.equal(ok.source, 'rpm');
  assert.deepEqual(ok.records.map((r) => [r.op, r.package, r.path, r.line]), [
    ['add', 'kmp', `/lib/modules/${K}/extra/a b.ko`, 2],
    ['remove', null, `/lib/modules/${K}/x.ko`, 3],
    ['deb', 'kmp', '/var/cache/apt/archives/k.deb', 4],
  ]);
  const bad: Array<[string, RegExp]> = [
    ['', /torn/],
    [`depmod-tx-spool 1 rpm\nadd - /lib/modules/${K}/a.ko\nend 1`, /torn.*complete "end" line/],
    [`depmod-tx-spool 1 rpm\nadd - /lib/modules/${K}/a.ko\n`, /torn.*"end COUNT"/],
    [`depmod-tx-spool 1 rpm\nadd - /lib/modules/${K}/a.ko\nend 2\n`, /torn.*"end 2" after 1 record/],
    [`depmod-tx-spool 2 rpm\nend 0\n`, /version 2/],
    [`{"op":"add","path":"/lib/modules/${K}/a.ko"}\nend 0\n`, /not a depmod-tx spool file/],
    [`depmod-tx-spool 1 rpm\nadd /lib/modules/${K}/a.ko\nend 1\n`, /line 2: not a spool record/],
  ];
  for (const [text, why] of bad) {
    assert.throws(() => parseSpool(text, '/s/f.spool'), (e: unknown) => e instanceof FormatError && e.message.startsWith('/s/f.spool: ') && why.test(e.message), JSON.stringify(text));
  }
});

test('ingest: complete files become journal events (ids from file and line), the .deb of a deb record is listed, the file goes', async (t) => {
  const root = tempRoot(t);
  spoolFile(root, '1700000000000000000-42.rpm.spool', `depmod-tx-spool 1 rpm\nadd kmp /lib/modules/${K}/extra/a.ko\nadd kmp /usr/share/doc/kmp/README\nadd kmp /lib/modules/${K}/../../etc/x.ko\nend 3\n`);
  spoolFile(root, '1700000000000000001-43.apt.spool', `depmod-tx-spool 1 apt\nremove old /lib/modules/${K}/extra/old.ko\ndeb new /cache/new.deb\nend 2\n`);
  const listed: string[] = [];
  const r = await ingestSpool({ root, listDeb: async (f) => (listed.push(f), [`/lib/modules/${K}/extra/n1.ko.xz`, '/usr/share/doc/new/copyright']) });
  assert.deepEqual(listed, ['/cache/new.deb']);
  assert.deepEqual([r.files, r.recorded, r.ignored, r.refused.length, r.errors.length, r.scan], [2, 3, 2, 1, 0, false]);
  assert.deepEqual(spooled(root), [], 'ingested files are removed');
  assert.equal(spoolPending(root), false);
  const j = await readJournal(root);
  assert.deepEqual(
    j.events.map((e) => [e.op, e.package, e.path, e.id]),
    [
      ['add', 'kmp', `/lib/modules/${K}/extra/a.ko`, '1700000000000000000-42.rpm:2'],
      ['remove', 'old', `/lib/modules/${K}/extra/old.ko`, '1700000000000000001-43.apt:2'],
      ['add', 'new', `/lib/modules/${K}/extra/n1.ko.xz`, '1700000000000000001-43.apt:3:0'],
    ],
  );
  assert.equal(j.events[0]!.time, new Date(1_700_000_000_000).toISOString(), 'the time of the hook, from the name');
});

test('ingest: a torn or foreign spool file is moved to spool/rejected/, reported (exit 65 kind) and asks for a scan; the others are ingested', async (t) => {
  const root = tempRoot(t);
  spoolFile(root, '1-1.rpm.spool', `depmod-tx-spool 1 rpm\nadd - /lib/modules/${K}/a.ko\n`);
  spoolFile(root, 'notes.txt', 'hello\n');
  spoolFile(root, '2-2.rpm.spool', `depmod-tx-spool 1 rpm\nadd - /lib/modules/${K}/b.ko\nend 1\n`);
  const r = await ingestSpool({ root });
  assert.equal(r.files, 1);
  assert.equal(r.scan, true);
  assert.deepEqual(r.errors.map((e) => [e.constructor.name, e.kind, e.file?.slice(spoolDir(root).length + 1)]), [
    ['FormatError', 'format', '1-1.rpm.spool'],
    ['FormatError', 'format', 'notes.txt'],
  ]);
  assert.deepEqual(readdirSync(join(spoolDir(root), 'rejected')).sort(), ['1-1.rpm.spool', 'notes.txt']);
  assert.deepEqual((await readJournal(root)).events.map((e) => e.path), [`/lib/modules/${K}/b.ko`], 'nothing of the torn file was used');
  // The rejected directory is not read again.
  assert.deepEqual((await ingestSpool({ root })).errors, []);
});

test('ingest: a killed hook\'s temporary file is removed and asks for a scan; a live writer\'s is left alone', async (t) => {
  const root = tempRoot(t);
  const dead = spawnSync('/bin/sh', ['-c', 'echo $$']).stdout.toString().trim();
  spoolFile(root, `.${dead}.tmp`, `depmod-tx-spool 1 rpm\nadd - /lib/modules/${K}/a.ko\n`);
  spoolFile(root, `.${process.pid}.tmp`, 'depmod-tx-spool 1 rpm\n');
  assert.equal(spoolPending(root), true, 'a temporary file is something for a commit to look at');
  const r = await ingestSpool({ root });
  assert.equal(r.scan, true);
  assert.match(r.warnings[0]!, /killed while writing it/);
  assert.deepEqual(readdirSync(spoolDir(root)), [`.${process.pid}.tmp`]);
});

test('ingest: a .deb that cannot be listed is reported and asks for a scan; the rest of the file is ingested', async (t) => {
  const root = tempRoot(t);
  spoolFile(root, '5-5.apt.spool', `depmod-tx-spool 1 apt\ndeb gone /nonexistent/gone.deb\nremove old /lib/modules/${K}/o.ko\nend 2\n`);
  const r = await ingestSpool({ root });
  assert.equal(r.scan, true);
  assert.match(r.errors[0]!.message, /^\/nonexistent\/gone\.deb: /);
  assert.equal(r.recorded, 1);
  assert.deepEqual(spooled(root), []);
});

test('hook record (sh, no Node.js): one complete spool file per call that ingest reads back; nothing for no path', async (t) => {
  const root = tempRoot(t);
  const paths = [`/lib/modules/${K}/extra/a.ko`, `/lib/modules/${K}/extra/with space.ko.xz`, '', `/lib/modules/${K}/modules.order`];
  const r = hook(root, ['record', 'add'], paths.join('\n') + '\n');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.calls, [], 'no depmod-tx process');
  const files = spooled(root);
  assert.equal(files.length, 1);
  assert.match(files[0]!, /^[0-9]+-[0-9]+\.rpm\.spool$/);
  const parsed = parseSpool(readFileSync(join(spoolDir(root), files[0]!), 'utf8'), files[0]!);
  assert.deepEqual(parsed.records.map((x) => `${x.op} ${x.package ?? '-'} ${x.path}`), paths.filter((p) => p !== '').map((p) => `add - ${p}`));
  assert.deepEqual(readdirSync(spoolDir(root)).filter((n) => n.startsWith('.')), [], 'no temporary file left');
  assert.equal(hook(root, ['record', 'remove', 'kmp one'], '').status, 0);
  assert.equal(spooled(root).length, 1, 'an empty call writes nothing');
  hook(root, ['record', 'remove', 'kmp one'], `/lib/modules/${K}/extra/a.ko\n`);
  const ing = await ingestSpool({ root });
  assert.deepEqual([ing.files, ing.recorded, ing.errors.length], [2, 3, 0]);
  assert.deepEqual((await readJournal(root)).events.map((e) => `${e.op} ${e.package}`), ['add null', 'add null', 'remove kmp_one']);
});

test('hook commit: starts depmod-tx only when something is pending (spool, temporary file, journal, deferred call); dpkg and kmod always', (t) => {
  const root = tempRoot(t);
  assert.deepEqual(hook(root, ['commit', 'rpm']).calls, [], 'nothing pending: nothing started');
  assert.deepEqual(hook(root, ['commit']).calls, []);
  assert.deepEqual(hook(root, ['commit', 'dpkg']).calls, [`commit --root ${root} --source dpkg --scan --ready-fd 3`]);
  const state = join(root, 'var/lib/depmod-tx');
  for (const [dir, name] of [['spool', '1-1.rpm.spool'], ['spool', '.1.tmp'], ['journal', 'x.jsonl'], ['deferred', K]] as const) {
    mkdirSync(join(state, dir), { recursive: true });
    writeFileSync(join(state, dir, name), '');
    assert.deepEqual(hook(root, ['commit', 'rpm']).calls, [`commit --root ${root} --source rpm --ready-fd 3`], `${dir}/${name}`);
    rmSync(join(state, dir, name));
  }
});

test('hook commit: returns once the commit says ready (what it printed so far shown, its code logged), while the commit goes on', (t) => {
  const root = tempRoot(t);
  const slow = 'echo "K: changed"; echo "warn" >&2; echo "ready 0" >&3; exec 3>&-; sleep 3; echo "after the answer"';
  const r = hook(root, ['commit', 'dpkg'], '', slow);
  assert.equal(r.status, 0);
  assert.ok(r.ms < 2500, `the hook waited ${r.ms} ms: it must not wait for the work after the answer`);
  assert.equal(r.stdout, 'K: changed\n');
  assert.match(r.stderr, /^warn$/m);
  assert.doesNotMatch(r.stderr, /failed/);
  const failed = hook(root, ['commit', 'dpkg'], '', 'echo "ready 65" >&3');
  assert.match(failed.stderr, /depmod-tx hook \(commit\) failed with exit code 65/);
  const died = hook(root, ['commit', 'dpkg'], '', 'exit 70');
  assert.match(died.stderr, /failed with exit code unknown \(it ended without answering\)/);
  assert.deepEqual(readdirSync(join(root, 'var/lib/depmod-tx')), [], 'the output files are gone');
});

test('hook apt-preinstall (protocol 3): .deb paths and the module paths removals and upgrades take away; apt-postinvoke drops what no commit took', async (t) => {
  const root = tempRoot(t);
  const info = join(root, 'var/lib/dpkg/info');
  mkdirSync(info, { recursive: true });
  writeFileSync(join(info, 'old-modules.list'), `/.\n/lib\n/lib/modules/${K}\n/lib/modules/${K}/extra/old.ko\n/usr/share/doc/old-modules\n`);
  writeFileSync(join(info, 'ma-modules:amd64.list'), `/usr/lib/modules/${K}/extra/ma.ko.zst\n`);
  writeFileSync(join(info, 'plain.list'), '/usr/bin/plain\n');
  const text = [
    'VERSION 3',
    'APT::Architecture=amd64',
    '',
    `new-modules - - none < 1.0 amd64 none /var/cache/apt/archives/new-modules_1.0_amd64.deb`,
    'old-modules 1.0 amd64 none > - - none **REMOVE**',
    'ma-modules 1.0 amd64 same < 2.0 amd64 same /tmp/dir with space/ma-modules_2.0_amd64.deb',
    'plain 1 all none < 2 all none /var/cache/apt/archives/plain_2_all.deb',
    'plain 2 all none = 2 all none **CONFIGURE**',
    '',
  ].join('\n');
  const r = hook(root, ['apt-preinstall'], text);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.calls, []);
  const files = spooled(root);
  assert.equal(files.length, 1);
  assert.match(files[0]!, /\.apt\.spool$/);
  const parsed = parseSpool(readFileSync(join(spoolDir(root), files[0]!), 'utf8'), files[0]!);
  assert.deepEqual(parsed.records.map((x) => `${x.op} ${x.package} ${x.path}`), [
    'deb new-modules /var/cache/apt/archives/new-modules_1.0_amd64.deb',
    `remove old-modules /lib/modules/${K}/extra/old.ko`,
    `remove ma-modules /usr/lib/modules/${K}/extra/ma.ko.zst`,
    'deb ma-modules /tmp/dir with space/ma-modules_2.0_amd64.deb',
    'deb plain /var/cache/apt/archives/plain_2_all.deb',
  ]);
  // No trigger fired (no module directory touched): Post-Invoke leaves nothing behind.
  assert.equal(hook(root, ['apt-postinvoke']).status, 0);
  assert.deepEqual(readdirSync(spoolDir(root)), []);
  // A run that removes nothing with modules and unpacks nothing writes no file.
  hook(root, ['apt-preinstall'], 'VERSION 3\n\nplain 2 all none = 2 all none **CONFIGURE**\n');
  assert.deepEqual(readdirSync(spoolDir(root)), []);
});

test('hook pacman: existing targets are adds, gone ones removes, then one commit', (t) => {
  const root = tempRoot(t);
  writeFileSync(join(root, 'lib/modules', K, 'kernel', 'here.ko'), '');
  const r = hook(root, ['pacman'], `lib/modules/${K}/kernel/here.ko\nlib/modules/${K}/kernel/gone.ko\n`);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.calls, [`commit --root ${root} --source pacman --ready-fd 3`]);
  const files = spooled(root);
  assert.equal(files.length, 1);
  const parsed = parseSpool(readFileSync(join(spoolDir(root), files[0]!), 'utf8'), files[0]!);
  assert.deepEqual(parsed.records.map((x) => `${x.op} ${x.path}`), [`add /lib/modules/${K}/kernel/here.ko`, `remove /lib/modules/${K}/kernel/gone.ko`]);
});

test('end to end (sh hook + the built CLI): spooled paths merged; a hook killed before its rename and a torn spool file still end with databases equal to depmod -a', { skip: realKernelSkipReason() }, () => {
  withCliRoot(({ root, kvers, cfg }) => {
    const [k0, k1] = kvers as [string, string];
    for (const k of kvers) assert.equal(runCli(['rebuild', '--root', root, '-C', cfg, k]).code, 0);
    const same = (k: string) => assert.deepEqual(diffFileSets(outputFiles(join(root, 'lib/modules', k)), oracleFiles(root, k, ['-C', cfg])), [], `${k} equals depmod -a`);
    const commit = () => runCli(['commit', '--root', root, '--source', 'rpm', '--json']);

    writeFixtureTree(root, k0, [{ path: 'updates/kmp-x.ko', module: { modinfo: [['alias', 'usb:vABCD*']], imports: [{ name: 'core_fn', crc: 0x10 }] } }], { order: BASE_ORDER });
    const rec = spawnSync('/bin/sh', [HOOK, 'record', 'add', 'kmp-x'], { input: `/lib/modules/${k0}/updates/kmp-x.ko\n`, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', DEPMOD_TX_ROOT: root } });
    assert.equal(rec.status, 0, rec.stderr);
    const c1 = commit();
    assert.equal(c1.code, 0, c1.stderr);
    assert.deepEqual(JSON.parse(c1.stdout).kernels.map((k: { kver: string; events: number }) => [k.kver, k.events]), [[k0, 1]], 'the spooled event, merged');
    same(k0);

    // A hook killed between its temporary file and the rename: the change reaches no spool file,
    // and the next commit's scan finds it by the directories' mtimes.
    writeFixtureTree(root, k1, [{ path: 'updates/kmp-y.ko', module: { modinfo: [['alias', 'pci:vBEEF*']] } }], { order: BASE_ORDER });
    const dead = spawnSync('/bin/sh', ['-c', 'echo $$']).stdout.toString().trim();
    writeFileSync(join(spoolDir(root), `.${dead}.tmp`), `depmod-tx-spool 1 rpm\nadd - /lib/modules/${k1}/updates/kmp-y.ko\n`);
    const c2 = commit();
    assert.equal(c2.code, 0, c2.stderr);
    assert.match(c2.stderr, /killed while writing it/);
    assert.ok(JSON.parse(c2.stdout).kernels.some((k: { kver: string; status: string; changed: boolean }) => k.kver === k1 && k.status === 'merged' && k.changed), c2.stdout);
    same(k1);

    // A torn spool file: refused whole (exit 65, named), moved aside; the scan still merges the change.
    rmSync(join(root, 'lib/modules', k0, 'updates/kmp-x.ko'));
    writeFileSync(join(spoolDir(root), '9-9.rpm.spool'), `depmod-tx-spool 1 rpm\nremove - /lib/modules/${k0}/updates/kmp-x.ko\n`);
    const c3 = commit();
    assert.equal(c3.code, 65, c3.stderr);
    assert.match(c3.stderr, /9-9\.rpm\.spool: torn spool file/);
    assert.ok(existsSync(join(spoolDir(root), 'rejected', '9-9.rpm.spool')));
    same(k0);
    assert.deepEqual(readdirSync(spoolDir(root)), ['rejected']);
  });
});
