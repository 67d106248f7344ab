// Issue 15's and issue 23's measured goals, with the real apt, dpkg, kmod and initramfs-tools in
// disposable Debian roots (debian-root.ts: mmdebstrap once, cached): Debian 12 (kmod 30, nodejs 18)
// and Debian 13 (kmod 34.2, nodejs 20). Real transactions install a real Debian cloud kernel image
// (Debian 12: 6.1, 1,121 modules, as shipped with .ko and repacked with .ko.xz; Debian 13: 6.12,
// shipped with .ko.xz) together with two module packages whose postinst runs `depmod -a KVER` (one
// installs into updates/dkms, as DKMS does), then remove and reinstall the module packages alone,
// then install and remove a package without module files. Each configuration runs in a fresh root:
// without depmod-tx, with depmod-tx as the system's depmod and depmod-calls = defer (the default),
// and with depmod-calls = immediate. Every depmod, depmod-tx and update-initramfs call is timed
// inside the root, and a logging `node` counts the Node.js starts of each transaction: 0 for the
// package without modules (which leaves no file behind either), 1 for every other transaction with
// defer; immediate adds one per package depmod call that finds the kernel's cache. After each
// transaction the database must equal the root's kmod's `depmod -a`, and the initrd builds must be
// those of the transaction without depmod-tx. Before its measurements, the first Debian 12 root with
// depmod-tx checks the diversion: kmod's depmod renamed and the front end in its place, a kmod
// reinstall keeps it, removal and purge give kmod's depmod back exactly, and the kernel-install
// plugin. DEPMOD_TX_E2E_RUNS=N repeats each configuration N times (configurations alternate within
// a run) and reports medians (.cache/e2e/timings.json); DEPMOD_TX_E2E_CONFIGS=bookworm/ko/defer,...
// runs only those.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import type { FixtureModule } from '../support/fixture-elf.ts';
import { kernelCache, realKernel } from '../support/kernels.ts';
import { kmod30, kmod34, type DepmodOracle } from '../support/kmod-oracles.ts';
import {
  coveredMs, databaseDiffFromKmod, debianBase, E2E_CACHE, inRoot, modulePackage, mtimeIn, mustInRoot, takeTimings, timeCalls, trixieCloudKernel, unpackRoot, useLocalRepo, xzKernelDeb,
  type Suite, type TimedCall,
} from './debian-root.ts';
import { buildPackage, e2eSkip, filesUnder, nodeStarts } from './support.ts';

const skip = e2eSkip('system-depmod', ['mmdebstrap', 'unshare', 'chroot', 'dpkg-deb', 'depmod', 'xz', 'apt-get'], 'mmdebstrap', 'chroot into a Debian root');

type Tree = 'ko' | 'xz';
type Mode = 'without' | 'immediate' | 'defer';
interface Config {
  suite: Suite;
  tree: Tree;
  mode: Mode;
}
const CONFIGS: readonly Config[] = [
  ...(['ko', 'xz'] as const).flatMap((tree) => (['without', 'defer', 'immediate'] as const).map((mode) => ({ suite: 'bookworm' as const, tree, mode }))),
  ...(['without', 'defer', 'immediate'] as const).map((mode) => ({ suite: 'trixie' as const, tree: 'xz' as const, mode })),
];
const configName = (c: Config): string => `${c.suite}/${c.tree}/${c.mode}`;

/** What a Debian release's root needs: its base, its kernel (.deb per tree), symbols for the test modules, its kmod. */
interface Distro {
  base: string;
  kver: string;
  kernelPkg: string;
  kernels: Partial<Record<Tree, string>>;
  syms: Array<{ name: string; crc: number }>;
  oracle: DepmodOracle;
}
const RUNS = Math.max(1, Number(process.env.DEPMOD_TX_E2E_RUNS ?? 1) || 1);
/** DEPMOD_TX_E2E_CONFIGS=bookworm/ko/immediate,trixie/xz/defer: only these (while developing). */
const ONLY = process.env.DEPMOD_TX_E2E_CONFIGS?.split(',');

