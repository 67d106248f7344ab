// End to end with the real dnf (Debian 12: dnf 4.14) into a disposable `--installroot`, from local
// createrepo_c repositories. dnf runs one rpm transaction for the whole dnf transaction, so rpm's
// transaction file triggers fire once: every transaction must end with exactly one merge per
// kernel it touched (counted from the hook calls' output, callLog) and a database equal to
// Debian's `depmod -a`, and exactly one Node.js start (issue 23: the file triggers spool in shell,
// the second transaction trigger of an upgrade finds nothing pending); a transaction whose packages
// have no module file starts none and leaves no file. rpm runs the scriptlets chrooted into the
// root, which gets the hook's run time first. Then `replay` of `dnf history info` output after
// transactions whose hooks failed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  assertWeakStep, BROKEN_HOOKS, buildPackage, callLog, chrootRuntime, cleanEnv, clientKmps, databaseDiff, e2eSkip, filesUnder, HOOK_RUNTIME, kernelModules, KVER, KVER2, mergeCounts,
  nextSecond, nodeStarts, replayCatchesUp, rpmPackage, rpmRepo, WEAK_KVERS, weakKernelFiles, weakLinksOf,
} from './support.ts';

const skip = e2eSkip('dnf', ['dnf', 'rpm', 'rpmbuild', 'createrepo_c', 'depmod', 'flock', 'xz', 'chroot', 'ldd'], 'dnf createrepo-c rpm', 'rpm runs the scriptlets of dnf --installroot in a chroot');

