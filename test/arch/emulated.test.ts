// depmod-tx on Debian's own nodejs of other architectures, under qemu user mode: arm64, armhf,
// ppc64el, s390x (big-endian) and i386 (foreign-root.ts builds their roots and trees). For each, the
// architecture's own dpkg (so its nodejs meets the package's Depends, as on such a machine) runs in
// a root of that architecture:
//   1. installs a trimmed real Debian kernel of the architecture as a package (before depmod-tx:
//      no trigger yet), then the packaged depmod-tx .deb (no addon in it, none reachable);
//   2. `depmod-tx rebuild` through the installed wrapper and the root's node: a full parse of a few
//      hundred .ko.xz in parse workers through xz(1) batches;
//   3. installs a KMP of six modules of that architecture (plain .ko, .ko.xz, a concatenated .ko.xz
//      for the single-file decoder): the file trigger updates the database incrementally, once.
// After 2 and 3 the database must equal the host's depmod (kmod 30) on the root's tree. Removal and
// upgrade run no code that depends on the architecture; test/e2e/dpkg.test.ts covers them. Each
// emulated start of node costs seconds, so this suite starts it only twice per architecture. Time
// and peak RSS of every emulated node run are printed as test diagnostics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { realKernelSkipReason } from '../support/kernels.ts';
import { commitLines, databaseDiff } from '../e2e/support.ts';
import { ARCHES, buildArchDeb, elfIdentity, emulatedCommand, emulationSkipReason, foreignArch, makeDpkgRoot, readTimes, writeEmulatedNode, type ForeignArch } from './foreign-root.ts';
import { packagedCli, probeRuntime, scratchOutsideRepo, type PackagedCli } from './packaged.ts';

const skip = emulationSkipReason() ?? realKernelSkipReason() ?? false;

let shared: { dir: string; cli: PackagedCli } | undefined;
function packaged(): { dir: string; cli: PackagedCli } {
  if (shared === undefined) {
    const dir = scratchOutsideRepo('dtx-emulated-');
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    shared = { dir, cli: packagedCli(dir) };
  }
  return shared;
}

