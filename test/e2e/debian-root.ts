// A disposable Debian 12 system for end-to-end runs with the real apt, dpkg, kmod and
// initramfs-tools: a root made once by mmdebstrap (cached as a tarball in .cache/e2e), unpacked per
// run, entered with chroot inside a private mount namespace (unshare -m: /dev and /proc are mounted
// for the chroot only and vanish with it), given a local apt repository, and instrumented to time
// every depmod, depmod-tx and update-initramfs call made inside it. Test support: does I/O.
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { aptDownload, ARCHIVE_RETRY, newestPackageOf, suiteApt } from '../support/debian-archive.ts';
import { buildModuleElf, type FixtureModule } from '../support/fixture-elf.ts';
import { compressForPath } from '../support/fixture-tree.ts';
import { kernelCache, repoRoot } from '../support/kernels.ts';
import { kmod30, runOracle, type DepmodOracle } from '../support/kmod-oracles.ts';

export const E2E_CACHE = join(repoRoot, '.cache', 'e2e');

/** What the base root holds besides apt's essentials: what a kernel installation needs, and Node.js for depmod-tx. */
const BASE_PACKAGES = ['kmod', 'initramfs-tools', 'linux-base', 'nodejs', 'xz-utils', 'zstd'];

export type Suite = 'bookworm' | 'trixie';

/**
 * The base root's tarball for SUITE (Debian 12 bookworm: kmod 30, nodejs 18; Debian 13 trixie:
 * kmod 34.2, nodejs 20), made by mmdebstrap once (about a minute, ~60 MB from the Debian mirror).
 */
export function debianBase(suite: Suite = 'bookworm'): string {
  mkdirSync(E2E_CACHE, { recursive: true });
  const key = `${suite} ${BASE_PACKAGES.join(',')} v1`;
  const tar = join(E2E_CACHE, `${suite}-base.tar`);
  const stamp = `${tar}.ok`;
  if (statSync(tar, { throwIfNoEntry: false })?.isFile() === true && existsSync(stamp) && readFileSync(stamp, 'utf8') === key) return tar;
  rmSync(tar, { recursive: true, force: true });
  // kmod's .deb is kept in the root (/srv/kmod) to reinstall it later: a kmod upgrade must keep the diversion.
  const keepKmod = 'mkdir -p "$1/srv/kmod" && cp "$1"/var/cache/apt/archives/kmod_*.deb "$1/srv/kmod/"';
  // mmdebstrap picks the output format by the file name: keep ".tar" at the end.
  const tmp = join(E2E_CACHE, `${suite}-base.${process.pid}.tar`);
  // One suite (main, amd64): an index of another suite mid-sync cannot break it; a failed
  // download of this one is retried as every fetch from the archive is (debian-archive.ts).
  let r: SpawnSyncReturns<string> | undefined;
  for (let attempt = 1; attempt <= ARCHIVE_RETRY.attempts && r?.status !== 0; attempt++) {
    rmSync(tmp, { recursive: true, force: true });
    if (attempt > 1) process.stderr.write(`mmdebstrap failed (${r?.status}), attempt ${attempt} of ${ARCHIVE_RETRY.attempts}:\n${r?.stderr}\n`);
    r = spawnSync('mmdebstrap', ['--variant=apt', '--mode=root', '--quiet', `--include=${BASE_PACKAGES.join(',')}`, `--customize-hook=${keepKmod}`, suite, tmp, 'http://deb.debian.org/debian'], {
      encoding: 'utf8',
      timeout: 1_200_000,
    });
  }
  if (r?.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`mmdebstrap ${suite} (${BASE_PACKAGES.join(', ')}) failed (${r?.status}): ${r?.stderr}`);
  }
  renameSync(tmp, tar);
  writeFileSync(stamp, key);
  return tar;
}

/** Debian 12's base root (debianBase). */
export function bookwormBase(): string {
  return debianBase('bookworm');
}

/**
 * Debian 13's newest cloud kernel image .deb (6.12, its modules shipped as .ko.xz) and its kernel
 * version, fetched once into the kernel cache with the trixie suite's private apt state; and the
 * Module.symvers of its headers package.
 */
