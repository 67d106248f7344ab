// Shared pieces of the end-to-end suites (dpkg.test.ts, rpm.test.ts): the packages under test built
// by scripts/package.mjs, the synthetic kernel and KMP module sets, Debian's nodejs 18 when it can
// be fetched, and the depmod oracle for a disposable root.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { execa } from 'execa';
import { chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { aptDownload } from '../support/debian-archive.ts';
import { buildModuleElf, type FixtureModule } from '../support/fixture-elf.ts';
import { compressForPath } from '../support/fixture-tree.ts';
import { oracleDepmod, repoRoot } from '../support/kernels.ts';
import { gzipSync } from 'node:zlib';
import { diffFileSets, oracleFiles, outputFiles } from '../merge/oracle-dir.ts';

export const KVER = '9.9.9-test';
export const KVER2 = '9.9.8-test';

export function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Why an e2e suite cannot run here (missing commands, or not root when `rootReason` says why it
 * needs root), or false. In CI a suite that cannot run is an error, never a skip.
 */
export function e2eSkip(suite: string, commands: string[], install: string, rootReason?: string): string | false {
  const missing = commands.filter((c) => !have(c));
  const notRoot = rootReason !== undefined && process.getuid?.() !== 0 ? `${rootReason}: needs root` : undefined;
  const skip = missing.length > 0 ? `needs ${missing.join(', ')} (Debian: apt-get install ${install})` : (notRoot ?? false);
  if (skip && process.env.CI === 'true') throw new Error(`e2e ${suite}: ${skip}`);
  return skip;
}

/**
 * Runs scripts/package.mjs into OUT and returns the package file it made (from the dist/
 * scripts/test.mjs built: rebuilding it here would pull it from under tests running alongside).
 */
export function buildPackage(out: string, kind: 'deb' | 'rpm' | 'pacman'): string {
  const r = spawnSync(process.execPath, [join(repoRoot, 'scripts', 'package.mjs'), '--out', out, '--only', kind, '--no-build'], { cwd: repoRoot, encoding: 'utf8' });
  return packageMade(r.status, r.stdout, r.stderr);
}

/** buildPackage without blocking, for building it while other packages build. */
export async function buildPackageAsync(out: string, kind: 'deb' | 'rpm' | 'pacman'): Promise<string> {
  const r = await execa(process.execPath, [join(repoRoot, 'scripts', 'package.mjs'), '--out', out, '--only', kind, '--no-build'], { cwd: repoRoot, reject: false });
  return packageMade(r.exitCode ?? 1, String(r.stdout), String(r.stderr));
}

function packageMade(status: number | null, stdout: string, stderr: string): string {
  if (status !== 0) throw new Error(`npm run package failed: ${stdout}${stderr}`);
  const made = stdout.trim().split('\n').pop() ?? '';
  if (!existsSync(made)) throw new Error(`package.mjs reported ${made}, which does not exist`);
  return made;
}

/**
 * A directory holding a `node` that is Debian 12's nodejs 18 (packages fetched with apt-get
 * download and unpacked, not installed), so the packaged bundle is tested on the runtime Debian
 * users have. The reason when apt cannot fetch it (offline): a skip outside CI, a failure in CI.
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
    try {
      aptDownload([], [`nodejs=${v}`, `libnode108=${v}`, 'libc-ares2'], debs);
    } catch (e) {
      return { reason: (e as Error).message };
    }
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

/** Writes modules (paths relative to ROOT/lib/modules/KVER, or `base`/modules/KVER) into a package staging tree. */
export function stageModules(stage: string, kver: string, mods: Array<[string, FixtureModule]>, opts: { order?: boolean; base?: string } = {}): string[] {
  const at = `/${opts.base ?? 'lib'}/modules/${kver}`;
  const moddir = join(stage, at);
  const out: string[] = [];
  for (const [rel, m] of mods) {
    const file = join(moddir, rel);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, compressForPath(rel, buildModuleElf(m)));
    out.push(`${at}/${rel}`);
  }
  if (opts.order) {
    writeFileSync(join(moddir, 'modules.order'), mods.map(([rel]) => `${rel.replace(/\.(xz|zst|gz)$/, '')}\n`).join(''));
    writeFileSync(join(moddir, 'modules.builtin'), 'kernel/lib/tbuiltin.ko\n');
    out.push(`${at}/modules.order`, `${at}/modules.builtin`);
  }
  return out;
}

