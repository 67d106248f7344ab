// End to end with the real rpm: the depmod-tx .rpm from scripts/package.mjs is installed with
// `rpm --root R`; kernel and KMP packages are built here by rpmbuild. rpm runs scriptlets and file
// triggers chrooted into R, so R gets a minimal run time first: sh, node, flock and the few tools
// the hook and the wrapper use, with their shared libraries (hard links where possible, copies
// otherwise). After every transaction the database must equal Debian's `depmod -a` of the tree,
// with exactly one merge per kernel the transaction touched (the commit's summary lines, which rpm
// passes through from %transfiletriggerin/%transfiletriggerpostun).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { FixtureModule } from '../support/fixture-elf.ts';
import { buildPackage, commitLines, databaseDiff, have, kernelModules, kmpModules, KVER, KVER2, stageModules } from './support.ts';

const missing = ['rpm', 'rpmbuild', 'depmod', 'flock', 'xz', 'chroot', 'ldd'].filter((c) => !have(c));
const notRoot = process.getuid?.() !== 0 ? 'rpm --root runs scriptlets in a chroot: needs root' : undefined;
const skip = missing.length > 0 ? `needs ${missing.join(', ')} (Debian: apt-get install rpm)` : (notRoot ?? false);
if (skip && process.env.CI === 'true') throw new Error(`e2e rpm: ${skip}`);

/** Puts each command (and the shared libraries ldd names) into ROOT at the host's paths. */
function chrootRuntime(root: string, commands: string[]): void {
  const place = (src: string, at: string) => {
    const dst = join(root, at);
    if (existsSync(dst)) return;
    mkdirSync(dirname(dst), { recursive: true });
    try {
      linkSync(src, dst);
    } catch {
      copyFileSync(src, dst);
    }
  };
  // bin → usr/bin as on merged-/usr systems; lib stays a real directory so lib/modules is R's own.
  mkdirSync(join(root, 'usr', 'bin'), { recursive: true });
  symlinkSync('usr/bin', join(root, 'bin'));
  for (const c of commands) {
    const p = execFileSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' }).trim();
    const real = realpathSync(p);
    place(real, real);
    place(real, `/usr/bin/${c}`);
    const ldd = spawnSync('ldd', [real], { encoding: 'utf8' });
    for (const m of ldd.stdout.matchAll(/(\/[^\s]+)/g)) place(realpathSync(m[1]!), m[1]!);
  }
  for (const d of ['tmp', 'dev', 'etc/depmod.d', 'var/lib/rpm']) mkdirSync(join(root, d), { recursive: true });
}

function rpmPackage(dir: string, name: string, version: string, files: Array<{ kver: string; mods: Array<[string, FixtureModule]>; order?: boolean }>): string {
  const top = join(dir, `rpmbuild-${name}-${version}`);
  const stage = join(top, 'stage');
  const listed: string[] = [];
  for (const f of files) listed.push(...stageModules(stage, f.kver, f.mods, { order: f.order ?? false }));
  const spec = join(top, `${name}.spec`);
  writeFileSync(
    spec,
    [
      `Name: ${name}`, `Version: ${version}`, 'Release: 1', 'Summary: e2e test package', 'License: MIT', 'BuildArch: noarch', 'AutoReqProv: no',
      '%global __os_install_post %{nil}', '%global debug_package %{nil}',
      '%description', 'e2e test package', '%install', `mkdir -p %{buildroot} && cp -a ${stage}/. %{buildroot}/`,
      '%files', ...listed, '',
    ].join('\n'),
  );
  const r = spawnSync('rpmbuild', ['-bb', '--nodeps', '--define', `_topdir ${top}`, spec], { encoding: 'utf8' });
  assert.equal(r.status, 0, `rpmbuild ${name}: ${r.stderr}`);
  return join(top, 'RPMS', 'noarch', `${name}-${version}-1.noarch.rpm`);
}

test('rpm: install depmod-tx, fake kernel, KMP install, two-kernel upgrade transaction, erase', { skip, timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'dtx-e2e-rpm-'));
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['DEPMOD_TX', 'DEPMOD_TX_ROOT', 'NODE_EXTRA_CA_CERTS', 'NODE_OPTIONS']) delete env[k];
  try {
    const pkg = buildPackage(join(dir, 'pkg'), 'rpm');
    const R = join(dir, 'root');
    chrootRuntime(R, ['sh', 'node', 'flock', 'cat', 'dirname', 'readlink', 'rm', 'xz']);
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
    };

    rpm(['--initdb']);
    // --nodeps: nodejs and util-linux are not packages in this root; chrootRuntime put their files there.
    rpm(['-i', '--nodeps', pkg]);
    assert.ok(existsSync(join(R, 'usr/lib/depmod-tx/hooks/depmod-tx-hook')));
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
    assert.equal(st.status, 0, st.stderr);
    const s = JSON.parse(st.stdout);
    assert.deepEqual(s.pending, [], 'journal empty');
    assert.equal(s.last[KVER]?.status, 'merged');
    assert.equal(s.last[KVER2]?.status, 'merged');

    rpm(['-e', 'depmod-tx']);
    assert.ok(!existsSync(join(R, 'var/lib/depmod-tx')) && !existsSync(join(R, 'var/cache/depmod-tx')), 'erase removes journal, state and cache');
    assert.ok(existsSync(join(R, `lib/modules/${KVER}/modules.dep.bin`)), 'the database stays');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