export function trixieCloudKernel(): { deb: string; kver: string; symvers: string } {
  const apt = suiteApt('trixie');
  const pkg = newestPackageOf(apt, '^linux-image-6\\.12\\.[0-9.]+\\+deb13-cloud-amd64-unsigned$', 'trixie');
  const kver = pkg.replace(/^linux-image-/, '').replace(/-unsigned$/, '');
  mkdirSync(kernelCache, { recursive: true });
  const fetch = (name: string): string => {
    const have = (): string | undefined => readdirSync(kernelCache).find((f) => f.startsWith(`${name}_`) && f.endsWith('.deb'));
    if (have() === undefined) aptDownload(apt, [name], kernelCache);
    const got = have();
    if (got === undefined) throw new Error(`apt-get download ${name} left no .deb in ${kernelCache}`);
    return join(kernelCache, got);
  };
  const deb = fetch(pkg);
  const symvers = join(kernelCache, kver, 'Module.symvers');
  if (!existsSync(symvers)) {
    const tmp = join(kernelCache, `.headers-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    execFileSync('dpkg-deb', ['-x', fetch(`linux-headers-${kver}`), tmp]);
    mkdirSync(join(kernelCache, kver), { recursive: true });
    renameSync(join(tmp, 'usr', 'src', `linux-headers-${kver}`, 'Module.symvers'), symvers);
    rmSync(tmp, { recursive: true, force: true });
  }
  return { deb, kver, symvers };
}

export function unpackRoot(tar: string, root: string): void {
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  execFileSync('tar', ['-xf', tar, '-C', root]);
}

export interface RootRun {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `cmd` chrooted into `root`, with /dev and /proc mounted for it alone, in a clean environment. */
export function inRoot(root: string, cmd: string[], env: Record<string, string> = {}): RootRun {
  const enter = 'mount --rbind /dev "$0/dev" && mount -t proc proc "$0/proc" && exec chroot "$0" "$@"';
  const t0 = performance.now();
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', enter, root, ...cmd], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
    timeout: 900_000,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive', ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
}

/** inRoot that must succeed. */
export function mustInRoot(root: string, cmd: string[], env: Record<string, string> = {}): RootRun {
  const r = inRoot(root, cmd, env);
  if (r.status !== 0) throw new Error(`in ${root}: ${cmd.join(' ')} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** A .deb's control fields (dpkg-deb -f). */
function controlOf(deb: string): string {
  return execFileSync('dpkg-deb', ['-f', deb], { encoding: 'utf8' }).trimEnd();
}

/**
 * ROOT/srv/repo as apt's only source: the given .debs and a Packages index written here (what
 * dpkg-scanpackages writes: the control fields, Filename, Size and checksums).
 */
export function useLocalRepo(root: string, debs: string[]): void {
  const repo = join(root, 'srv', 'repo');
  rmSync(repo, { recursive: true, force: true });
  mkdirSync(repo, { recursive: true });
  const stanzas: string[] = [];
  for (const deb of debs) {
    const name = basename(deb);
    copyFileSync(deb, join(repo, name));
    const bytes = readFileSync(deb);
    const sum = (alg: string): string => createHash(alg).update(bytes).digest('hex');
    stanzas.push(`${controlOf(deb)}\nFilename: ./${name}\nSize: ${bytes.length}\nMD5sum: ${sum('md5')}\nSHA256: ${sum('sha256')}\n`);
  }
  writeFileSync(join(repo, 'Packages'), stanzas.join('\n'));
  writeFileSync(join(root, 'etc', 'apt', 'sources.list'), 'deb [trusted=yes] file:/srv/repo ./\n');
  for (const f of readdirSync(join(root, 'etc', 'apt', 'sources.list.d'))) rmSync(join(root, 'etc', 'apt', 'sources.list.d', f));
  mustInRoot(root, ['apt-get', 'update', '-qq']);
}

/**
 * A kernel image .deb with every module recompressed as the kernel's build does (.ko.xz: xz
 * --check=crc32 --lzma2=dict=1MiB) and its md5sums rewritten: Debian 12's kernels ship .ko, later
 * ones .ko.xz. Cached next to the original.
 */
export function xzKernelDeb(deb: string): string {
  const out = join(E2E_CACHE, basename(deb).replace(/\.deb$/, '+koxz.deb'));
  if (existsSync(out)) return out;
  const work = join(E2E_CACHE, `.repack-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  try {
    execFileSync('dpkg-deb', ['-R', deb, work]);
    execFileSync('sh', ['-c', "find lib/modules -name '*.ko' -print0 | xargs -0 -n 64 -P 2 xz --check=crc32 --lzma2=dict=1MiB -T1"], { cwd: work, stdio: 'inherit' });
    writeMd5sums(work);
    execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '-b', work, `${out}.tmp`], { stdio: ['ignore', 'ignore', 'inherit'] });
    renameSync(`${out}.tmp`, out);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}

/** DEBIAN/md5sums of a staged package tree, as dh_md5sums writes it (regular files, relative to /). */
function writeMd5sums(stage: string): void {
  const files = execFileSync('find', ['.', '-path', './DEBIAN', '-prune', '-o', '-type', 'f', '-printf', '%P\\n'], { cwd: stage, encoding: 'utf8', maxBuffer: 1 << 26 })
    .split('\n')
    .filter((l) => l !== '');
  const lines = files.map((f) => `${createHash('md5').update(readFileSync(join(stage, f))).digest('hex')}  ${f}\n`);
  writeFileSync(join(stage, 'DEBIAN', 'md5sums'), lines.join(''));
}

/**
 * A module package as DKMS or a KMP ships one: the modules under /lib/modules/KVER, md5sums, and a
 * postinst and postrm that run `depmod -a KVER`, as such packages do.
 */
export function modulePackage(dir: string, name: string, kver: string, depends: string, mods: Array<[string, FixtureModule]>): string {
  const stage = join(dir, `${name}-stage`);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'DEBIAN'), { recursive: true });
  for (const [rel, m] of mods) {
    const file = join(stage, 'lib', 'modules', kver, rel);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, compressForPath(rel, buildModuleElf(m)));
  }
  writeMd5sums(stage);
  writeFileSync(join(stage, 'DEBIAN', 'control'), `Package: ${name}\nVersion: 1.0\nArchitecture: all\nMaintainer: T <t@example.org>\nDepends: ${depends}\nDescription: e2e module package\n`);
  const script = (when: string): string => `#!/bin/sh\nset -e\nif [ "$1" = ${when} ]; then\n\tdepmod -a ${kver}\nfi\n`;
  writeFileSync(join(stage, 'DEBIAN', 'postinst'), script('configure'), { mode: 0o755 });
  writeFileSync(join(stage, 'DEBIAN', 'postrm'), script('remove'), { mode: 0o755 });
  const deb = join(dir, `${name}_1.0_all.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '-b', stage, deb], { stdio: ['ignore', 'ignore', 'inherit'] });
  rmSync(stage, { recursive: true, force: true });
  return deb;
}

/** One timed call made inside the root. */
export interface TimedCall {
  name: string;
  startNs: bigint;
  endNs: bigint;
  status: number;
  /** The maintainer script's package (DPKG_MAINTSCRIPT_PACKAGE), or '-'. */
  package: string;
  args: string;
}

const TIMING_LOG = '/var/log/e2e-timing.log';
const REAL = '/usr/lib/e2e-timing/real';

/**
 * Replaces each of `paths` (depmod, update-initramfs as the root has them) by a script that runs
 * the original, moved to /usr/lib/e2e-timing/real/NAME (same base name: kmod picks its tool by
 * it), and appends one line per call to /var/log/e2e-timing.log; and writes
 * /usr/lib/e2e-timing/depmod-tx, a timed depmod-tx for the DEPMOD_TX the hooks run. A few ms per call.
 */
export function timeCalls(root: string, paths: string[]): { env: { DEPMOD_TX: string } } {
  mkdirSync(join(root, REAL), { recursive: true });
  const wrapper = (name: string, real: string): string =>
    `#!/bin/sh\ns=$(date +%s%N)\n${real} "$@"\nrc=$?\ne=$(date +%s%N)\nprintf '%s %s %s %s %s %s\\n' ${name} "$s" "$e" "$rc" "\${DPKG_MAINTSCRIPT_PACKAGE:--}" "$*" >>${TIMING_LOG}\nexit $rc\n`;
  for (const p of paths) {
    const name = basename(p);
    // A relative link (Debian 13: usr/sbin/depmod -> ../bin/kmod) keeps its target when moved.
    const link = lstatSync(join(root, p)).isSymbolicLink() ? readlinkSync(join(root, p)) : undefined;
    if (link !== undefined && !link.startsWith('/')) {
      rmSync(join(root, p));
      symlinkSync(resolve('/', dirname(p), link), join(root, REAL, name));
    } else renameSync(join(root, p), join(root, REAL, name));
    writeFileSync(join(root, p), wrapper(name, `${REAL}/${name}`));
    chmodSync(join(root, p), 0o755);
  }
  writeFileSync(join(root, 'usr/lib/e2e-timing/depmod-tx'), wrapper('depmod-tx', '/usr/bin/depmod-tx'));
  chmodSync(join(root, 'usr/lib/e2e-timing/depmod-tx'), 0o755);
  writeFileSync(join(root, TIMING_LOG), '');
  return { env: { DEPMOD_TX: '/usr/lib/e2e-timing/depmod-tx' } };
}

/** The calls timed since the last take, and the log emptied. */
export function takeTimings(root: string): TimedCall[] {
  const file = join(root, TIMING_LOG);
  const text = readFileSync(file, 'utf8');
  writeFileSync(file, '');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [name, s, e, rc, pkg, ...args] = l.split(' ');
      return { name: name!, startNs: BigInt(s!), endNs: BigInt(e!), status: Number(rc), package: pkg!, args: args.join(' ') };
    });
}

/** Wall time covered by any of the calls (nested calls, e.g. an initrd build inside a commit, count once), ms. */
export function coveredMs(calls: readonly TimedCall[]): number {
  const spans = calls.map((c) => [c.startNs, c.endNs] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let total = 0n;
  let cur: [bigint, bigint] | undefined;
  for (const [s, e] of spans) {
    if (cur !== undefined && s <= cur[1]) cur[1] = e > cur[1] ? e : cur[1];
    else {
      if (cur !== undefined) total += cur[1] - cur[0];
      cur = [s, e];
    }
  }
  if (cur !== undefined) total += cur[1] - cur[0];
  return Number(total) / 1e6;
}

/** The modules.* files of ROOT/lib/modules/KVER that depmod writes. */
export function databaseOf(root: string, kver: string): Map<string, Buffer> {
  const moddir = join(root, 'lib', 'modules', kver);
  const out = new Map<string, Buffer>();
  for (const f of readdirSync(moddir)) {
    if (f.startsWith('modules.') && !['modules.order', 'modules.builtin', 'modules.builtin.modinfo'].includes(f)) out.set(f, readFileSync(join(moddir, f)));
  }
  return out;
}

/** Files where ROOT's database differs from what kmod's depmod -a writes for the tree (ORACLE: the root's kmod, run on the host). */
export function databaseDiffFromKmod(root: string, kver: string, work: string, oracle: DepmodOracle = kmod30()): string[] {
  const clone = join(work, 'kmod-check');
  rmSync(clone, { recursive: true, force: true });
  mkdirSync(join(clone, 'lib', 'modules'), { recursive: true });
  execFileSync('cp', ['-al', join(root, 'lib', 'modules', kver), join(clone, 'lib', 'modules', kver)]);
  for (const f of databaseOf(clone, kver).keys()) rmSync(join(clone, 'lib', 'modules', kver, f));
  // The root's depmod.d is what its depmod reads; an empty directory when it has none.
  const conf = ['etc/depmod.d', 'run/depmod.d', 'usr/local/lib/depmod.d', 'usr/lib/depmod.d', 'lib/depmod.d'].map((d) => join(root, d)).filter((d) => existsSync(d));
  if (conf.length === 0) {
    mkdirSync(join(clone, 'no-depmod.d'), { recursive: true });
    conf.push(join(clone, 'no-depmod.d'));
  }
  const r = runOracle(oracle, ['-b', clone, ...conf.flatMap((c) => ['-C', c]), '-a', kver]);
  if (r.status !== 0) throw new Error(`${oracle.name} depmod -a ${kver} failed: ${r.stderr}`);
  const theirs = databaseOf(clone, kver);
  const ours = databaseOf(root, kver);
  const d: string[] = [];
  for (const [f, b] of theirs) if (!ours.get(f)?.equals(b)) d.push(`${f}: ${ours.has(f) ? 'differs' : 'missing'}`);
  for (const f of ours.keys()) if (!theirs.has(f)) d.push(`${f}: extra`);
  rmSync(clone, { recursive: true, force: true });
  return d;
}

/** mtime of a file in the root, ms (undefined when missing). */
export function mtimeIn(root: string, path: string): number | undefined {
  return statSync(join(root, path), { throwIfNoEntry: false })?.mtimeMs;
}
