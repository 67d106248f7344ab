// End to end with the real zypper (Debian 12: zypper 1.14 / libzypp 17.22). libzypp runs commit
// plugins only when its root is "/", so zypper runs chrooted in a disposable root that holds what
// it needs (zypper, rpm, libsolv's tools and their libraries, rpm's /usr/lib/rpm) next to the hook's
// run time; the packages come from a local createrepo_c repository inside the root. In classic mode
// libzypp runs one `rpm -U` per package, so without the plugin each package commits on its own;
// with it, every transaction must end with exactly one merge per kernel it touched (counted from
// the hook calls' output, callLog), a database equal to Debian's `depmod -a`, and one Node.js start
// (issue 23: the plugin is bash and the triggers spool in shell); a transaction whose packages have
// no module file starts none and leaves no file.
// Also: no plugin (per-package commits, nothing lost), `zypper --root` from outside (no plugins
// run there: per-package commits), and `replay` of zypper's own history after a transaction whose
// hooks failed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  assertWeakStep, BROKEN_HOOKS, buildPackage, callLog, chrootRuntime, cleanEnv, clientKmps, databaseDiff, e2eSkip, filesUnder, HOOK_RUNTIME, kernelModules, KVER, KVER2, mergeCounts,
  nextSecond, nodeStarts, replayCatchesUp, rpmPackage, rpmRepo, WEAK_KVERS, weakKernelFiles, weakLinksOf,
} from './support.ts';

const skip = e2eSkip('zypper', ['zypper', 'rpm', 'rpmbuild', 'rpmdb2solv', 'repo2solv', 'createrepo_c', 'depmod', 'flock', 'xz', 'chroot', 'ldd', 'bash'], 'zypper createrepo-c rpm', 'zypper runs chrooted (commit plugins run only for root "/")');

const PLUGIN = 'usr/lib/zypp/plugins/commit/depmod-tx';