/**
 * The e2e kernels with weak-updates: three kernels of one flavour ("wtest") whose packages ship
 * /boot/System.map-KVER and /boot/symvers-KVER.gz (what weak-modules2 and weak-modules look for).
 */
export const WEAK_KVERS = ['8.0.1-wtest', '8.0.2-wtest', '8.0.3-wtest'] as const;

export function weakKernelFiles(kver: string): Record<string, string | Uint8Array> {
  return {
    [`/boot/System.map-${kver}`]: 'ffffffff81000000 T printk\n',
    [`/boot/symvers-${kver}.gz`]: gzipSync('0x00000001\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n'),
  };
}

/**
 * databaseDiff for a root whose weak-updates/ links were made inside it (by hooks running chrooted):
 * their absolute targets name paths inside the root, so the oracle's copy points them there.
 */
export function databaseDiffWithRootLinks(root: string, kver: string): string[] {
  const conf = join(root, 'etc', 'depmod.d');
  const ours = outputFiles(join(root, 'lib', 'modules', kver));
  if (ours.size === 0) return ['no modules.* database at all'];
  const clone = mkdtempSync(join(tmpdir(), 'dtx-e2e-weak-'));
  try {
    const r = join(clone, 'r');
    execFileSync('cp', ['-as', realpathSync(root), r]);
    for (const k of readdirSync(join(root, 'lib', 'modules'))) {
      const found = spawnSync('find', [join(root, 'lib', 'modules', k, 'weak-updates'), '-type', 'l', '-printf', '%P\t%l\n'], { encoding: 'utf8' });
      for (const line of (found.stdout ?? '').split('\n')) {
        const [rel, target] = line.split('\t');
        if (!rel || !target?.startsWith('/')) continue;
        const at = join(r, 'lib', 'modules', k, 'weak-updates', rel);
        rmSync(at);
        symlinkSync(join(root, target), at);
      }
    }
    const moddir = join(r, 'lib', 'modules', kver);
    for (const f of readdirSync(moddir)) if (f.startsWith('modules.') && !['modules.order', 'modules.builtin', 'modules.builtin.modinfo'].includes(f)) rmSync(join(moddir, f));
    oracleDepmod(r, kver, ['-C', conf]);
    const theirs = new Map<string, Uint8Array>();
    for (const f of readdirSync(moddir)) if (f.startsWith('modules.') && !['modules.order', 'modules.builtin', 'modules.builtin.modinfo'].includes(f)) theirs.set(f, readFileSync(join(moddir, f)));
    return diffFileSets(ours, theirs);
  } finally {
    rmSync(clone, { recursive: true, force: true });
  }
}

/** After a transaction with weak-updates on: each of WEAK_KVERS merged once (from the calls' output), each database as depmod -a writes it. */
export function assertWeakStep(root: string, callsOutput: string, what: string): void {
  assert.deepEqual(mergeCounts(callsOutput, [...WEAK_KVERS]), Object.fromEntries(WEAK_KVERS.map((k) => [k, 1])), `${what}: merges per kernel`);
  for (const kv of WEAK_KVERS) assert.deepEqual(databaseDiffWithRootLinks(root, kv), [], `${what}: ${kv} database equals depmod -a`);
}

