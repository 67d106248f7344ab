// End to end with the real rpm: the depmod-tx .rpm from scripts/package.mjs is installed with
// `rpm --root R`; kernel and KMP packages are built here by rpmbuild. rpm runs scriptlets and file
// triggers chrooted into R, so R gets a minimal run time first: sh, node, flock and the few tools
// the hook and the wrapper use, with their shared libraries (hard links where possible, copies
// otherwise). After every transaction the database must equal Debian's `depmod -a` of the tree,
// with exactly one merge per kernel the transaction touched (the commit's summary lines, which rpm
// passes through from %transfiletriggerin/%transfiletriggerpostun), and exactly one Node.js start
// per transaction (issue 23: the file triggers spool in shell; the second transaction trigger finds
// nothing pending).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPackage, chrootRuntime, cleanEnv, commitLines, databaseDiff, e2eSkip, HOOK_RUNTIME, kernelModules, kmpModules, KVER, KVER2, nodeStarts, rpmPackage } from './support.ts';

const skip = e2eSkip('rpm', ['rpm', 'rpmbuild', 'depmod', 'flock', 'xz', 'chroot', 'ldd'], 'rpm', 'rpm --root runs scriptlets in a chroot');

test('rpm: install depmod-tx, fake kernel, KMP install, two-kernel upgrade transaction, erase', { skip, timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'dtx-e2e-rpm-'));
  const env = cleanEnv();
  try {
    const pkg = buildPackage(join(dir, 'pkg'), 'rpm');
    const R = join(dir, 'root');
    chrootRuntime(R, HOOK_RUNTIME);
    const nodes = nodeStarts(R);
    const oneStart = (what: string) => {
      const started = nodes.take();
      assert.equal(started.length, 1, `${what}: one Node.js start:\n${started.join('\n')}`);
    };
    const rpm = (args: string[]): string => {
      const r = spawnSync('rpm', ['--root', R, '--dbpath', '/var/lib/rpm', ...args], { encoding: 'utf8', env });
      assert.equal(r.status, 0, `rpm ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
      assert.doesNotMatch(r.stderr, /depmod-tx hook .* failed/, `rpm ${args.join(' ')}: ${r.stderr}`);
      return r.stdout + r.stderr;
    };
    const step = (out: string, what: string, kvers: string[]) => {
      for (const k of kvers) {
        const lines = commitLines(out, k);
        assert.equal(lines.length, 1, `${what}: one merge for ${k}; rpm printed:\n${out}`);
        assert.match(lines[0]!, /changed \d+ file/, `${what}: ${lines[0]}`);
        assert.deepEqual(databaseDiff(R, k), [], `${what}: ${k} database equals depmod -a`);
      }
      oneStart(what);
    };

    rpm(['--initdb']);
    // --nodeps: nodejs and util-linux are not packages in this root; chrootRuntime put their files there.
    rpm(['-i', '--nodeps', pkg]);
    assert.deepEqual(nodes.take(), [], 'installing depmod-tx starts no Node.js');
    assert.ok(existsSync(join(R, 'usr/lib/depmod-tx/hooks/depmod-tx-hook')));
    assert.ok(existsSync(join(R, 'usr/share/man/man1/depmod-tx.1.gz')), 'man page installed');
    assert.ok(existsSync(join(R, 'usr/share/bash-completion/completions/depmod-tx')), 'bash completion installed');
    const trig = spawnSync('rpm', ['--root', R, '--dbpath', '/var/lib/rpm', '-q', '--filetriggers', 'depmod-tx'], { encoding: 'utf8' }).stdout;
    for (const t of ['filetriggerin', 'filetriggerun', 'transfiletriggerin', 'transfiletriggerpostun']) assert.match(trig, new RegExp(`^${t} scriptlet .*-- /lib/modules, /usr/lib/modules`, 'm'));

    step(rpm(['-i', rpmPackage(dir, 'kernel-test', '9.9.9', [{ kver: KVER, mods: kernelModules(), order: true }])]), 'kernel install', [KVER]);
    step(rpm(['-i', rpmPackage(dir, 'tkmp', '1.0', [{ kver: KVER, mods: kmpModules(1) }])]), 'KMP install', [KVER]);
    assert.match(readFileSync(join(R, `lib/modules/${KVER}/modules.dep`), 'utf8'), /^updates\/kmpb\.ko\.xz: updates\/kmpa\.ko /m);

    // One transaction, two kernels: the KMP upgrade (changed, dropped, added module) and a second kernel.
    const out = rpm(['-U', rpmPackage(dir, 'tkmp', '2.0', [{ kver: KVER, mods: kmpModules(2) }]), rpmPackage(dir, 'kernel-test2', '9.9.8', [{ kver: KVER2, mods: kernelModules(), order: true }])]);
    if (process.env.DTX_E2E_DEBUG) console.log(out);
    step(out, 'KMP upgrade + second kernel', [KVER, KVER2]);
    assert.doesNotMatch(readFileSync(join(R, `lib/modules/${KVER}/modules.dep`), 'utf8'), /kmpb/);

    step(rpm(['-e', 'tkmp']), 'KMP erase', [KVER]);
    assert.doesNotMatch(readFileSync(join(R, `lib/modules/${KVER}/modules.alias`), 'utf8'), /TST000/);

    const st = spawnSync('chroot', [R, '/usr/bin/depmod-tx', 'status', '--json'], { encoding: 'utf8', env });
    nodes.take();
    assert.equal(st.status, 0, st.stderr);
    const s = JSON.parse(st.stdout);
    assert.deepEqual(s.pending, [], 'journal empty');
    assert.equal(s.last[KVER]?.status, 'merged');
    assert.equal(s.last[KVER2]?.status, 'merged');

    // Erasing a kernel: rpm leaves its directory (our modules.* are in it); no database is written
    // into what is left, and status says the kernel was removed.
    const dbBefore = statSync(join(R, `lib/modules/${KVER2}/modules.dep.bin`)).mtimeMs;
    const erased = rpm(['-e', 'kernel-test2']);
    oneStart('kernel erase');
    const lines = commitLines(erased, KVER2);
    assert.equal(lines.length, 1, erased);
    assert.match(lines[0]!, /kernel removed \(no modules left\), no database written/);
    assert.equal(statSync(join(R, `lib/modules/${KVER2}/modules.dep.bin`)).mtimeMs, dbBefore);
    const st2 = spawnSync('chroot', [R, '/usr/bin/depmod-tx', 'status', '--json'], { encoding: 'utf8', env });
    assert.equal(JSON.parse(st2.stdout).last[KVER2]?.status, 'removed', st2.stdout);

    rpm(['-e', 'depmod-tx']);
    assert.ok(!existsSync(join(R, 'var/lib/depmod-tx')) && !existsSync(join(R, 'var/cache/depmod-tx')), 'erase removes journal, state and cache');
    assert.ok(existsSync(join(R, `lib/modules/${KVER}/modules.dep.bin`)), 'the database stays');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
