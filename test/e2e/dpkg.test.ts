// End to end with the real dpkg: the depmod-tx .deb from scripts/package.mjs is installed into a
// throwaway root (dpkg --root with --force-script-chrootless: maintainer scripts run on the host
// with DPKG_ROOT set, no chroot needed), then a fake kernel package and a KMP are installed,
// upgraded and removed with plain `dpkg -i`/`-r`. The dpkg file trigger runs depmod-tx's postinst,
// which commits with --scan. After every step the database must equal Debian's `depmod -a` of the
// tree, and the trigger must have merged the kernel exactly once, in the transaction's one Node.js
// start (counted through DEPMOD_TX_NODE, a logging node: the scripts run on the host).
// The apt path (Pre-Install-Pkgs hook → spool → trigger) is exercised with real apt-get too, and a
// package without module files, installed and removed by apt, starts no Node.js and leaves no file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FixtureModule } from '../support/fixture-elf.ts';
import {
  BROKEN_HOOKS, buildPackage, cleanEnv, commitLines, databaseDiff, debianNode18, e2eSkip, filesUnder, have, kernelModules, kmpModules, KVER, loggingNode, nextSecond, replayCatchesUp, stageModules,
  yargsBlocksNode18,
} from './support.ts';

const skip = e2eSkip('dpkg', ['dpkg', 'dpkg-deb', 'depmod', 'flock', 'xz'], 'dpkg kmod util-linux xz-utils');

function deb(dir: string, name: string, version: string, mods: Array<[string, FixtureModule]>, opts: { order?: boolean; kver?: string } = {}): string {
  const stage = join(dir, `${name}_${version}`);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'DEBIAN'), { recursive: true });
  stageModules(stage, opts.kver ?? KVER, mods, opts);
  writeFileSync(join(stage, 'DEBIAN', 'control'), `Package: ${name}\nVersion: ${version}\nArchitecture: all\nMaintainer: T <t@example.org>\nDescription: e2e test package\n`);
  const file = join(dir, `${name}_${version}_all.deb`);
  const r = spawnSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', stage, file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return file;
}

interface Env {
  root: string;
  env: NodeJS.ProcessEnv;
  /** The Node.js starts since the last call. */
  starts(): string[];
}

