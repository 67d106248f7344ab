// Shared pieces of the end-to-end suites (dpkg.test.ts, rpm.test.ts): the packages under test built
// by scripts/package.mjs, the synthetic kernel and KMP module sets, Debian's nodejs 18 when it can
// be fetched, and the depmod oracle for a disposable root.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildModuleElf, type FixtureModule } from '../support/fixture-elf.ts';
import { compressForPath } from '../support/fixture-tree.ts';
import { repoRoot } from '../support/kernels.ts';
import { diffFileSets, oracleFiles, outputFiles } from '../merge/oracle-dir.ts';

export const KVER = '9.9.9-test';
export const KVER2 = '9.9.8-test';

export function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Runs scripts/package.mjs into OUT and returns the package file it made (from the dist/ scripts/test.mjs built: rebuilding it here would pull it from under tests running alongside). */
export function buildPackage(out: string, kind: 'deb' | 'rpm'): string {
  const r = spawnSync(process.execPath, [join(repoRoot, 'scripts', 'package.mjs'), '--out', out, '--only', kind, '--no-build'], { cwd: repoRoot, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm run package failed: ${r.stdout}${r.stderr}`);
  const made = r.stdout.trim().split('\n').pop() ?? '';
  if (!existsSync(made)) throw new Error(`package.mjs reported ${made}, which does not exist`);
  return made;
}

/**
 * A directory holding a `node` that is Debian 12's nodejs 18 (packages fetched with apt-get
 * download and unpacked, not installed), so the packaged bundle is tested on the runtime Debian
 * users have. Undefined when apt cannot fetch it (offline), with the reason.
 */
export function debianNode18(): { dir: string } | { reason: string } {
  const base = join(repoRoot, '.cache', 'debian-nodejs18');
  const bin = join(base, 'bin', 'node');
  const tree = join(base, 'tree');
  if (!existsSync(bin)) {
    if (!have('apt-get')) return { reason: 'apt-get not available' };
    const debs = join(base, 'debs');
    rmSync(base, { recursive: true, force: true });
    mkdirSync(debs, { recursive: true });
    const policy = execFileSync('apt-cache', ['madison', 'nodejs'], { encoding: 'utf8' });
    const v = policy.split('\n').map((l) => l.split('|')[1]?.trim() ?? '').find((x) => x.startsWith('18.'));
    if (!v) return { reason: 'no nodejs 18 in the apt sources' };
    const r = spawnSync('apt-get', ['download', `nodejs=${v}`, `libnode108=${v}`, 'libc-ares2'], { cwd: debs, encoding: 'utf8' });
    if (r.status !== 0) return { reason: `apt-get download nodejs=${v} failed: ${r.stderr.trim()}` };
    for (const d of readdirSync(debs)) execFileSync('dpkg-deb', ['-x', join(debs, d), tree]);
    mkdirSync(join(base, 'bin'), { recursive: true });
    writeFileSync(bin, `#!/bin/sh\nLD_LIBRARY_PATH='${tree}/usr/lib/x86_64-linux-gnu' exec '${tree}/usr/bin/node' "$@"\n`);
    chmodSync(bin, 0o755);
  }
  // Debian's libnode loads acorn, cjs-module-lexer and undici from /usr/share/nodejs (absolute
  // paths): the node-acorn, node-cjs-module-lexer and node-undici packages must be installed.
  const ver = spawnSync(bin, ['-e', 'process.stdout.write(process.version)'], { encoding: 'utf8' });
  if (ver.status !== 0 || !ver.stdout.startsWith('v18.')) {
    return { reason: `Debian nodejs 18 does not run here (apt-get install node-acorn node-cjs-module-lexer node-undici?): ${ver.stderr.split('\n')[0]}` };
  }
  return { dir: join(base, 'bin') };
}

/**
 * yargs 18 refuses Node < 20 and uses RegExp /v (Node 20+): with it in the bundle the package cannot
 * run on Debian 12's nodejs 18. Reported to the lead (package.json: yargs ^17.7 supports Node 12+);
 * until then the node-18 test is a todo that states why.
 */
export function yargsBlocksNode18(): string | false {
  const v = JSON.parse(readFileSync(join(repoRoot, 'node_modules', 'yargs', 'package.json'), 'utf8')).version as string;
  return Number(v.split('.')[0]) >= 18 ? `yargs ${v} requires Node >= 20 (RegExp v flag, version check): package.json needs yargs ^17.7` : false;
}

const crc = (n: number): number => (0x5a5a0000 + n) >>> 0;

/** The fake kernel image's modules: a core exporting symbols, drivers using them. */
export function kernelModules(): Array<[string, FixtureModule]> {
  return [
    ['kernel/lib/tcore.ko', { modinfo: [['license', 'GPL'], ['description', 'test core']], exports: [{ name: 'tcore_get', crc: crc(1) }, { name: 'tcore_put', crc: crc(2), gpl: true }] }],
    ['kernel/drivers/net/tnet.ko', { modinfo: [['license', 'GPL'], ['alias', 'pci:v00008086d00001234sv*sd*bc*sc*i*']], imports: [{ name: 'tcore_get', crc: crc(1) }], exports: [{ name: 'tnet_register', crc: crc(3) }] }],
    ['kernel/drivers/usb/tusb.ko', { modinfo: [['license', 'GPL'], ['alias', 'usb:v1234p5678d*dc*dsc*dp*ic*isc*ip*in*'], ['softdep', 'pre: tcore']], imports: [{ name: 'tcore_put', crc: crc(2) }] }],
  ];
}

/** KMP version 1 (three modules) and version 2 (one changed, one dropped, one added). */
export function kmpModules(version: 1 | 2): Array<[string, FixtureModule]> {
  const a1: FixtureModule = { modinfo: [['license', 'GPL'], ['alias', 'acpi*:TST0001:*']], imports: [{ name: 'tnet_register', crc: crc(3) }], exports: [{ name: 'kmpa_fn', crc: crc(10) }] };
  const a2: FixtureModule = { modinfo: [['license', 'GPL'], ['alias', 'acpi*:TST0002:*'], ['version', '2']], imports: [{ name: 'tnet_register', crc: crc(3) }, { name: 'tcore_get', crc: crc(1) }], exports: [{ name: 'kmpa_fn', crc: crc(11) }] };
  const b: FixtureModule = { modinfo: [['license', 'GPL'], ['alias', 'of:N*T*Ctest,kmpb']], imports: [{ name: 'kmpa_fn', crc: crc(10) }] };
  const c: FixtureModule = { modinfo: [['license', 'GPL'], ['devname', 'tkmpc'], ['alias', 'devname:tkmpc'], ['alias', 'char-major-240-0']], imports: [{ name: 'tcore_get', crc: crc(1) }] };
  const d: FixtureModule = { modinfo: [['license', 'GPL'], ['alias', 'platform:tkmpd']], imports: [{ name: 'kmpa_fn', crc: crc(11) }] };
  return version === 1
    ? [['updates/kmpa.ko', a1], ['updates/kmpb.ko.xz', b], ['updates/kmpc.ko', c]]
    : [['updates/kmpa.ko', a2], ['updates/kmpc.ko', c], ['updates/kmpd.ko.xz', d]];
}

/** Writes modules (paths relative to ROOT/lib/modules/KVER) into a package staging tree. */
export function stageModules(stage: string, kver: string, mods: Array<[string, FixtureModule]>, opts: { order?: boolean } = {}): string[] {
  const moddir = join(stage, 'lib', 'modules', kver);
  const out: string[] = [];
  for (const [rel, m] of mods) {
    const file = join(moddir, rel);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, compressForPath(rel, buildModuleElf(m)));
    out.push(`/lib/modules/${kver}/${rel}`);
  }
  if (opts.order) {
    writeFileSync(join(moddir, 'modules.order'), mods.map(([rel]) => `${rel.replace(/\.(xz|zst|gz)$/, '')}\n`).join(''));
    writeFileSync(join(moddir, 'modules.builtin'), 'kernel/lib/tbuiltin.ko\n');
    out.push(`/lib/modules/${kver}/modules.order`, `/lib/modules/${kver}/modules.builtin`);
  }
  return out;
}

/** Differences between depmod-tx's database in ROOT and `depmod -b ROOT -C ROOT/etc/depmod.d -a KVER` (empty when identical). */
export function databaseDiff(root: string, kver: string): string[] {
  const conf = join(root, 'etc', 'depmod.d');
  mkdirSync(conf, { recursive: true });
  const ours = outputFiles(join(root, 'lib', 'modules', kver));
  if (ours.size === 0) return ['no modules.* database at all'];
  return diffFileSets(ours, oracleFiles(root, kver, ['-C', conf]));
}

/** Per-kernel summary lines the commit printed (the hook's stdout ends up in the package manager's). */
export function commitLines(output: string, kver: string): string[] {
  return output.split('\n').filter((l) => l.startsWith(`${kver}: `) && !l.startsWith(`${kver}: initrd `));
}