test('zypper: one merge per kernel per transaction through the commit plugin; fallbacks without it; replay of the zypp history; weak-updates: a KMP for A linked into B and C', { skip, timeout: 360_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dtx-e2e-zypper-'));
  try {
    const Z = join(dir, 'root');
    chrootRuntime(Z, [...HOOK_RUNTIME, 'bash', 'zypper', 'rpm', 'rpmdb2solv', 'repo2solv'], ['/usr/lib/rpm']);
    const calls = callLog(Z);
    const nodes = nodeStarts(Z);
    const k = clientKmps();
    // nodejs, util-linux and /bin/sh are files chrootRuntime put there; this package says so to the solver.
    rpmRepo(join(Z, 'repo1'), [
      buildPackage(join(dir, 'pkg'), 'rpm'),
      rpmPackage(dir, 'e2e-runtime', '1.0', [], ['nodejs = 20', 'util-linux', 'xz', '/bin/sh', '/usr/bin/awk']),
      rpmPackage(dir, 'kernel-test', '9.9.9', [{ kver: KVER, mods: kernelModules(), order: true }]),
      rpmPackage(dir, 'kmp-a', '1.0', [{ kver: KVER, mods: k.a1 }]),
      rpmPackage(dir, 'kmp-c', '1.0', [{ kver: KVER, mods: k.c }]),
      rpmPackage(dir, 'plain', '1.0', []),
    ]);
    rpmRepo(join(Z, 'repo2'), [rpmPackage(dir, 'kmp-a', '2.0', [{ kver: KVER, mods: k.a2 }]), rpmPackage(dir, 'kernel-test2', '9.9.8', [{ kver: KVER2, mods: kernelModules(), order: true }])]);

    const zypper = (args: string[], opts: { env?: Record<string, string>; chroot?: boolean } = {}): string => {
      const argv = opts.chroot === false ? ['zypper', '--root', Z, '--non-interactive', '--no-refresh', ...args] : ['chroot', Z, 'zypper', '--non-interactive', ...args];
      const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env: cleanEnv({ ...calls.env, ...opts.env }) });
      assert.equal(r.status, 0, `zypper ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
      return r.stdout + r.stderr;
    };
    const install = (pkgs: string[], env?: Record<string, string>) => zypper(['install', '--allow-unsigned-rpm', '--no-recommends', ...pkgs], env ? { env } : {});
    const step = (what: string, expected: Record<string, number>, starts = 1) => {
      const got = mergeCounts(calls.take(), Object.keys(expected));
      assert.deepEqual(got, expected, `${what}: merges per kernel`);
      for (const kver of Object.keys(expected)) assert.deepEqual(databaseDiff(Z, kver), [], `${what}: ${kver} database equals depmod -a`);
      const started = nodes.take();
      assert.equal(started.length, starts, `${what}: Node.js starts:\n${started.join('\n')}`);
    };
    const state = () => [...filesUnder(join(Z, 'var/lib/depmod-tx')), ...filesUnder(join(Z, 'var/cache/depmod-tx'))];

    zypper(['addrepo', '-G', 'file:///repo1', 'repo1']);
    zypper(['refresh']);
    install(['depmod-tx']);
    assert.ok(existsSync(join(Z, PLUGIN)), 'the rpm installs the commit plugin');
    calls.take();
    assert.deepEqual(nodes.take(), [], 'installing depmod-tx starts no Node.js');
    const wm2 = spawnSync('chroot', [Z, '/usr/lib/depmod-tx/weak-modules2', '--help'], { encoding: 'utf8', env: cleanEnv() });
    assert.equal(wm2.status, 0, wm2.stderr);
    assert.match(wm2.stdout, /^Usage:\n {4}weak-modules2 --add-kmp/, 'the rpm ships weak-modules2: depmod-tx called by that name is SUSE\'s tool');
    assert.equal(nodes.take().length, 1, 'weak-modules2 --help: its own Node.js start');
    // A package without module files, installed and removed: the plugin runs, no Node.js, nothing left.
    const before = state();
    install(['plain']);
    zypper(['remove', 'plain']);
    assert.deepEqual(nodes.take(), [], 'no module file: no Node.js start');
    assert.deepEqual(state(), before, 'no module file: no file left behind');

    install(['kernel-test', 'kmp-a', 'kmp-c']);
    step('kernel + two KMPs in one zypper transaction', { [KVER]: 1 });
    assert.ok(!existsSync(join(Z, 'var/lib/depmod-tx/zypp-plugin.pid')), 'the plugin removed its mark');
    assert.match(readFileSync(join(Z, `lib/modules/${KVER}/modules.dep`), 'utf8'), /^updates\/kmpb\.ko\.xz: updates\/kmpa\.ko /m);

    zypper(['addrepo', '-G', 'file:///repo2', 'repo2']);
    zypper(['refresh']);
    install(['kmp-a', 'kernel-test2']);
    step('KMP upgrade + second kernel in one transaction', { [KVER]: 1, [KVER2]: 1 });
    assert.doesNotMatch(readFileSync(join(Z, `lib/modules/${KVER}/modules.dep`), 'utf8'), /kmpb/);

    zypper(['remove', 'kmp-a', 'kmp-c']);
    step('two KMPs removed in one transaction', { [KVER]: 1 });

    // No plugin: every package's rpm transaction commits (libzypp's classic mode), nothing is lost.
    renameSync(join(Z, PLUGIN), join(dir, 'plugin'));
    install(['kmp-a', 'kmp-c']);
    step('two KMPs, no commit plugin', { [KVER]: 2 }, 2);
    copyFileSync(join(dir, 'plugin'), join(Z, PLUGIN));

    // zypper --root from outside: libzypp runs no commit plugins for another root, so the triggers
    // must not wait for one.
    zypper(['remove', 'kmp-a', 'kmp-c'], { chroot: false });
    step('zypper --root, two KMPs removed', { [KVER]: 2 }, 2);

    // Hooks that fail (as if installed with --noscripts): nothing merged; replay of zypper's own
    // history since then catches up, and the transactions before --since are not replayed.
    install(['kmp-c']);
    calls.take();
    nodes.take();
    const since = await nextSecond();
    install(['kmp-a'], BROKEN_HOOKS);
    zypper(['remove', 'kmp-c'], { env: BROKEN_HOOKS });
    assert.deepEqual(mergeCounts(calls.take(), [KVER]), { [KVER]: 0 });
    replayCatchesUp(Z, join(Z, 'var/log/zypp/history'), since, /zypp-history, 2 package change\(s\) since .*: 1 installed \(kmp-a\), 1 gone \(kmp-c\)/);
    assert.doesNotMatch(readFileSync(join(Z, `lib/modules/${KVER}/modules.alias`), 'utf8'), /tkmpc/, 'the removed KMP is gone from the database');

    const st = spawnSync(join(Z, 'usr/bin/depmod-tx'), ['status', '--root', Z, '--json'], { encoding: 'utf8', env: cleanEnv() });
    assert.deepEqual(JSON.parse(st.stdout).pending, [], 'nothing left in the journal');

    // weak-updates, SUSE's rules (on by the search line of suse-module-tools' depmod-00-system.conf): a
    // KMP (found as rpm's *-kmp-* package) for kernel A with A, B, C installed is linked into B and
    // C, and each of the three is merged once by the transaction's commit.
    writeFileSync(join(Z, 'etc/depmod.d/00-system.conf'), 'search updates extra weak-updates kgraft built-in\n');
    const [wa, wb, wc] = WEAK_KVERS;
    rpmRepo(join(Z, 'repo3'), [
      ...WEAK_KVERS.map((kv, i) => rpmPackage(dir, `kernel-w${i}`, '1.0', [{ kver: kv, mods: kernelModules(), order: true }], [], weakKernelFiles(kv))),
      rpmPackage(dir, 'wdrv-kmp-wtest', '1.0', [{ kver: wa, mods: [['updates/wdrv/kmpc.ko', k.c[0]![1]]] }]),
    ]);
    zypper(['addrepo', '-G', 'file:///repo3', 'repo3']);
    zypper(['refresh']);
    const weakStep = (what: string): void => assertWeakStep(Z, calls.take(), what);
    install(['kernel-w0', 'kernel-w1', 'kernel-w2']);
    weakStep('three kernels');
    install(['wdrv-kmp-wtest']);
    weakStep('KMP for the first of three kernels');
    assert.deepEqual(weakLinksOf(Z, wa), {});
    for (const kv of [wb, wc]) assert.deepEqual(weakLinksOf(Z, kv), { 'updates/wdrv/kmpc.ko': `/lib/modules/${wa}/updates/wdrv/kmpc.ko` }, `${kv}: linked`);
    zypper(['remove', 'wdrv-kmp-wtest']);
    weakStep('KMP removed');
    for (const kv of WEAK_KVERS) assert.deepEqual(weakLinksOf(Z, kv), {}, `${kv}: no link left behind`);
  } finally {
    if (!process.env.DTX_E2E_KEEP) rmSync(dir, { recursive: true, force: true });
  }
});