// dpkg logs to the root's own /var/log/dpkg.log, which `replay` reads back.
function dpkg(e: Env, args: string[], env: Record<string, string> = {}): string {
  const r = spawnSync('dpkg', [`--root=${e.root}`, '--force-script-chrootless', '--force-not-root', `--log=${e.root}/var/log/dpkg.log`, ...args], { encoding: 'utf8', env: { ...e.env, ...env } });
  assert.equal(r.status, 0, `dpkg ${args.join(' ')} failed:\n${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

function dpkgRoot(dir: string): string {
  const root = join(dir, 'root');
  for (const d of ['var/lib/dpkg/info', 'var/lib/dpkg/updates', 'var/lib/dpkg/triggers', 'var/log/apt', 'etc/depmod.d']) mkdirSync(join(root, d), { recursive: true });
  // depmod-tx's Depends are met by the host (the scripts run chrootless, with the host's node, xz
  // and flock); dpkg must know that, because it defers the trigger of a package whose dependencies are
  // unsatisfied, even with --force-depends.
  const host = (p: string, v: string) =>
    `Package: ${p}\nStatus: install ok installed\nPriority: optional\nSection: misc\nMaintainer: host <host@example.org>\nArchitecture: amd64\nVersion: ${v}\nDescription: provided by the host\n\n`;
  writeFileSync(
    join(root, 'var/lib/dpkg/status'),
    host('nodejs', '18.20.4+dfsg-1~deb12u3') + host('util-linux', '2.38.1-5+deb12u3') + host('xz-utils', '5.4.1-1+deb12u1') + host('mawk', '1.3.4.20200120-3.1'),
  );
  for (const p of ['nodejs', 'util-linux', 'xz-utils', 'mawk']) writeFileSync(join(root, 'var/lib/dpkg/info', `${p}.list`), '');
  writeFileSync(join(root, 'var/lib/dpkg/available'), '');
  return root;
}

function environment(root: string): Env {
  const node = loggingNode(join(root, '..'));
  return { root, env: cleanEnv({ DEPMOD_TX_NODE: node.bin }), starts: node.take };
}

function assertStep(e: Env, out: string, step: string): void {
  const lines = commitLines(out, KVER);
  assert.equal(lines.length, 1, `${step}: the trigger merged ${KVER} exactly once; dpkg printed:\n${out}`);
  assert.match(lines[0]!, /changed \d+ file/, `${step}: ${lines[0]}`);
  assert.deepEqual(databaseDiff(e.root, KVER), [], `${step}: database equals depmod -a`);
  const started = e.starts();
  assert.equal(started.length, 1, `${step}: one Node.js start:\n${started.join('\n')}`);
}

test('dpkg: install depmod-tx, fake kernel, KMP install/upgrade/remove, replay of dpkg.log, purge', { skip, timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dtx-e2e-dpkg-'));
  try {
    const pkg = buildPackage(join(dir, 'pkg'), 'deb');
    const e = environment(dpkgRoot(dir));
    const R = e.root;

    dpkg(e, ['-i', pkg]);
    assert.deepEqual(e.starts(), [], 'installing depmod-tx starts no Node.js');
    assert.ok(existsSync(join(R, 'usr/lib/depmod-tx/hooks/depmod-tx-hook')));
    assert.ok(existsSync(join(R, 'usr/share/man/man1/depmod-tx.1.gz')), 'man page installed');
    assert.ok(existsSync(join(R, 'usr/share/bash-completion/completions/depmod-tx')), 'bash completion installed');
    assert.match(readFileSync(join(R, 'etc/apt/apt.conf.d/50depmod-tx'), 'utf8'), /DPkg::Tools::Options::\/usr\/lib\/depmod-tx\/hooks\/depmod-tx-hook::Version "3";/);
    const help = spawnSync(join(R, 'usr/bin/depmod-tx'), ['--help'], { encoding: 'utf8', env: e.env });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /commit/);
    e.starts();

    const kernel = deb(dir, 'linux-image-9.9.9-test', '9.9.9-1', kernelModules(), { order: true });
    assertStep(e, dpkg(e, ['-i', kernel]), 'kernel install');

    assertStep(e, dpkg(e, ['-i', deb(dir, 'tkmp-modules', '1.0', kmpModules(1))]), 'KMP install');
    assert.ok(existsSync(join(R, `lib/modules/${KVER}/updates/kmpb.ko.xz`)));
    const dep1 = readFileSync(join(R, `lib/modules/${KVER}/modules.dep`), 'utf8');
    assert.match(dep1, /^updates\/kmpb\.ko\.xz: updates\/kmpa\.ko kernel\/drivers\/net\/tnet\.ko kernel\/lib\/tcore\.ko$/m);

    assertStep(e, dpkg(e, ['-i', deb(dir, 'tkmp-modules', '2.0', kmpModules(2))]), 'KMP upgrade');
    assert.ok(!existsSync(join(R, `lib/modules/${KVER}/updates/kmpb.ko.xz`)), 'dropped module is gone');
    assert.doesNotMatch(readFileSync(join(R, `lib/modules/${KVER}/modules.dep`), 'utf8'), /kmpb/);

    assertStep(e, dpkg(e, ['-r', 'tkmp-modules']), 'KMP removal');
    assert.doesNotMatch(readFileSync(join(R, `lib/modules/${KVER}/modules.alias`), 'utf8'), /TST000/);

    // Hooks that fail: dpkg.log since then, replayed, installs the KMP and finds what its upgrade dropped.
    const since = await nextSecond();
    dpkg(e, ['-i', deb(dir, 'tkmp-modules', '1.0', kmpModules(1))], BROKEN_HOOKS);
    dpkg(e, ['-i', deb(dir, 'tkmp-modules', '2.0', kmpModules(2))], BROKEN_HOOKS);
    replayCatchesUp(R, join(R, 'var/log/dpkg.log'), since, /dpkg-log, 2 package change\(s\) since .*: 1 installed \(tkmp-modules\), 0 gone/);
    assert.doesNotMatch(readFileSync(join(R, `lib/modules/${KVER}/modules.dep`), 'utf8'), /kmpb/, 'the module the upgrade dropped is gone from the database');

    const st = spawnSync(join(R, 'usr/bin/depmod-tx'), ['status', '--root', R, '--json'], { encoding: 'utf8', env: e.env });
    assert.equal(st.status, 0, st.stderr);
    assert.deepEqual(JSON.parse(st.stdout).pending, [], 'nothing left in the journal');
    e.starts();

    // The KMP the replay put back goes first, so that removing the kernel leaves no module behind.
    assertStep(e, dpkg(e, ['-r', 'tkmp-modules']), 'KMP removal after the replay');
    // dpkg -r of the kernel: its directory stays (modules.* are no package's files); the trigger
    // (commit --scan) writes no database into it and drops the cache; status says removed.
    const dbBefore = statSync(join(R, `lib/modules/${KVER}/modules.dep.bin`)).mtimeMs;
    const removed = commitLines(dpkg(e, ['-r', 'linux-image-9.9.9-test']), KVER);
    assert.equal(removed.length, 1);
    assert.equal(e.starts().length, 1, 'kernel removal: one Node.js start');
    assert.match(removed[0]!, /kernel removed \(no modules left\), no database written/);
    assert.equal(statSync(join(R, `lib/modules/${KVER}/modules.dep.bin`)).mtimeMs, dbBefore);
    assert.ok(!existsSync(join(R, `var/cache/depmod-tx/${KVER}.cache`)), 'cache dropped');
    const status = () => JSON.parse(spawnSync(join(R, 'usr/bin/depmod-tx'), ['status', '--root', R, '--json'], { encoding: 'utf8', env: e.env }).stdout);
    assert.equal(status().last[KVER]?.status, 'removed');

    assert.ok(existsSync(join(R, 'var/cache/depmod-tx')), 'a cache was written');
    dpkg(e, ['--purge', 'depmod-tx']);
    assert.ok(!existsSync(join(R, 'var/cache/depmod-tx')), 'purge removes the cache');
    assert.ok(!existsSync(join(R, 'var/lib/depmod-tx')), 'purge removes journal and state');
    assert.ok(!existsSync(join(R, 'usr/lib/depmod-tx')));
    assert.ok(existsSync(join(R, `lib/modules/${KVER}/modules.dep.bin`)), 'the database stays: it is depmod\'s');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('apt-get: the Pre-Install-Pkgs v3 hook journals the KMP, the trigger merges it once; replay of history.log', { skip: skip || (have('apt-get') ? false : 'needs apt-get'), timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dtx-e2e-apt-'));
  try {
    const pkg = buildPackage(join(dir, 'pkg'), 'deb');
    const e = environment(dpkgRoot(dir));
    const R = e.root;
    dpkg(e, ['-i', pkg]);
    e.starts();
    assertStep(e, dpkg(e, ['-i', deb(dir, 'linux-image-9.9.9-test', '9.9.9-1', kernelModules(), { order: true })]), 'kernel install');
    for (const d of ['state/lists/partial', 'cache/archives/partial', 'etc/apt.conf.d', 'etc/preferences.d', 'etc/sources.list.d']) mkdirSync(join(dir, 'apt', d), { recursive: true });
    writeFileSync(join(dir, 'apt/etc/sources.list'), '');
    // The packaged snippet names the hook at its installed path; in this root it lives under R.
    const hook = join(R, 'usr/lib/depmod-tx/hooks/depmod-tx-hook');
    const snippet = readFileSync(join(R, 'etc/apt/apt.conf.d/50depmod-tx'), 'utf8').replaceAll('/usr/lib/depmod-tx/hooks/depmod-tx-hook', hook);
    // APT_CONFIG is read before anything else (a -o Dir::Etc comes too late for apt.conf.d parts).
    writeFileSync(join(dir, 'apt/apt.conf'), snippet);
    const apt = (args: string[], env: Record<string, string> = {}): string => {
      const r = spawnSync('apt-get', [
        '-y', '-q',
        '-o', `Dir::Etc=${join(dir, 'apt/etc')}`,
        '-o', `Dir::State=${join(dir, 'apt/state')}`,
        '-o', `Dir::State::status=${join(R, 'var/lib/dpkg/status')}`,
        '-o', `Dir::Cache=${join(dir, 'apt/cache')}`,
        '-o', `Dir::Log=${join(R, 'var/log/apt')}`,
        '-o', 'Debug::NoLocking=1',
        '-o', `DPkg::Options::=--root=${R}`,
        '-o', 'DPkg::Options::=--force-script-chrootless',
        '-o', 'DPkg::Options::=--force-not-root',
        '-o', 'DPkg::Options::=--log=/dev/null',
        '-o', 'DPkg::Use-Pty=0',
        ...args,
      ], { encoding: 'utf8', env: { ...e.env, APT_CONFIG: join(dir, 'apt/apt.conf'), DEPMOD_TX_ROOT: R, DEPMOD_TX: join(R, 'usr/bin/depmod-tx'), ...env }, cwd: dir });
      if (env === BROKEN_HOOKS) e.starts();
      assert.equal(r.status, 0, `apt-get ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
      if (env !== BROKEN_HOOKS) assert.doesNotMatch(r.stderr, /depmod-tx hook .* failed/, r.stderr);
      return r.stdout + r.stderr;
    };
    // A package without module files: the hooks run in shell only, and leave nothing behind.
    const state = () => [...filesUnder(join(R, 'var/lib/depmod-tx')), ...filesUnder(join(R, 'var/cache/depmod-tx'))];
    const before = state();
    apt(['install', deb(dir, 'plain', '1.0', [])]);
    apt(['remove', 'plain']);
    assert.deepEqual(e.starts(), [], 'no module file: no Node.js start');
    assert.deepEqual(state(), before, 'no module file: no file left behind');
    const out1 = apt(['install', deb(dir, 'tkmp-modules', '1.0', kmpModules(1))]);
    assertStep(e, out1, 'apt KMP install');
    assert.match(commitLines(out1, KVER)[0]!, / 3 event\(s\)/, 'the three modules came from the apt hook\'s journal, not a scan');
    const out2 = apt(['install', deb(dir, 'tkmp-modules', '2.0', kmpModules(2))]);
    assertStep(e, out2, 'apt KMP upgrade');
    assert.doesNotMatch(commitLines(out2, KVER)[0]!, / 0 event\(s\)/, 'upgrade recorded by the apt hook');
    const out3 = apt(['remove', 'tkmp-modules']);
    assertStep(e, out3, 'apt KMP removal');

    // Hooks that fail: apt's history.log since then, replayed.
    const since = await nextSecond();
    apt(['install', deb(dir, 'tkmp-modules', '1.0', kmpModules(1))], BROKEN_HOOKS);
    apt(['install', deb(dir, 'tkmp-modules', '2.0', kmpModules(2))], BROKEN_HOOKS);
    replayCatchesUp(R, join(R, 'var/log/apt/history.log'), since, /apt-history, 2 package change\(s\) since .*: 1 installed \(tkmp-modules\), 0 gone/);
    assert.doesNotMatch(readFileSync(join(R, `lib/modules/${KVER}/modules.dep`), 'utf8'), /kmpb/, 'the module the upgrade dropped is gone from the database');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Debian 12 ships nodejs 18.19/18.20: the installed CLI must start there, not only on the host's node.
const n18 = debianNode18();
test('the packaged CLI runs on Debian 12\'s nodejs 18', { skip: skip || ('reason' in n18 && process.env.CI !== 'true' ? n18.reason : false), todo: yargsBlocksNode18() }, () => {
  if ('reason' in n18) assert.fail(n18.reason);
  const dir = mkdtempSync(join(tmpdir(), 'dtx-e2e-node18-'));
  try {
    const pkg = buildPackage(join(dir, 'pkg'), 'deb');
    const tree = join(dir, 'x');
    assert.equal(spawnSync('dpkg-deb', ['-x', pkg, tree]).status, 0);
    const env = { ...process.env, PATH: `${(n18 as { dir: string }).dir}:${process.env.PATH}` };
    const v = spawnSync(join(tree, 'usr/bin/depmod-tx'), ['status', '--root', join(dir, 'empty'), '--json'], { encoding: 'utf8', env });
    assert.equal(v.status, 0, v.stderr);
    assert.deepEqual(JSON.parse(v.stdout).pending, []);
    // yargs 17's ESM entry cut words in --help on every Node (issue 11); the bundle must not, on 18 either.
    const h = spawnSync(join(tree, 'usr/bin/depmod-tx'), ['--help'], { encoding: 'utf8', env: { ...env, COLUMNS: '80' } });
    assert.equal(h.status, 0, h.stderr);
    assert.match(h.stdout, /Incremental kernel module database \(depmod\) for package\s+transactions\./);
    assert.match(h.stdout, /KABI dry run: would these module files load\s+on\s+these\s+kernels/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A stand-in kmod package: its kmod binary and depmod link at the paths `paths` says (Debian 12 or later). */
function fakeKmod(dir: string, version: string, paths: { bin: string; depmod: string }): string {
  const stage = join(dir, `kmod_${version}`);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'DEBIAN'), { recursive: true });
  mkdirSync(join(stage, paths.bin, '..'), { recursive: true });
  mkdirSync(join(stage, paths.depmod, '..'), { recursive: true });
  writeFileSync(join(stage, paths.bin), `#!/bin/sh\necho "kmod version 30 (fake ${version})"\n`, { mode: 0o755 });
  symlinkSync(paths.bin, join(stage, paths.depmod));
  writeFileSync(join(stage, 'DEBIAN', 'control'), `Package: kmod\nVersion: ${version}\nArchitecture: all\nMaintainer: T <t@example.org>\nDescription: stand-in for kmod\n`);
  const file = join(dir, `kmod_${version}_all.deb`);
  const r = spawnSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', stage, file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return file;
}

test("dpkg: kmod's depmod diverted to depmod.kmod, kept over kmod upgrades, moved with it, given back exactly on removal", { skip, timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'dtx-e2e-divert-'));
  try {
    const pkg = buildPackage(join(dir, 'pkg'), 'deb');
    const e = environment(dpkgRoot(dir));
    const R = e.root;
    const diversions = (): string => spawnSync('dpkg-divert', [`--root=${R}`, '--list'], { encoding: 'utf8' }).stdout;
    const link = (p: string): string | undefined => (existsSync(join(R, p)) || lstatExists(join(R, p)) ? readlinkSync(join(R, p)) : undefined);
    const old = { bin: '/bin/kmod', depmod: '/sbin/depmod' };
    dpkg(e, ['-i', fakeKmod(dir, '30-1', old)]);
    dpkg(e, ['-i', pkg]);
    assert.equal(link('/sbin/depmod'), '/usr/lib/depmod-tx/hooks/depmod', 'the front end is the system depmod');
    assert.equal(link('/sbin/depmod.kmod'), '/bin/kmod', "kmod's depmod, renamed");
    assert.match(diversions(), /^diversion of \/sbin\/depmod to \/sbin\/depmod\.kmod by depmod-tx$/m);
    assert.match(readFileSync(join(R, 'usr/lib/depmod-tx/hooks/depmod'), 'utf8'), /^# DEPMOD_TX_FRONT_END$/m);

    // A kmod upgrade: dpkg puts its depmod at the diverted name.
    dpkg(e, ['-i', fakeKmod(dir, '30-2', { bin: '/bin/kmod', depmod: '/sbin/depmod' })]);
    assert.equal(link('/sbin/depmod'), '/usr/lib/depmod-tx/hooks/depmod');
    assert.equal(link('/sbin/depmod.kmod'), '/bin/kmod');

    // kmod moves depmod to /usr/sbin (as Debian 13's does): depmod-tx's trigger on kmod moves the diversion.
    const moved = { bin: '/usr/bin/kmod', depmod: '/usr/sbin/depmod' };
    dpkg(e, ['-i', fakeKmod(dir, '34-1', moved)]);
    assert.equal(link('/usr/sbin/depmod'), '/usr/lib/depmod-tx/hooks/depmod', 'the front end followed depmod to /usr/sbin');
    assert.equal(link('/usr/sbin/depmod.kmod'), '/usr/bin/kmod');
    assert.equal(link('/sbin/depmod'), undefined, 'nothing left at the old path');
    assert.match(diversions(), /^diversion of \/usr\/sbin\/depmod to \/usr\/sbin\/depmod\.kmod by depmod-tx$/m);
    assert.doesNotMatch(diversions(), /\/sbin\/depmod to \/sbin/);

    // system-depmod = kmod, then the postinst again (dpkg-reconfigure runs it): kmod's depmod is back.
    writeFileSync(join(R, 'etc/depmod-tx.conf'), 'system-depmod = kmod\n');
    const re = spawnSync(join(R, 'var/lib/dpkg/info/depmod-tx.postinst'), ['configure', '0.1.0'], { encoding: 'utf8', env: { ...e.env, DPKG_ROOT: R } });
    assert.equal(re.status, 0, re.stderr);
    assert.equal(link('/usr/sbin/depmod'), '/usr/bin/kmod');
    assert.doesNotMatch(diversions(), /depmod-tx/);
    writeFileSync(join(R, 'etc/depmod-tx.conf'), '');
    assert.equal(spawnSync(join(R, 'var/lib/dpkg/info/depmod-tx.postinst'), ['configure', '0.1.0'], { env: { ...e.env, DPKG_ROOT: R } }).status, 0);
    assert.equal(link('/usr/sbin/depmod'), '/usr/lib/depmod-tx/hooks/depmod');

    // Removal: kmod's depmod back at its path, as kmod shipped it; then purge.
    dpkg(e, ['-r', 'depmod-tx']);
    assert.equal(link('/usr/sbin/depmod'), '/usr/bin/kmod');
    assert.ok(!lstatExists(join(R, 'usr/sbin/depmod.kmod')));
    assert.doesNotMatch(diversions(), /depmod-tx/);
    dpkg(e, ['--purge', 'depmod-tx']);
    assert.equal(link('/usr/sbin/depmod'), '/usr/bin/kmod');
    assert.doesNotMatch(diversions(), /depmod-tx/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function lstatExists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