interface StepResult {
  step: string;
  wallMs: number;
  /** Wall time covered by depmod and depmod-tx calls in the transaction's path (their union). */
  depmodMs: number;
  /** depmod-tx's background builds of a new kernel's cache (src/cli/depmod.ts); how long after apt-get depmod-tx's last call ended. */
  backgroundMs: number;
  backgroundAfterMs: number;
  initrdMs: number;
  initrdBuilds: number;
  calls: TimedCall[];
  /** The Node.js processes the transaction started (their arguments). */
  nodeStarts: string[];
  /** What apt printed (the commit's summary line per kernel among it). */
  out: string;
}

/** Two symbols the real kernel's modules export, with their CRCs: the test modules depend on real modules. */
function realExports(symvers: string, shipped: (module: string) => boolean): Array<{ name: string; crc: number }> {
  const out: Array<{ name: string; crc: number }> = [];
  for (const line of readFileSync(symvers, 'utf8').split('\n').sort()) {
    const [crc, name, module] = line.split('\t');
    if (crc === undefined || name === undefined || module === undefined || module === 'vmlinux') continue;
    if (!shipped(module) || out.some((o) => o.name === name)) continue;
    out.push({ name, crc: Number(crc) });
    if (out.length === 2) break;
  }
  assert.equal(out.length, 2, 'two module exports in the real symvers');
  return out;
}

function modulePackages(dir: string, kver: string, depends: string, tree: Tree, syms: Array<{ name: string; crc: number }>): { extra: string; dkms: string } {
  const ext = tree === 'xz' ? '.ko.xz' : '.ko';
  const lic: Array<[string, string]> = [['license', 'GPL']];
  const a: FixtureModule = { modinfo: [...lic, ['alias', 'platform:tmod-a']], imports: [{ name: syms[0]!.name, crc: syms[0]!.crc }], exports: [{ name: 'tmod_a_fn', crc: 0x7a }] };
  const b: FixtureModule = { modinfo: [...lic, ['alias', 'pci:v0000F00Dd*sv*sd*bc*sc*i*']], imports: [{ name: 'tmod_a_fn', crc: 0x7a }] };
  const c: FixtureModule = { modinfo: [...lic, ['softdep', 'pre: tmod_a']], imports: [{ name: syms[1]!.name, crc: syms[1]!.crc }] };
  const d: FixtureModule = { modinfo: [...lic, ['alias', 'acpi*:TMOD0001:*']], imports: [{ name: syms[0]!.name, crc: syms[0]!.crc }, { name: 'tmod_a_fn', crc: 0x7a }] };
  const sub = join(dir, tree);
  mkdirSync(sub, { recursive: true });
  return {
    extra: modulePackage(sub, 'tmod-extra', kver, depends, [[`updates/tmod_a${ext}`, a], [`updates/tmod_b${ext}`, b], [`updates/tmod_c${ext}`, c]]),
    dkms: modulePackage(sub, 'tmod-dkms', kver, `${depends}, tmod-extra`, [[`updates/dkms/tmod_dkms${ext}`, d]]),
  };
}

/** A package without module files (a README and its md5sums), and no maintainer scripts. */
function plainPackage(dir: string): string {
  const stage = join(dir, 'tplain-stage');
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'DEBIAN'), { recursive: true });
  mkdirSync(join(stage, 'usr/share/doc/tplain'), { recursive: true });
  writeFileSync(join(stage, 'usr/share/doc/tplain/README'), 'no modules here\n');
  writeFileSync(join(stage, 'DEBIAN/md5sums'), `${createHash('md5').update('no modules here\n').digest('hex')}  usr/share/doc/tplain/README\n`);
  writeFileSync(join(stage, 'DEBIAN/control'), 'Package: tplain\nVersion: 1.0\nArchitecture: all\nMaintainer: T <t@example.org>\nDescription: e2e package without modules\n');
  const deb = join(dir, 'tplain_1.0_all.deb');
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '-b', stage, deb], { stdio: ['ignore', 'ignore', 'inherit'] });
  rmSync(stage, { recursive: true, force: true });
  return deb;
}

