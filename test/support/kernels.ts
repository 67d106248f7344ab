// Real Debian kernels for tests and benchmarks: download once into a cache directory, extract,
// and hand out paths. Nothing here is installed by hand: apt-get download + dpkg-deb -x.
// Cache: $DEPMOD_TX_KERNEL_CACHE or <repo>/.cache/kernels. Each kernel extracts to
// <cache>/<KVER>/root (a pristine, read-only-by-convention tree: copy before you modify it).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { aptDownload, newestPackage, unpackedFromSuite } from './debian-archive.ts';
import { kmod30, runOracle, type DepmodOracle } from './kmod-oracles.ts';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const kernelCache = process.env.DEPMOD_TX_KERNEL_CACHE ?? join(repoRoot, '.cache', 'kernels');

export type Flavour = 'cloud-amd64' | 'amd64';

export interface RealKernel {
  kver: string;
  /** Extracted image package: ROOT/lib/modules/KVER is the module tree (as shipped, no depmod output). */
  root: string;
  moddir: string;
  /** Module.symvers from the matching linux-headers package. */
  symvers: string;
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Why real-kernel tests cannot run here, or undefined when they can. In CI they must run. */
export function realKernelSkipReason(): string | undefined {
  const missing = ['apt-get', 'apt-cache', 'dpkg-deb', 'depmod'].filter((c) => !have(c));
  if (missing.length === 0) return undefined;
  const reason = `real-kernel tests need ${missing.join(', ')} (Debian tools; .ci/run installs them)`;
  if (process.env.CI === 'true') throw new Error(`CI=true but ${reason}`);
  return reason;
}

function newestAbi(flavour: Flavour): string {
  const out = execFileSync('apt-cache', ['search', '--names-only', `^linux-image-6\\.1\\.0-[0-9]+-${flavour}-unsigned$`], {
    encoding: 'utf8',
  });
  const abis = [...out.matchAll(/linux-image-6\.1\.0-(\d+)-/g)].map((m) => Number(m[1]));
  if (abis.length === 0) throw new Error(`no linux-image-6.1.0-*-${flavour}-unsigned in apt's lists: run apt-get update`);
  return String(Math.max(...abis));
}

function download(pkg: string, dir: string): string {
  const existing = readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (existing) return join(dir, existing);
  aptDownload([], [pkg], dir);
  const got = readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (!got) throw new Error(`apt-get download ${pkg} produced no .deb in ${dir}`);
  return join(dir, got);
}

/**
 * Downloads (once) and extracts (once) a Debian 6.1 kernel of a flavour and its headers: the ABI
 * given, else DEPMOD_TX_KVER_<FLAVOUR>'s, else the newest in apt's lists. Tests that need kernels
 * of different ABIs (weak-updates: some symbol CRCs changed between them) pin theirs.
 */
export function realKernel(flavour: Flavour, abiNumber?: number): RealKernel {
  mkdirSync(kernelCache, { recursive: true });
  const pinned = process.env[`DEPMOD_TX_KVER_${flavour.replace('-', '_').toUpperCase()}`];
  const abi = abiNumber !== undefined ? String(abiNumber) : (pinned ?? newestAbi(flavour));
  const kver = `6.1.0-${abi}-${flavour}`;
  const base = join(kernelCache, kver);
  const root = join(base, 'root');
  const symvers = join(base, 'Module.symvers');
  if (!existsSync(join(base, '.complete'))) {
    rmSync(base, { recursive: true, force: true });
    mkdirSync(base, { recursive: true });
    const image = download(`linux-image-${kver}-unsigned`, kernelCache);
    const headers = download(`linux-headers-${kver}`, kernelCache);
    const tmp = join(base, 'tmp-root');
    execFileSync('dpkg-deb', ['-x', image, tmp]);
    renameSync(tmp, root);
    const htmp = join(base, 'tmp-headers');
    execFileSync('dpkg-deb', ['-x', headers, htmp]);
    renameSync(join(htmp, 'usr', 'src', `linux-headers-${kver}`, 'Module.symvers'), symvers);
    rmSync(htmp, { recursive: true, force: true });
    execFileSync('touch', [join(base, '.complete')]);
  }
  return { kver, root, moddir: join(root, 'lib', 'modules', kver), symvers };
}

/**
 * Debian 13's newest 6.12 amd64 kernel (from the trixie suite, fetched with private apt state): its
 * 4,000-odd modules ship as .ko.xz. No Module.symvers (symvers is '').
 */
export function trixieKernel(): RealKernel {
  mkdirSync(kernelCache, { recursive: true });
 const pkg = process.env.DEPMOD_TX_TRIXIE_IMAGE ?? newestPackage('trixie', '^linux-image-6\\.12\\.[0-9.]+\\+deb13-amd64-unsigned$');
  const kver = pkg.replace(/^linux-image-/, '').replace(/-unsigned$/, '');
  const base = join(kernelCache, kver);
  const root = unpackedFromSuite(base, 'trixie', [pkg]);
  // The package ships usr/lib/modules; a merged-/usr root, as Debian 13 is, has /lib -> usr/lib,
  // where its depmod (MODULE_DIRECTORY /lib/modules) looks.
  if (!existsSync(join(root, 'lib'))) symlinkSync('usr/lib', join(root, 'lib'));
  return { kver, root, moddir: join(root, 'lib', 'modules', kver), symvers: '' };
}

export type Compression = 'none' | 'xz' | 'zst' | 'gz';

const SUFFIX: Record<Compression, string> = { none: '.ko', xz: '.ko.xz', zst: '.ko.zst', gz: '.ko.gz' };

/** How a kernel tree's modules are compressed as it ships (Debian 12's 6.1: .ko; Debian 13's 6.12: .ko.xz); the first module found decides. */
export function shippedCompression(k: RealKernel): Compression {
  const first = execFileSync('find', [`${k.moddir}/`, '-type', 'f', '-name', '*.ko*', '-print', '-quit'], { encoding: 'utf8' }).trim();
  const comp = (Object.keys(SUFFIX) as Compression[]).find((c) => first.endsWith(SUFFIX[c]));
  if (comp === undefined) throw new Error(`no module file (.ko, .ko.xz, .ko.zst, .ko.gz) under ${k.moddir}`);
  return comp;
}

/**
 * A copy of a real kernel's root with every module in another compression: decompressed first when
 * the kernel ships them compressed, then compressed with the kernel's own settings
 * (xz --check=crc32 --lzma2=dict=1MiB; zstd; gzip -9). The tree itself when it already ships that
 * compression. Cached next to the pristine tree.
 */
export function recompressedKernel(k: RealKernel, comp: Compression): RealKernel {
  const shipped = shippedCompression(k);
  if (comp === shipped) return k;
  const base = join(dirname(k.root), `root-${comp}`);
  const moddir = join(base, relative(k.root, k.moddir));
  if (!existsSync(join(base, '.complete'))) {
    rmSync(base, { recursive: true, force: true });
    execFileSync('cp', ['-a', k.root, base]);
    const decompress: Record<Exclude<Compression, 'none'>, string> = { xz: 'xz -d -T1', zst: 'zstd -q -d --rm', gz: 'gzip -d' };
    const compress: Record<Exclude<Compression, 'none'>, string> = {
      xz: 'xz --check=crc32 --lzma2=dict=1MiB -T1',
      zst: 'zstd -q --rm',
      gz: 'gzip -9',
    };
    // xargs -P parallelises across cores; the kernel's packaging compresses one file per call too.
    const each = (suffix: string, cmd: string): void => {
      execFileSync('sh', ['-c', `find . -name '*${suffix}' -print0 | xargs -0 -r -n 64 -P ${Math.max(1, navigatorCores())} ${cmd}`], { cwd: moddir, stdio: 'inherit' });
    };
    if (shipped !== 'none') each(SUFFIX[shipped], decompress[shipped]);
    if (comp !== 'none') each('.ko', compress[comp]);
    execFileSync('touch', [join(base, '.complete')]);
  }
  return { ...k, root: base, moddir };
}

function navigatorCores(): number {
  return Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || 1;
}

/** Runs an oracle depmod (default: Debian 12's) on ROOT for KVER (writes into ROOT/lib/modules/KVER). Returns stderr. */
export function oracleDepmod(root: string, kver: string, extra: string[] = [], oracle: DepmodOracle = kmod30()): string {
  const r = runOracle(oracle, ['-b', root, ...extra, '-a', kver]);
  if (r.status !== 0) throw new Error(`${oracle.name}: depmod -b ${root} -a ${kver} failed (${r.status}): ${r.stderr}`);
  return r.stderr;
}

/** A writable copy of a tree's root made of hard links (depmod and depmod-tx replace files by rename, never write into a module). */
export function cloneRoot(srcRoot: string, dstRoot: string): void {
  rmSync(dstRoot, { recursive: true, force: true });
  mkdirSync(dirname(dstRoot), { recursive: true });
  execFileSync('cp', ['-al', srcRoot, dstRoot]);
}

/** The files kmod 30's depmod -a writes. */
export const DEPMOD_OUTPUTS = [
  'modules.dep',
  'modules.dep.bin',
  'modules.alias',
  'modules.alias.bin',
  'modules.softdep',
  'modules.symbols',
  'modules.symbols.bin',
  'modules.builtin.bin',
  'modules.builtin.alias.bin',
  'modules.devname',
] as const;

/**
 * An oracle depmod's output (default: Debian 12's) for a (possibly recompressed) real kernel,
 * computed once and cached in <kernel>/oracle-<name>/ (oracle-<oracle>-<name>/ for other kmods;
 * only the modules.* files depmod wrote). Returns that directory.
 */
export function oracleOutput(k: RealKernel, name: string, oracle?: DepmodOracle): string {
  const tag = oracle === undefined || oracle.name === 'kmod30' ? name : `${oracle.name}-${name}`;
  const out = join(dirname(dirname(dirname(dirname(k.moddir)))), `oracle-${tag}`);
  if (existsSync(join(out, '.complete'))) return out;
  const work = join(kernelCache, `.work-oracle-${process.pid}`);
  cloneRoot(k.root, work);
  oracleDepmod(work, k.kver, [], oracle);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const moddir = join(work, k.moddir.slice(k.root.length));
  for (const f of readdirSync(moddir)) {
    if (f.startsWith('modules.')) execFileSync('cp', [join(moddir, f), join(out, f)]);
  }
  execFileSync('touch', [join(out, '.complete')]);
  rmSync(work, { recursive: true, force: true });
  return out;
}