/** The weak-updates/ links of a kernel under ROOT: relative path → target as written. */
export function weakLinksOf(root: string, kver: string): Record<string, string> {
  const found = spawnSync('find', [join(root, 'lib', 'modules', kver, 'weak-updates'), '-type', 'l', '-printf', '%P\t%l\n'], { encoding: 'utf8' });
  return Object.fromEntries((found.stdout ?? '').split('\n').filter((l) => l !== '').map((l) => l.split('\t') as [string, string]));
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

/**
 * Puts each command (and the shared libraries ldd names) into ROOT at the host's paths, and the
 * host directories `trees` (data a command reads, e.g. rpm's /usr/lib/rpm) as hard-linked copies.
 */
export function chrootRuntime(root: string, commands: string[], trees: string[] = []): void {
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
  for (const t of trees) {
    mkdirSync(dirname(join(root, t)), { recursive: true });
    if (spawnSync('cp', ['-al', t, join(root, t)]).status !== 0) execFileSync('cp', ['-a', t, join(root, t)]);
  }
  for (const d of ['tmp', 'dev', 'etc/depmod.d', 'var/lib/rpm']) mkdirSync(join(root, d), { recursive: true });
}

/**
 * The commands the hook, the wrapper and callLog's stand-in run inside a chroot (the hooks collect
 * with awk, mv, date and sync); kmod's depmod too, as on a real system: depmod-tx writes the format
 * of the kmod it finds there (kmod 30 here).
 */
export const HOOK_RUNTIME = ['sh', 'node', 'flock', 'cat', 'dirname', 'readlink', 'rm', 'xz', 'depmod', 'awk', 'mv', 'date', 'sync', 'mkdir'];

/**
 * A stand-in for depmod-tx inside ROOT that runs the real /usr/bin/depmod-tx with its stdout
 * appended to ROOT/var/log/dtx-e2e-calls.log (instead of the client's output): the hook runs "$DEPMOD_TX", so
 * `env` makes every hook, trigger and plugin call go through it, and take() gives (and clears) the
 * summary lines of everything that ran since the last take(): one line per kernel per merge.
 */
export function callLog(root: string): { env: { DEPMOD_TX: string }; take(): string } {
  const stand = '/usr/libexec/dtx-e2e-calls';
  const log = join(root, 'var/log/dtx-e2e-calls.log');
  mkdirSync(join(root, 'usr/libexec'), { recursive: true });
  mkdirSync(join(root, 'var/log'), { recursive: true });
  writeFileSync(
    join(root, stand),
    // Straight into the log, not through a pipe: the zypp plugin writes its summary before it
    // answers COMMITEND, so the lines are there when zypper exits (libzypp does not wait for it).
    '#!/bin/sh\nexec /usr/bin/depmod-tx "$@" >>/var/log/dtx-e2e-calls.log\n',
    { mode: 0o755 },
  );
  writeFileSync(log, '');
  return {
    env: { DEPMOD_TX: stand },
    take: () => {
      const text = readFileSync(log, 'utf8');
      writeFileSync(log, '');
      return text;
    },
  };
}

/** The environment for running a package manager in the tests: none of the caller's depmod-tx settings. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['DEPMOD_TX', 'DEPMOD_TX_ROOT', 'NODE_EXTRA_CA_CERTS', 'NODE_OPTIONS']) delete env[k];
  return { ...env, ...extra };
}

/** A hook environment in which every depmod-tx call fails (exit 127), as a broken or skipped hook would. */
export const BROKEN_HOOKS = { DEPMOD_TX: '/nonexistent/depmod-tx' };

/**
 * Waits for the start of the next wall-clock second and returns it as "YYYY-MM-DD HH:MM:SS" in
 * local time: the logs have second resolution, so everything logged before the call is older.
 */
export async function nextSecond(): Promise<string> {
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
  const t = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${t.getFullYear()}-${p(t.getMonth() + 1)}-${p(t.getDate())} ${p(t.getHours())}:${p(t.getMinutes())}:${p(t.getSeconds())}`;
}

/** One merge per kernel per transaction: the summary lines for each kernel in `text`, counted. */
export function mergeCounts(text: string, kvers: string[]): Record<string, number> {
  return Object.fromEntries(kvers.map((k) => [k, commitLines(text, k).length]));
}

/** A yum/zypper repository (createrepo_c) holding copies of the given rpms. */
export function rpmRepo(dir: string, rpms: string[]): string {
  mkdirSync(dir, { recursive: true });
  for (const f of rpms) copyFileSync(f, join(dir, f.slice(f.lastIndexOf('/') + 1)));
  const r = spawnSync('createrepo_c', ['-q', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`createrepo_c ${dir}: ${r.stderr}`);
  return dir;
}

/** The KMPs of the client suites: kmp-a changes between versions (one module changed, one dropped, one added), kmp-c does not. */
export function clientKmps(): { a1: Array<[string, FixtureModule]>; a2: Array<[string, FixtureModule]>; c: Array<[string, FixtureModule]> } {
  const [a1, b] = kmpModules(1);
  const [a2, c, d] = kmpModules(2);
  return { a1: [a1!, b!], a2: [a2!, d!], c: [c!] };
}

/**
 * An rpm (rpmbuild, noarch) holding the given module sets; `provides` stands in for what the host put
 * into the root; `other` adds files by absolute path (a kernel's /boot/System.map-KVER, symvers).
 */
export function rpmPackage(dir: string, name: string, version: string, files: ModuleSet[], provides: string[] = [], other: Record<string, string | Uint8Array> = {}): string {
  const top = join(dir, `rpmbuild-${name}-${version}`);
  const stage = join(top, 'stage');
  mkdirSync(stage, { recursive: true });
  const listed: string[] = [];
  for (const f of files) listed.push(...stageModules(stage, f.kver, f.mods, { order: f.order ?? false }));
  for (const [path, content] of Object.entries(other)) {
    mkdirSync(dirname(join(stage, path)), { recursive: true });
    writeFileSync(join(stage, path), content);
    listed.push(path);
  }
  const spec = join(top, `${name}.spec`);
  writeFileSync(
    spec,
    [
      `Name: ${name}`, `Version: ${version}`, 'Release: 1', 'Summary: e2e test package', 'License: MIT', 'BuildArch: noarch', 'AutoReqProv: no',
      ...provides.map((p) => `Provides: ${p}`),
      '%global __os_install_post %{nil}', '%global debug_package %{nil}',
      '%description', 'e2e test package', '%install', `mkdir -p %{buildroot} && cp -a ${stage}/. %{buildroot}/`,
      '%files', ...listed, '',
    ].join('\n'),
  );
  const r = spawnSync('rpmbuild', ['-bb', '--nodeps', '--define', `_topdir ${top}`, spec], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`rpmbuild ${name}: ${r.stderr}`);
  return join(top, 'RPMS', 'noarch', `${name}-${version}-1.noarch.rpm`);
}

export interface ModuleSet {
  kver: string;
  mods: Array<[string, FixtureModule]>;
  order?: boolean;
}

/**
 * A pacman package (.pkg.tar.zst, arch any) built by pacman's own makepkg, modules under
 * usr/lib/modules as on Arch. makepkg refuses to run as root: as root it runs as nobody. makepkg
 * spends its time waiting on fakeroot (each command it runs there costs ~10 ms of IPC, little CPU),
 * so the suites build their packages concurrently.
 */
export async function pacmanPackage(dir: string, name: string, version: string, files: ModuleSet[], provides: string[] = []): Promise<string> {
  // Its own directory under the system's temp: nobody cannot reach into a private mkdtemp one.
  const top = mkdtempSync(join(tmpdir(), `dtx-makepkg-${name}-`));
  chmodSync(top, 0o755);
  const stage = join(top, 'stage');
  mkdirSync(stage);
  for (const f of files) stageModules(stage, f.kver, f.mods, { order: f.order ?? false, base: 'usr/lib' });
  writeFileSync(
    join(top, 'PKGBUILD'),
    [
      `pkgname=${name}`, `pkgver=${version}`, 'pkgrel=1', "pkgdesc='e2e test package'", 'arch=(any)', 'license=(MIT)', 'options=(!strip !debug !zipman !purge)',
      `provides=(${provides.map((x) => `'${x}'`).join(' ')})`, 'package() {', '  cp -a "$startdir/stage/." "$pkgdir/"', '}', '',
    ].join('\n'),
  );
  const asRoot = process.getuid?.() === 0;
  if (asRoot) execFileSync('chown', ['-R', '65534:65534', top]);
  const cmd = asRoot ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'makepkg'] : ['makepkg'];
  const r = await execa(cmd[0]!, [...cmd.slice(1), '--nodeps', '--noconfirm', '--force'], {
    cwd: top,
    reject: false,
    all: true,
    env: { HOME: top, PKGDEST: top, SRCDEST: top, BUILDDIR: join(top, 'build'), PKGEXT: '.pkg.tar.zst' },
  });
  if (r.exitCode !== 0) throw new Error(`makepkg ${name} ${version}: ${r.all}`);
  const file = join(dir, `${name}-${version}-1-any.pkg.tar.zst`);
  copyFileSync(join(top, `${name}-${version}-1-any.pkg.tar.zst`), file);
  rmSync(top, { recursive: true, force: true });
  return file;
}

/**
 * After transactions whose hooks failed: the database is stale; `replay --root ROOT --since SINCE
 * LOG` with the root's own CLI says what it read (`expect`), merges KVER once and leaves the
 * database equal to depmod -a. Returns replay's output.
 */
export function replayCatchesUp(root: string, log: string, since: string, expect: RegExp): string {
  assert.notDeepEqual(databaseDiff(root, KVER), [], 'the failed hooks left the database stale');
  const r = spawnSync(join(root, 'usr/bin/depmod-tx'), ['replay', '--root', root, '--since', since, log], { encoding: 'utf8', env: cleanEnv() });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, expect, r.stdout);
  assert.deepEqual(mergeCounts(r.stdout, [KVER]), { [KVER]: 1 }, r.stdout);
  assert.deepEqual(databaseDiff(root, KVER), [], 'replay: database equals depmod -a');
  return r.stdout;
}

/**
 * Counts the Node.js processes started inside ROOT (issue 23): the root's `node` (at `at`, default
 * usr/bin/node) is moved to usr/lib/e2e-node/node and replaced by a script that appends its
 * arguments to var/log/e2e-node-starts.log, then runs it. Everything that starts Node.js by the
 * name `node` (the depmod-tx wrapper, the depmod front end) goes through it. take() gives (and
 * clears) the starts since the last take(), one argument line each.
 */
export function nodeStarts(root: string, at = 'usr/bin/node'): { take(): string[] } {
  const real = '/usr/lib/e2e-node/node';
  const log = '/var/log/e2e-node-starts.log';
  mkdirSync(join(root, 'usr/lib/e2e-node'), { recursive: true });
  mkdirSync(join(root, 'var/log'), { recursive: true });
  renameSync(join(root, at), join(root, real));
  writeFileSync(join(root, at), `#!/bin/sh\nprintf '%s\\n' "$*" >>${log}\nexec ${real} "$@"\n`, { mode: 0o755 });
  chmodSync(join(root, at), 0o755);
  writeFileSync(join(root, log), '');
  return nodeStartLog(join(root, log));
}

/** A `node` for DEPMOD_TX_NODE outside any root (dpkg --root runs the hooks on the host): starts logged to LOG. */
export function loggingNode(dir: string): { bin: string; take(): string[] } {
  const bin = join(dir, 'logging-node');
  const log = join(dir, 'node-starts.log');
  writeFileSync(bin, `#!/bin/sh\nprintf '%s\\n' "$*" >>'${log}'\nexec '${process.execPath}' "$@"\n`, { mode: 0o755 });
  writeFileSync(log, '');
  return { bin, ...nodeStartLog(log) };
}

function nodeStartLog(file: string): { take(): string[] } {
  return {
    take: () => {
      const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
      writeFileSync(file, '');
      return lines;
    },
  };
}

/** Every file under DIR (relative paths, sorted), or [] when DIR does not exist: what a transaction left behind. */
export function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true }) as string[]).map(String).sort();
}