function inRoot(fa: ForeignArch, cli: PackagedCli, dir: string, times: string): void {
  const R = join(dir, 'root');
  makeDpkgRoot(fa, R);
  const rootNode = join(dir, 'bin', 'node');
  writeEmulatedNode(rootNode, fa.spec, R, times);
  const env: NodeJS.ProcessEnv = { ...process.env, DEPMOD_TX_NODE: rootNode };
  delete env.DEPMOD_TX;
  delete env.DEPMOD_TX_ROOT;
  const [qemu, ...dpkgArgv] = emulatedCommand(fa.spec, R, 'usr/bin/dpkg');
  const dpkg = (args: string[]): string => {
    const r = spawnSync(qemu!, [...dpkgArgv, `--root=${R}`, '--force-script-chrootless', '--log=/dev/null', ...args], { encoding: 'utf8', env });
    const out = `${r.stdout}${r.stderr}`;
    assert.equal(r.status, 0, `dpkg ${args.join(' ')}:\n${out}`);
    assert.doesNotMatch(out, /depmod-tx hook .* failed/, out);
    return out;
  };
  const moddir = `/lib/modules/${fa.kver}`;
  const step = (out: string, what: string): void => {
    const lines = commitLines(out, fa.kver);
    assert.equal(lines.length, 1, `${what}: the trigger merged ${fa.kver} once; dpkg printed:\n${out}`);
    assert.match(lines[0]!, /changed \d+ file/, `${what}: ${lines[0]}`);
    assert.deepEqual(databaseDiff(R, fa.kver), [], `${what}: database equals depmod -a`);
  };

  const arch = spawnSync(qemu!, [...dpkgArgv, '--print-architecture'], { encoding: 'utf8' });
  assert.equal(arch.stdout.trim(), fa.spec.deb, "the root's own dpkg, native to the architecture");
  // Checked on the files, not by starting node (each emulated start costs seconds): the node that
  // runs is the root's, Debian's nodejs 18 of the architecture; lzma-native is nowhere the bundle looks.
  for (const f of ['usr/bin/node', `usr/lib/${fa.spec.triplet}/libnode.so.108`]) assert.deepEqual(elfIdentity(join(R, f)), fa.spec.elf, f);
  assert.equal(probeRuntime(cli).addon, 'ERR_MODULE_NOT_FOUND', 'no lzma-native where the bundle is');

  const kernel = dpkg(['-i', buildArchDeb(fa, dir, `linux-image-${fa.kver}-trimmed`, '1', [[moddir, join(fa.tree, moddir)]])]);
  assert.deepEqual(commitLines(kernel, fa.kver), [], 'no depmod-tx yet, no trigger');
  dpkg(['-i', cli.deb]);
  const status = readFileSync(join(R, 'var/lib/dpkg/status'), 'utf8');
  assert.match(status, /^Package: depmod-tx\nStatus: install ok installed$/m, 'Depends met by the packages of the root');
  assert.match(status, new RegExp(`^Package: nodejs\nStatus: install ok installed\n(?:.+\n)*?Architecture: ${fa.spec.deb}\n(?:.+\n)*?Version: 18\\.`, 'm'), 'nodejs 18 of the architecture');

  const rebuild = spawnSync(join(R, 'usr/bin/depmod-tx'), ['rebuild', '--json', '--root', R, fa.kver], { encoding: 'utf8', env });
  assert.equal(rebuild.status, 0, rebuild.stderr);
  const report = JSON.parse(rebuild.stdout) as { parsed: number; written: string[] };
  assert.equal(report.parsed, fa.modules, 'every module of the tree parsed');
  assert.ok(report.written.includes('modules.dep'));
  assert.deepEqual(databaseDiff(R, fa.kver), [], 'rebuild: database equals depmod -a');

  const kmp = buildArchDeb(fa, dir, 'emulated-kmp', '1.0', fa.kmp.map((f) => [`${moddir}/updates/kmp/${basename(f)}`, f]));
  step(dpkg(['-i', kmp]), 'KMP install');
  const dep = readFileSync(join(R, moddir, 'modules.dep'), 'utf8');
  for (const f of fa.kmp) assert.match(dep, new RegExp(`^updates/kmp/${basename(f).replaceAll('.', '\\.')}:`, 'm'));
}

for (const spec of ARCHES) {
  test(`${spec.deb} under qemu: dpkg --root installs kernel and depmod-tx, rebuild, the trigger merges a KMP`, { skip, timeout: 900_000 }, (t) => {
    const t0 = performance.now();
    const fa = foreignArch(spec);
    const setup = (performance.now() - t0) / 1000;
    assert.ok(fa.modules >= 150 && fa.modules <= 600, `a few hundred modules (${fa.modules})`);
    const { dir: top, cli } = packaged();
    const dir = join(top, spec.deb);
    const times = join(dir, 'times');
    const t1 = performance.now();
    inRoot(fa, cli, dir, times);
    const t2 = performance.now();
    const runs = readTimes(times);
    const peak = Math.max(...runs.map((r) => r.maxRssKiB));
    t.diagnostic(
      `${spec.deb}: ${fa.kernelPackage} (${fa.kver}), ${fa.modules} modules + ${fa.kmp.length} in the KMP; ` +
        `setup ${setup.toFixed(1)} s (downloads when not cached), emulated part ${((t2 - t1) / 1000).toFixed(1)} s; ` +
        `node runs (rebuild, KMP): ${runs.map((r) => `${r.seconds.toFixed(1)} s/${Math.round(r.maxRssKiB / 1024)} MiB`).join(', ')}; ` +
        `peak RSS ${Math.round(peak / 1024)} MiB`,
    );
  });
}