test('dnf: one merge per kernel per transaction (install, upgrade + second kernel, removal); replay of dnf history info; weak-updates: a KMP for A linked into B and C', { skip, timeout: 360_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dtx-e2e-dnf-'));
  try {
    const D = join(dir, 'root');
    chrootRuntime(D, HOOK_RUNTIME);
    const calls = callLog(D);
    const nodes = nodeStarts(D);
    const k = clientKmps();
    const repo1 = rpmRepo(join(dir, 'repo1'), [
      buildPackage(join(dir, 'pkg'), 'rpm'),
      // nodejs, util-linux, xz and /bin/sh are files chrootRuntime put there; this package says so to the solver.
      rpmPackage(dir, 'e2e-runtime', '1.0', [], ['nodejs = 20', 'util-linux', 'xz', '/bin/sh', '/usr/bin/awk']),
      rpmPackage(dir, 'kernel-test', '9.9.9', [{ kver: KVER, mods: kernelModules(), order: true }]),
      rpmPackage(dir, 'kmp-a', '1.0', [{ kver: KVER, mods: k.a1 }]),
      rpmPackage(dir, 'kmp-c', '1.0', [{ kver: KVER, mods: k.c }]),
      rpmPackage(dir, 'plain', '1.0', []),
    ]);
    const repo2 = rpmRepo(join(dir, 'repo2'), [rpmPackage(dir, 'kmp-a', '2.0', [{ kver: KVER, mods: k.a2 }]), rpmPackage(dir, 'kernel-test2', '9.9.8', [{ kver: KVER2, mods: kernelModules(), order: true }])]);
    const repos = [`--repofrompath=repo1,file://${repo1}`, `--repofrompath=repo2,file://${repo2}`, '--setopt=repo1.gpgcheck=0', '--setopt=repo2.gpgcheck=0'];

    // Returns stdout; the repositories only where packages are resolved (dnf announces each on stdout).
    const dnf = (args: string[], env: Record<string, string> = {}): string => {
      const r = spawnSync('dnf', ['-y', `--installroot=${D}`, '--releasever=1', '--noplugins', '--setopt=reposdir=/nonexistent', '--setopt=install_weak_deps=False', ...(args[0] === 'history' ? [] : repos), ...args], {
        encoding: 'utf8',
        env: cleanEnv({ ...calls.env, ...env, LC_ALL: 'C' }),
      });
      assert.equal(r.status, 0, `dnf ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
      return r.stdout;
    };
    const step = (what: string, expected: Record<string, number>) => {
      assert.deepEqual(mergeCounts(calls.take(), Object.keys(expected)), expected, `${what}: merges per kernel`);
      for (const kver of Object.keys(expected)) assert.deepEqual(databaseDiff(D, kver), [], `${what}: ${kver} database equals depmod -a`);
      const started = nodes.take();
      assert.equal(started.length, 1, `${what}: one Node.js start:\n${started.join('\n')}`);
    };
    const state = () => [...filesUnder(join(D, 'var/lib/depmod-tx')), ...filesUnder(join(D, 'var/cache/depmod-tx'))];

    dnf(['install', 'depmod-tx']);
    calls.take();
    assert.deepEqual(nodes.take(), [], 'installing depmod-tx starts no Node.js');
    // A package without module files, installed and removed: no hook runs Node.js, nothing is left.
    const before = state();
    dnf(['install', 'plain']);
    dnf(['remove', 'plain']);
    assert.deepEqual(nodes.take(), [], 'no module file: no Node.js start');
    assert.deepEqual(state(), before, 'no module file: no file left behind');
    const wm = spawnSync('chroot', [D, '/usr/lib/depmod-tx/weak-modules', '--help'], { encoding: 'utf8', env: cleanEnv() });
    assert.equal(wm.status, 0, wm.stderr);
    assert.match(wm.stdout, /^Usage: weak-modules \[options\]/, "the rpm ships weak-modules: depmod-tx called by that name is RHEL's tool");
    assert.equal(nodes.take().length, 1, 'weak-modules --help: its own Node.js start');
    dnf(['install', 'kernel-test', 'kmp-a-1.0', 'kmp-c']);
    step('kernel + two KMPs in one dnf transaction', { [KVER]: 1 });
    assert.match(readFileSync(join(D, `lib/modules/${KVER}/modules.dep`), 'utf8'), /^updates\/kmpb\.ko\.xz: updates\/kmpa\.ko /m);

    dnf(['install', 'kmp-a-2.0', 'kernel-test2']);
    step('KMP upgrade + second kernel in one transaction', { [KVER]: 1, [KVER2]: 1 });
    assert.doesNotMatch(readFileSync(join(D, `lib/modules/${KVER}/modules.dep`), 'utf8'), /kmpb/);

    dnf(['remove', 'kmp-a', 'kmp-c']);
    step('two KMPs removed in one transaction', { [KVER]: 1 });

    // Hooks that fail: nothing merged. dnf's own history of the transactions since then, saved as
    // `dnf history info` prints it, brings the database up to date; the one before is filtered out.
    dnf(['install', 'kmp-c']);
    calls.take();
    nodes.take();
    const since = await nextSecond();
    dnf(['install', 'kmp-a-2.0'], BROKEN_HOOKS);
    dnf(['remove', 'kmp-c'], BROKEN_HOOKS);
    assert.deepEqual(mergeCounts(calls.take(), [KVER]), { [KVER]: 0 });
    const saved = join(dir, 'dnf-history.txt');
    writeFileSync(saved, ['last-2', 'last-1', 'last'].map((id) => dnf(['history', 'info', id])).join(''));
    replayCatchesUp(D, saved, since, /dnf-history, 2 package change\(s\) since .*: 1 installed \(kmp-a\), 1 gone \(kmp-c\)/);
    assert.doesNotMatch(readFileSync(join(D, `lib/modules/${KVER}/modules.alias`), 'utf8'), /tkmpc/, 'the removed KMP is gone from the database');

    // weak-updates, RHEL's rules (on by dist.conf's search line): a KMP for kernel A with A, B, C
    // installed is linked into B and C, and each of the three is merged once by the transaction.
    writeFileSync(join(D, 'etc/depmod.d/dist.conf'), 'search updates extra built-in weak-updates\n');
    const [wa, wb, wc] = WEAK_KVERS;
    rpmRepo(join(dir, 'repo3'), [
      ...WEAK_KVERS.map((kv, i) => rpmPackage(dir, `kernel-w${i}`, '1.0', [{ kver: kv, mods: kernelModules(), order: true }], [], weakKernelFiles(kv))),
      rpmPackage(dir, 'kmod-wdrv', '1.0', [{ kver: wa, mods: [['extra/wdrv/kmpc.ko', k.c[0]![1]]] }]),
    ]);
    repos.push(`--repofrompath=repo3,file://${join(dir, 'repo3')}`, '--setopt=repo3.gpgcheck=0');
    const weakStep = (what: string): void => assertWeakStep(D, calls.take(), what);
    dnf(['install', 'kernel-w0', 'kernel-w1', 'kernel-w2']);
    weakStep('three kernels');
    dnf(['install', 'kmod-wdrv']);
    weakStep('KMP for the first of three kernels');
    assert.deepEqual(weakLinksOf(D, wa), {});
    for (const kv of [wb, wc]) assert.deepEqual(weakLinksOf(D, kv), { 'wdrv/kmpc.ko': `/lib/modules/${wa}/extra/wdrv/kmpc.ko` }, `${kv}: linked`);
    dnf(['remove', 'kmod-wdrv']);
    weakStep('KMP removed');
    for (const kv of WEAK_KVERS) assert.deepEqual(weakLinksOf(D, kv), {}, `${kv}: no link left behind`);
  } finally {
    if (!process.env.DTX_E2E_KEEP) rmSync(dir, { recursive: true, force: true });
  }
});
