// End to end with the real pacman (Debian 12: pacman 6.0 / libalpm 13) into a disposable `--root`:
// depmod-tx's own package from pacman/PKGBUILD and the test kernel and KMPs, all built with
// makepkg (.pkg.tar.zst, modules under usr/lib/modules as on Arch). libalpm runs the alpm hook
// (60-depmod-tx.hook) once per transaction, chrooted into the root, with the matching paths on
// stdin: every transaction must end with exactly one merge per kernel it touched (counted from the
// hook calls' output, callLog), a database equal to Debian's `depmod -a` and one Node.js start (issue
// 23: the hook spools in shell, then commits); a transaction whose packages have no module file
// starts none and leaves no file. Then `replay` of the
// root's /var/log/pacman.log after transactions whose hook failed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BROKEN_HOOKS, buildPackageAsync, callLog, chrootRuntime, cleanEnv, clientKmps, databaseDiff, e2eSkip, filesUnder, HOOK_RUNTIME, kernelModules, KVER, KVER2, mergeCounts, nextSecond, nodeStarts,
  pacmanPackage, replayCatchesUp,
} from './support.ts';

const skip = e2eSkip('pacman', ['pacman', 'makepkg', 'bsdtar', 'fakeroot', 'setpriv', 'depmod', 'flock', 'xz', 'zstd', 'chroot', 'ldd'], 'pacman-package-manager makepkg libarchive-tools', 'pacman --root runs hooks in a chroot');

test('pacman: the alpm hook merges once per kernel per transaction (install, upgrade + second kernel, removal); replay of pacman.log', { skip, timeout: 240_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dtx-e2e-pacman-'));
  try {
    const P = join(dir, 'root');
    chrootRuntime(P, HOOK_RUNTIME);
    // Arch keeps modules in /usr/lib/modules (/lib is a link there); Debian's depmod, the oracle,
    // reads /lib/modules. lib stays a real directory for the run time's libraries.
    mkdirSync(join(P, 'usr/lib/modules'), { recursive: true });
    symlinkSync('../usr/lib/modules', join(P, 'lib/modules'));
    mkdirSync(join(P, 'var/lib/pacman'), { recursive: true });
    const calls = callLog(P);
    const nodes = nodeStarts(P);
    const conf = join(dir, 'pacman.conf');
    writeFileSync(conf, '[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n');
    const k = clientKmps();
    const [dtx, runtime, kernel, a1, c, a2, kernel2, plain] = await Promise.all([
      buildPackageAsync(join(dir, 'pkg'), 'pacman'),
      // nodejs, util-linux and xz are files chrootRuntime put there; this package says so to pacman.
      pacmanPackage(dir, 'e2e-runtime', '1.0', [], ['nodejs=20', 'util-linux', 'xz', 'awk']),
      pacmanPackage(dir, 'kernel-test', '1.0', [{ kver: KVER, mods: kernelModules(), order: true }]),
      pacmanPackage(dir, 'kmp-a', '1.0', [{ kver: KVER, mods: k.a1 }]),
      pacmanPackage(dir, 'kmp-c', '1.0', [{ kver: KVER, mods: k.c }]),
      pacmanPackage(dir, 'kmp-a', '2.0', [{ kver: KVER, mods: k.a2 }]),
      pacmanPackage(dir, 'kernel-test2', '1.0', [{ kver: KVER2, mods: kernelModules(), order: true }]),
      pacmanPackage(dir, 'plain', '1.0', []),
    ]);

    const pacman = (args: string[], env: Record<string, string> = {}): string => {
      const r = spawnSync('pacman', ['--root', P, '--config', conf, '--noconfirm', ...args], { encoding: 'utf8', env: cleanEnv({ ...calls.env, ...env }) });
      assert.equal(r.status, 0, `pacman ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
      return r.stdout + r.stderr;
    };
    const step = (what: string, expected: Record<string, number>) => {
      assert.deepEqual(mergeCounts(calls.take(), Object.keys(expected)), expected, `${what}: merges per kernel`);
      for (const kver of Object.keys(expected)) assert.deepEqual(databaseDiff(P, kver), [], `${what}: ${kver} database equals depmod -a`);
      const started = nodes.take();
      assert.equal(started.length, 1, `${what}: one Node.js start:\n${started.join('\n')}`);
    };
    const state = () => [...filesUnder(join(P, 'var/lib/depmod-tx')), ...filesUnder(join(P, 'var/cache/depmod-tx'))];

    pacman(['-U', dtx, runtime]);
    assert.ok(existsSync(join(P, 'usr/share/libalpm/hooks/60-depmod-tx.hook')), 'the package installs the alpm hook');
    calls.take();
    assert.deepEqual(nodes.take(), [], 'installing depmod-tx starts no Node.js');
    // A package without module files, installed and removed: the alpm hook does not fire, nothing is left.
    const before = state();
    pacman(['-U', plain]);
    pacman(['-R', 'plain']);
    assert.deepEqual(nodes.take(), [], 'no module file: no Node.js start');
    assert.deepEqual(state(), before, 'no module file: no file left behind');

    const out = pacman(['-U', kernel, a1, c]);
    assert.match(out, /Updating kernel module dependencies \(depmod-tx\)/, out);
    step('kernel + two KMPs in one pacman transaction', { [KVER]: 1 });
    assert.match(readFileSync(join(P, `usr/lib/modules/${KVER}/modules.dep`), 'utf8'), /^updates\/kmpb\.ko\.xz: updates\/kmpa\.ko /m);

    pacman(['-U', a2, kernel2]);
    step('KMP upgrade + second kernel in one transaction', { [KVER]: 1, [KVER2]: 1 });
    assert.doesNotMatch(readFileSync(join(P, `usr/lib/modules/${KVER}/modules.dep`), 'utf8'), /kmpb/);

    pacman(['-R', 'kmp-a', 'kmp-c']);
    step('two KMPs removed in one transaction', { [KVER]: 1 });

    // A hook that fails: nothing merged; pacman's own log since then brings the database up to
    // date, and the transaction before --since is not replayed.
    pacman(['-U', c]);
    calls.take();
    nodes.take();
    const since = await nextSecond();
    pacman(['-U', a2], BROKEN_HOOKS);
    pacman(['-R', 'kmp-c'], BROKEN_HOOKS);
    assert.deepEqual(mergeCounts(calls.take(), [KVER]), { [KVER]: 0 });
    replayCatchesUp(P, join(P, 'var/log/pacman.log'), since, /pacman-log, 2 package change\(s\) since .*: 1 installed \(kmp-a\), 1 gone \(kmp-c\)/);
    assert.doesNotMatch(readFileSync(join(P, `usr/lib/modules/${KVER}/modules.alias`), 'utf8'), /tkmpc/, 'the removed KMP is gone from the database');

    pacman(['-R', 'depmod-tx']);
    assert.ok(!existsSync(join(P, 'var/lib/depmod-tx')) && !existsSync(join(P, 'var/cache/depmod-tx')), 'removal drops journal, state and cache');
  } finally {
    if (!process.env.DTX_E2E_KEEP) rmSync(dir, { recursive: true, force: true });
  }
});