function apt(root: string, args: string[], env: Record<string, string>): { out: string; ms: number } {
  const r = inRoot(root, ['apt-get', '-y', '-q', '--no-install-recommends', '-o', 'DPkg::Use-Pty=0', ...args], env);
  assert.equal(r.status, 0, `apt-get ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
  assert.doesNotMatch(r.stdout + r.stderr, /depmod-tx hook .* failed/, r.stdout + r.stderr);
  return { out: r.stdout + r.stderr, ms: r.ms };
}

/** Issue 15 point 2: the diversion, a kmod reinstall, removal and purge, on the root's real kmod. */
function checkDiversion(root: string, pristineTarget: string): void {
  const depmod = join(root, 'usr/sbin/depmod');
  const ours = (): void => {
    assert.equal(readlinkSync(depmod), '/usr/lib/depmod-tx/hooks/depmod', 'the front end is the system depmod');
    assert.equal(readlinkSync(join(root, 'usr/sbin/depmod.kmod')), pristineTarget, "kmod's depmod, renamed");
    assert.match(mustInRoot(root, ['dpkg-divert', '--list']).stdout, /^diversion of \/sbin\/depmod to \/sbin\/depmod\.kmod by depmod-tx$/m);
    const v = mustInRoot(root, ['depmod', '-V']).stdout.split('\n');
    assert.match(v[0]!, /^kmod version 30$/);
    assert.match(v[2]!, /^depmod-tx .*kmod's own: \/usr\/sbin\/depmod\.kmod$/);
  };
  const kmods = (): void => {
    assert.ok(lstatSync(depmod).isSymbolicLink());
    assert.equal(readlinkSync(depmod), pristineTarget, "kmod's depmod is back, as kmod shipped it");
    assert.ok(!existsSync(join(root, 'usr/sbin/depmod.kmod')));
    assert.doesNotMatch(mustInRoot(root, ['dpkg-divert', '--list']).stdout, /depmod-tx/);
    assert.equal(mustInRoot(root, ['depmod', '-V']).stdout.split('\n').filter((l) => l !== '').length, 2, "kmod's own -V");
    assert.ok(!existsSync(join(root, 'usr/lib/depmod-tx')));
  };
  mustInRoot(root, ['apt-get', 'install', '-y', '-q', 'depmod-tx']);
  ours();
  const kmodDeb = readdirSync(join(root, 'srv/kmod')).find((f) => f.startsWith('kmod_'));
  assert.ok(kmodDeb, "the base root keeps kmod's .deb");
  mustInRoot(root, ['dpkg', '-i', `/srv/kmod/${kmodDeb}`]);
  ours();
  mustInRoot(root, ['apt-get', 'remove', '-y', '-q', 'depmod-tx']);
  kmods();
  mustInRoot(root, ['apt-get', 'install', '-y', '-q', 'depmod-tx']);
  ours();
  mustInRoot(root, ['apt-get', 'purge', '-y', '-q', 'depmod-tx']);
  kmods();
  assert.ok(!existsSync(join(root, 'var/cache/depmod-tx')) && !existsSync(join(root, 'var/lib/depmod-tx')), 'purge removes the state');
}

/** The rpm's kernel-install plugin, run the way kernel-install runs plugins (remove, then add). */
function checkKernelInstallPlugin(root: string, kver: string, work: string): void {
  const plugin = '/usr/lib/depmod-tx/hooks/50-depmod.install';
  mustInRoot(root, [plugin, 'remove', kver, `/boot/efi/${kver}`, `/boot/vmlinuz-${kver}`]);
  assert.ok(!existsSync(join(root, 'lib/modules', kver, 'modules.dep')), 'remove: the database is gone');
  assert.ok(!existsSync(join(root, 'var/cache/depmod-tx', `${kver}.cache`)), 'remove: the cache is gone');
  mustInRoot(root, [plugin, 'add', kver, `/boot/efi/${kver}`, `/boot/vmlinuz-${kver}`]);
  assert.deepEqual(databaseDiffFromKmod(root, kver, work), [], 'add: the database equals depmod -a');
}

/** Node.js starts expected per step (install kernel + modules, remove modules, install modules, install plain, remove plain). */
function expectedStarts(mode: Mode): number[] {
  // immediate: each module package's depmod call finds the kernel's cache (built by the first
  // commit) and merges at once, in a Node.js process of its own, before the commit at the end.
  return { without: [0, 0, 0, 0, 0], defer: [1, 1, 1, 0, 0], immediate: [1, 3, 3, 0, 0] }[mode];
}

function runConfig(c: Config, d: Distro, ctx: { work: string; debs: string[]; withDiversionChecks: boolean }): StepResult[] {
  const root = join(ctx.work, `root-${c.suite}-${c.tree}-${c.mode}`);
  unpackRoot(d.base, root);
  try {
    const pristine = readlinkSync(join(root, 'usr/sbin/depmod'));
    useLocalRepo(root, ctx.debs);
    if (c.mode !== 'without') {
      if (ctx.withDiversionChecks) checkDiversion(root, pristine);
      mustInRoot(root, ['apt-get', 'install', '-y', '-q', 'depmod-tx']);
      if (c.mode === 'immediate') writeFileSync(join(root, 'etc/depmod-tx.conf'), 'depmod-calls = immediate\n');
    }
    const timed = timeCalls(root, ['usr/sbin/depmod', 'usr/sbin/update-initramfs']);
    const nodes = nodeStarts(root);
    const env = c.mode === 'without' ? {} : timed.env;
    const results: StepResult[] = [];
    const step = (name: string, args: string[]): StepResult => {
      // The timing log's clock (date +%s%N) is the host's: apt-get's span on the same clock.
      const began = BigInt(Date.now()) * 1_000_000n;
      const { ms, out } = apt(root, args, env);
      const ended = BigInt(Date.now()) * 1_000_000n;
      waitForBackgroundBuilds(root);
      const calls = takeTimings(root);
      // Debian 13's kernel hook asks update-initramfs --version first: that is no build.
      const initrd = calls.filter((x) => x.name === 'update-initramfs' && x.args !== '--version');
      // Background work: the front end's cache builds (depmod-tx depmod), and a commit that answered
      // and went on building a new kernel's cache (src/txn/cache-later.ts) past apt-get's return.
      const background = calls.filter(isBackgroundBuild);
      const lastEnd = calls.filter((x) => x.name === 'depmod-tx').reduce((m, x) => (x.endNs > m ? x.endNs : m), 0n);
      const inApt = (x: TimedCall): TimedCall => ({ ...x, startNs: x.startNs < began ? began : x.startNs, endNs: x.endNs > ended ? ended : x.endNs });
      const r = {
        step: name, wallMs: ms, depmodMs: coveredMs(calls.filter((x) => x.name !== 'update-initramfs' && !isBackgroundBuild(x)).map(inApt).filter((x) => x.endNs > x.startNs)),
        backgroundMs: coveredMs(background), backgroundAfterMs: lastEnd > ended ? Number(lastEnd - ended) / 1e6 : 0, initrdMs: coveredMs(initrd), initrdBuilds: initrd.length, calls,
        nodeStarts: nodes.take(), out,
      };
      assert.deepEqual(databaseDiffFromKmod(root, d.kver, ctx.work, d.oracle), [], `${configName(c)} ${name}: the database equals depmod -a`);
      assert.ok(calls.every((x) => x.status === 0), `${name}: every call succeeded:\n${calls.map((x) => `${x.name} ${x.args} → ${x.status}`).join('\n')}`);
      const want = expectedStarts(c.mode)[results.length];
      assert.equal(r.nodeStarts.length, want, `${configName(c)} ${name}: ${want} Node.js start(s):\n${r.nodeStarts.join('\n')}`);
      results.push(r);
      return r;
    };
    const t1 = step('install kernel + 2 module packages', ['install', d.kernelPkg, 'tmod-extra', 'tmod-dkms']);
    assert.ok(existsSync(join(root, 'lib/modules', d.kver, 'updates/dkms')), 'the DKMS-like package is installed');
    assert.equal(t1.initrdBuilds, 1, `one initrd build for the new kernel:\n${t1.calls.map((x) => `${x.name} ${x.args}`).join('\n')}`);
    // depmod-tx writes only files whose bytes change: the initrd was built after the final database
    // (apt unpacks the module packages before the kernel's postinst builds both). Not with
    // immediate: the module packages' depmod calls find no cache of the new kernel yet and go to
    // kmod's depmod, which rewrites every file (the same bytes) after the initrd, as without depmod-tx.
    if (c.mode === 'defer') {
      assert.ok(
        mtimeIn(root, `lib/modules/${d.kver}/modules.dep.bin`)! <= mtimeIn(root, `boot/initrd.img-${d.kver}`)!,
        `the initrd is newer than the database:\n${t1.calls.map((x) => `${x.name} (${x.package}) ${x.args} ${x.startNs}-${x.endNs}`).join('\n')}\n${t1.out}`,
      );
    }
    const t2 = step('remove the 2 module packages', ['remove', 'tmod-extra', 'tmod-dkms']);
    const t3 = step('install the 2 module packages (KMP only)', ['install', 'tmod-extra', 'tmod-dkms']);
    for (const t of [t2, t3]) assert.equal(t.initrdBuilds, 0, `${t.step}: no initrd build (none without depmod-tx either)`);
    // The module packages' own depmod calls made the change (immediate), or left it to the commit (defer).
    const commitLine = new RegExp(`^${d.kver.replaceAll('.', '\\.').replaceAll('+', '\\+')}: (changed|unchanged)`, 'm');
    for (const t of [t2, t3]) {
      assert.equal(t.calls.filter((x) => x.name === 'depmod' && x.package.startsWith('tmod-')).length, 2, `${t.step}: both packages called depmod`);
      if (c.mode !== 'without') assert.equal(commitLine.exec(t.out)?.[1], c.mode === 'defer' ? 'changed' : 'unchanged', `${t.step}: the commit at the end\n${t.out}`);
    }
    if (c.mode === 'defer') assert.deepEqual(readdirSync(join(root, 'var/lib/depmod-tx/deferred')), [], 'every deferred kernel was merged by the commit');
    // A package without module files: the apt hook runs in shell, no trigger fires, Post-Invoke drops
    // the apt hook's spool file: no Node.js start, and nothing of depmod-tx's state changes.
    const state = () => [...filesUnder(join(root, 'var/lib/depmod-tx')), ...filesUnder(join(root, 'var/cache/depmod-tx'))];
    const before = state();
    step('install a package without modules', ['install', 'tplain']);
    step('remove the package without modules', ['remove', 'tplain']);
    assert.deepEqual(state(), before, 'no module file: no file left behind');
    if (ctx.withDiversionChecks) checkKernelInstallPlugin(root, d.kver, ctx.work);
    return results;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A new kernel's cache built by `depmod-tx depmod` in the background (timed through DEPMOD_TX). */
const isBackgroundBuild = (c: TimedCall): boolean => c.name === 'depmod-tx' && c.args.startsWith('depmod ');

/**
 * Waits until no background cache build runs in the root (its pid is in var/cache/depmod-tx/
 * KVER.cache.building) and no timed depmod-tx call is still running (it logs its time when it ends).
 */
function waitForBackgroundBuilds(root: string): void {
  const dir = join(root, 'var/cache/depmod-tx');
  const deadline = Date.now() + 300_000;
  const timedCallRunning = (): boolean =>
    readdirSync('/proc').some((p) => {
      if (!/^[0-9]+$/.test(p)) return false;
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('/usr/lib/e2e-timing/depmod-tx');
      } catch {
        return false;
      }
    });
  const running = (): boolean =>
    timedCallRunning() ||
    (existsSync(dir) &&
    readdirSync(dir).some((f) => {
      if (!f.endsWith('.building')) return false;
      try {
        process.kill(Number(readFileSync(join(dir, f), 'utf8')), 0);
        return true;
      } catch {
        return false;
      }
    }));
  while (running() && Date.now() < deadline) spawnSync('sleep', ['0.05']);
}

function bookworm(): Distro {
  const k = realKernel('cloud-amd64');
  const kernelDeb = readdirSync(kernelCache).find((f) => f.startsWith(`linux-image-${k.kver}-unsigned_`) && f.endsWith('.deb'));
  assert.ok(kernelDeb, 'the kernel image .deb is in the kernel cache');
  return {
    base: debianBase('bookworm'), kver: k.kver, kernelPkg: `linux-image-${k.kver}-unsigned`,
    kernels: { ko: join(kernelCache, kernelDeb), xz: xzKernelDeb(join(kernelCache, kernelDeb)) },
    syms: realExports(k.symvers, (m) => existsSync(join(k.moddir, 'kernel', `${m}.ko`))), oracle: kmod30(),
  };
}

function trixie(): Distro {
  const k = trixieCloudKernel();
  const shipped = new Set(execFileSync('dpkg-deb', ['--info', k.deb, 'md5sums'], { encoding: 'utf8', maxBuffer: 1 << 26 }).split('\n').map((l) => l.slice(34)));
  return {
    base: debianBase('trixie'), kver: k.kver, kernelPkg: `linux-image-${k.kver}-unsigned`, kernels: { xz: k.deb },
    syms: realExports(k.symvers, (m) => shipped.has(`usr/lib/modules/${k.kver}/kernel/${m}.ko.xz`)), oracle: kmod34(),
  };
}

test('Debian 12 and 13 roots: kernel + module packages through apt, without and with depmod-tx as the system depmod; Node.js starts counted', { skip, timeout: 5_400_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'dtx-e2e-sysdepmod-'));
  try {
    const selected = CONFIGS.filter((x) => ONLY === undefined || ONLY.includes(configName(x)) || (x.suite === 'bookworm' && ONLY.includes(`${x.tree}/${x.mode}`)));
    const distros: Partial<Record<Suite, Distro>> = {};
    for (const c of selected) distros[c.suite] ??= c.suite === 'bookworm' ? bookworm() : trixie();
    const pkg = buildPackage(join(work, 'pkg'), 'deb');
    const plain = plainPackage(work);
    const all: Record<string, StepResult[][]> = {};
    let first = true;
    for (let run = 0; run < RUNS; run++) {
      for (const c of selected) {
        const d = distros[c.suite]!;
        const mods = modulePackages(join(work, 'mods', c.suite), d.kver, d.kernelPkg, c.tree, d.syms);
        const diversion = first && c.suite === 'bookworm' && c.mode === 'defer';
        const results = runConfig(c, d, { work, debs: [d.kernels[c.tree]!, mods.extra, mods.dkms, plain, pkg], withDiversionChecks: diversion });
        if (diversion) first = false;
        (all[configName(c)] ??= []).push(results);
      }
    }
    // Medians per configuration and step, and the calls of the last run.
    const table: Array<Record<string, unknown>> = [];
    for (const [cfg, runs] of Object.entries(all)) {
      runs[0]!.forEach((s, i) => {
        const of = (f: (r: StepResult) => number): number => median(runs.map((r) => f(r[i]!)));
        table.push({
          config: cfg, step: s.step, runs: runs.length, wallS: +(of((r) => r.wallMs) / 1000).toFixed(2), depmodS: +(of((r) => r.depmodMs) / 1000).toFixed(2),
          backgroundS: +(of((r) => r.backgroundMs) / 1000).toFixed(2), backgroundAfterS: +(of((r) => r.backgroundAfterMs) / 1000).toFixed(2),
          initrdS: +(of((r) => r.initrdMs) / 1000).toFixed(2), initrdBuilds: s.initrdBuilds, nodeStarts: s.nodeStarts.length,
          calls: runs[runs.length - 1]![i]!.calls.map((x) => `${x.name}${x.package !== '-' ? ` (${x.package})` : ''} ${x.args}: ${(Number(x.endNs - x.startNs) / 1e9).toFixed(2)} s`),
        });
      });
    }
    mkdirSync(E2E_CACHE, { recursive: true });
    writeFileSync(join(E2E_CACHE, 'timings.json'), `${JSON.stringify(table, null, 2)}\n`);
    for (const row of table) {
      console.log(
        `${String(row.config).padEnd(22)} ${String(row.step).padEnd(42)} wall ${row.wallS} s, depmod+depmod-tx ${row.depmodS} s (+ background ${row.backgroundS} s, ${row.backgroundAfterS} s after apt), initrd ${row.initrdS} s (${row.initrdBuilds}), Node.js starts ${row.nodeStarts}`,
      );
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
