// Roots and module trees of other architectures, for the emulated suite (emulated.test.ts). Per
// Debian architecture, cached in .cache/arch/ARCH (DEPMOD_TX_ARCH_CACHE overrides .cache/arch):
//   apt/        private apt configuration and lists (APT::Architecture=ARCH): the machine's own apt
//               state is never touched. Sources: the host's Debian sources (apt-get indextargets).
//   node-root/  Debian's nodejs, xz-utils and dpkg of ARCH with their library dependencies, unpacked
//               with dpkg-deb -x (absolute symlinks made relative so qemu's -L prefix resolves them).
//   dpkg/       the dpkg status stanzas (from the packages' own control fields) and .list files of
//               those packages, so a root made from node-root is a dpkg root where they are installed.
//   tree/       lib/modules/KVER of the newest Debian 6.1 kernel image of ARCH, trimmed: every module
//               under kernel/fs, kernel/drivers/md and kernel/net/netfilter/ipset plus everything
//               they depend on (~170-220), recompressed to .ko.xz with the kernel build's check and
//               dictionary (KERNEL_XZ); modules.order, modules.builtin, modules.builtin.modinfo as
//               shipped (so modules.order also names modules the trimmed tree lacks).
//   kmp/        six leaf ipset modules held out of tree/: the KMP. One plain .ko, four .ko.xz, one
//               .ko.xz of two concatenated streams (valid, kmod reads it; the batch path leaves it
//               to the single-file decoder).
//   info.json   what was chosen (kernel package, KVER, module count).
// Programs of ARCH run as `qemu-ARCH-static -L ROOT ROOT/usr/bin/node` (Debian's qemu-user-static).
// qemu 7.2 (bookworm) does not apply -L to statx(2), which the 32-bit loaders use on their library
// directories, so LD_LIBRARY_PATH names them by host path. Its i386 emulation breaks V8 as soon as
// node starts a child process ("Entering the V8 API without proper locking in place", also with
// -cpu max, which V8's SSE2 needs), so i386 runs under trixie's qemu 10 (package qemu-user,
// downloaded into .cache/arch/qemu-trixie, not installed); the other four use bookworm's, which
// measured faster (arm64 rebuild 18 s against 23 s of CPU). A program of ARCH that runs another
// program (xz, flock, sh, dpkg-deb) gets the host's: qemu does not translate execve.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { aptDownload, aptUpdate, hostArch, privateApt } from '../support/debian-archive.ts';
import { repoRoot } from '../support/kernels.ts';

export interface ArchSpec {
  /** Debian architecture name. */
  deb: 'arm64' | 'armhf' | 'ppc64el' | 's390x' | 'i386';
  /** qemu-QEMU-static. */
  qemu: string;
  /** Multiarch library directory name. */
  triplet: string;
  /** linux-image-6.1.0-N-FLAVOUR[-unsigned]. */
  flavour: string;
  /** What the architecture's ELF files say: e_machine, word size, byte order. */
  elf: { machine: number; bits: 32 | 64; endian: 'LE' | 'BE' };
  /** Run under trixie's qemu instead of the installed qemu-user-static (see the header). */
  trixieQemu?: true;
}

export const ARCHES: readonly ArchSpec[] = [
  { deb: 'arm64', qemu: 'aarch64', triplet: 'aarch64-linux-gnu', flavour: 'cloud-arm64', elf: { machine: 183, bits: 64, endian: 'LE' } },
  { deb: 'armhf', qemu: 'arm', triplet: 'arm-linux-gnueabihf', flavour: 'armmp', elf: { machine: 40, bits: 32, endian: 'LE' } },
  { deb: 'ppc64el', qemu: 'ppc64le', triplet: 'powerpc64le-linux-gnu', flavour: 'powerpc64le', elf: { machine: 21, bits: 64, endian: 'LE' } },
  { deb: 's390x', qemu: 's390x', triplet: 's390x-linux-gnu', flavour: 's390x', elf: { machine: 22, bits: 64, endian: 'BE' } },
  { deb: 'i386', qemu: 'i386', triplet: 'i386-linux-gnu', flavour: '686', elf: { machine: 3, bits: 32, endian: 'LE' }, trixieQemu: true },
];

const archCache = process.env.DEPMOD_TX_ARCH_CACHE ?? join(repoRoot, '.cache', 'arch');
const SEEDS = ['kernel/fs/', 'kernel/drivers/md/', 'kernel/net/netfilter/ipset/'];
const ROOT_PACKAGES = ['nodejs', 'xz-utils', 'dpkg'];
const KMP_SIZE = 6;

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Why the emulated suite cannot run here, or undefined. With CI=true a missing tool is an error. */
export function emulationSkipReason(): string | undefined {
  const tools = ['apt-get', 'apt-cache', 'dpkg-deb', 'depmod', 'xz', ...ARCHES.filter((a) => !a.trixieQemu).map((a) => `qemu-${a.qemu}-static`)];
  const missing = tools.filter((c) => !have(c));
  if (!existsSync('/usr/bin/time')) missing.push('/usr/bin/time');
  if (missing.length === 0) return undefined;
  const reason = `emulated suite needs ${missing.join(', ')} (.ci/run installs qemu-user-static, time)`;
  if (process.env.CI === 'true') throw new Error(`CI=true but ${reason}`);
  return reason;
}

export interface ForeignArch {
  spec: ArchSpec;
  /** Unpacked nodejs/xz-utils/dpkg closure of the architecture (read-only: copy or cp -al). */
  nodeRoot: string;
  /** var/lib/dpkg/status text and info/*.list files for a root made from nodeRoot. */
  dpkgStatus: string;
  dpkgLists: string;
  kver: string;
  kernelPackage: string;
  /** ROOT with lib/modules/KVER: the trimmed tree without the KMP modules (read-only). */
  tree: string;
  /** Absolute paths of the KMP's module files. */
  kmp: string[];
  modules: number;
}

interface Info {
  kver: string;
  kernelPackage: string;
  kmp: string[];
  modules: number;
}

/** Downloads (once), unpacks and trims everything the suite needs for one architecture. */
export function foreignArch(spec: ArchSpec): ForeignArch {
  const base = join(archCache, spec.deb);
  if (!existsSync(join(base, '.complete'))) prepare(spec, base);
  const info = JSON.parse(readFileSync(join(base, 'info.json'), 'utf8')) as Info;
  return {
    spec,
    nodeRoot: join(base, 'node-root'),
    dpkgStatus: join(base, 'dpkg', 'status'),
    dpkgLists: join(base, 'dpkg', 'info'),
    kver: info.kver,
    kernelPackage: info.kernelPackage,
    tree: join(base, 'tree'),
    kmp: info.kmp.map((f) => join(base, 'kmp', f)),
    modules: info.modules,
  };
}

function prepare(spec: ArchSpec, base: string): void {
  rmSync(base, { recursive: true, force: true });
  mkdirSync(base, { recursive: true });
  const apt = privateApt(spec.deb, join(base, 'apt'));
  aptUpdate(apt, `arch ${spec.deb}`);
  const debs = join(base, 'debs');
  mkdirSync(debs);

  // The run time: what `apt-get install` would put on an empty system of that architecture.
  const sim = spawnSync('apt-get', [...apt, '-s', 'install', '--no-install-recommends', ...ROOT_PACKAGES], { encoding: 'utf8' });
  const names = [...sim.stdout.matchAll(/^Inst (\S+) /gm)].map((m) => m[1]!);
  const unplanned = ROOT_PACKAGES.filter((p) => !names.includes(p));
  if (sim.status !== 0 || unplanned.length > 0) throw new Error(`${spec.deb}: apt cannot install ${unplanned.join(', ') || ROOT_PACKAGES.join(', ')} from the indexes it has:\n${sim.stdout}${sim.stderr}`);
  aptDownload(apt, names, debs);
  const nodeRoot = join(base, 'node-root');
  const status: string[] = [];
  mkdirSync(join(base, 'dpkg', 'info'), { recursive: true });
  for (const f of readdirSync(debs).sort()) {
    const deb = join(debs, f);
    // -X: unpack and list in one pass over the payload.
    const listing = execFileSync('dpkg-deb', ['-X', deb, nodeRoot], { encoding: 'utf8', maxBuffer: 64 << 20 });
    const control = execFileSync('dpkg-deb', ['-f', deb], { encoding: 'utf8' }).trimEnd();
    const field = (k: string) => control.match(new RegExp(`^${k}: (.*)$`, 'm'))?.[1];
    status.push(`${control}\nStatus: install ok installed\n`);
    const name = field('Multi-Arch') === 'same' ? `${field('Package')}:${field('Architecture')}` : field('Package')!;
    const paths = listing.split('\n').filter((l) => l !== '').map((l) => (l === './' ? '/.' : l.replace(/^\./, '').replace(/\/$/, '')));
    writeFileSync(join(base, 'dpkg', 'info', `${name}.list`), `${paths.join('\n')}\n`);
  }
  writeFileSync(join(base, 'dpkg', 'status'), status.join('\n'));
  relativiseSymlinks(nodeRoot);
  rmSync(debs, { recursive: true, force: true });

  const info = trimmedKernel(spec, apt, base);
  writeFileSync(join(base, 'info.json'), `${JSON.stringify(info, null, 2)}\n`);
  writeFileSync(join(base, '.complete'), '');
}

/** Absolute symlinks point into the host once the tree is not at /: make them relative. */
function relativiseSymlinks(root: string): void {
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isSymbolicLink()) {
        const target = readlinkSync(p);
        if (!target.startsWith('/')) continue;
        unlinkSync(p);
        symlinkSync(relative(dirname(p), join(root, target)) || '.', p);
      } else if (e.isDirectory()) walk(p);
    }
  };
  walk(root);
}

function newestKernelPackage(spec: ArchSpec, apt: string[]): string {
  const out = execFileSync('apt-cache', [...apt, 'search', '--names-only', `^linux-image-6\\.1\\.0-[0-9]+-${spec.flavour}(-unsigned)?$`], { encoding: 'utf8' });
  const found = [...out.matchAll(/^(linux-image-6\.1\.0-(\d+)-\S+)/gm)].map((m) => ({ name: m[1]!, abi: Number(m[2]) }));
  if (found.length === 0) throw new Error(`no linux-image-6.1.0-*-${spec.flavour} for ${spec.deb} in the archive`);
  const abi = Math.max(...found.map((f) => f.abi));
  const names = found.filter((f) => f.abi === abi).map((f) => f.name);
  return names.find((n) => n.endsWith('-unsigned')) ?? names[0]!;
}

/**
 * The kernel build's module compression (scripts/Makefile.modinst, CONFIG_MODULE_COMPRESS_XZ:
 * --check=crc32 --lzma2=dict=1MiB) at the fastest encoder preset: the level is only the encoder's
 * effort, the decoders see the same format, and preset 6 took 14 s of a 44 s setup.
 */
const KERNEL_XZ = ['--check=crc32', '--lzma2=preset=0,dict=1MiB', '-T1'];

function xzLikeKernel(b: Uint8Array): Buffer {
  return execFileSync('xz', ['-c', ...KERNEL_XZ], { input: b, maxBuffer: 1 << 28 });
}

function trimmedKernel(spec: ArchSpec, apt: string[], base: string): Info {
  const kernelPackage = newestKernelPackage(spec, apt);
  const dl = join(base, 'kernel-deb');
  mkdirSync(dl);
  aptDownload(apt, [kernelPackage], dl);
  const full = join(base, 'kernel-full');
  execFileSync('dpkg-deb', ['-x', join(dl, readdirSync(dl)[0]!), full]);
  rmSync(dl, { recursive: true, force: true });
  const kver = readdirSync(join(full, 'lib', 'modules'))[0]!;
  const fullMods = join(full, 'lib', 'modules', kver);

  // Dependencies as depmod sees them (the host's kmod reads every architecture's modules).
  execFileSync('depmod', ['-b', full, kver]);
  const deps = new Map<string, string[]>();
  for (const line of readFileSync(join(fullMods, 'modules.dep'), 'utf8').split('\n')) {
    const [mod, rest] = line.split(':');
    if (mod) deps.set(mod, rest!.trim().split(/\s+/).filter((d) => d !== ''));
  }
  const selected = new Set<string>();
  for (const [m, d] of deps) {
    if (!SEEDS.some((s) => m.startsWith(s))) continue;
    selected.add(m);
    for (const x of d) selected.add(x);
  }
  const dependedOn = new Set([...selected].flatMap((m) => deps.get(m) ?? []));
  const leaves = [...selected].filter((m) => !dependedOn.has(m) && m.startsWith('kernel/net/netfilter/ipset/')).sort();
  const kmpMods = Array.from({ length: KMP_SIZE }, (_, i) => leaves[Math.floor((i * leaves.length) / KMP_SIZE)]!);
  if (new Set(kmpMods).size !== KMP_SIZE) throw new Error(`${spec.deb}: fewer than ${KMP_SIZE} ipset leaf modules`);

  const tree = join(base, 'tree');
  const moddir = join(tree, 'lib', 'modules', kver);
  mkdirSync(moddir, { recursive: true });
  for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) cpSync(join(fullMods, f), join(moddir, f));
  for (const m of selected) {
    if (kmpMods.includes(m)) continue;
    mkdirSync(dirname(join(moddir, m)), { recursive: true });
    cpSync(join(fullMods, m), join(moddir, m));
  }
  const kmpDir = join(base, 'kmp');
  mkdirSync(kmpDir);
  const kmp = kmpMods.map((m, i) => {
    const name = m.slice(m.lastIndexOf('/') + 1);
    const image = readFileSync(join(fullMods, m));
    if (i === 0) {
      writeFileSync(join(kmpDir, name), image);
      return name;
    }
    const half = image.length >> 1;
    writeFileSync(join(kmpDir, `${name}.xz`), i === 1 ? Buffer.concat([xzLikeKernel(image.subarray(0, half)), xzLikeKernel(image.subarray(half))]) : xzLikeKernel(image));
    return `${name}.xz`;
  });
  const cores = Math.max(1, Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || 1);
  execFileSync('sh', ['-c', `find . -name '*.ko' -print0 | xargs -0 -n 32 -P ${cores} xz ${KERNEL_XZ.join(' ')}`], { cwd: moddir });
  rmSync(full, { recursive: true, force: true });
  return { kver, kernelPackage, kmp, modules: selected.size - kmpMods.length };
}

/** The command line that runs ROOT's node (a root of SPEC's architecture) under qemu. */
export function emulatedCommand(spec: ArchSpec, root: string, program = 'usr/bin/node'): string[] {
  const libs = [`${root}/lib/${spec.triplet}`, `${root}/usr/lib/${spec.triplet}`].join(':');
  const qemu = spec.trixieQemu ? trixieQemu(spec.qemu) : `qemu-${spec.qemu}-static`;
  return [qemu, '-E', `LD_LIBRARY_PATH=${libs}`, '-L', root, join(root, program)];
}

/** qemu-NAME from trixie's qemu-user (the host's architecture), downloaded and unpacked once. */
function trixieQemu(name: string): string {
  const base = join(archCache, 'qemu-trixie');
  const bin = join(base, `qemu-${name}`);
  if (existsSync(bin)) return bin;
  const apt = privateApt(hostArch(), join(base, 'apt'), 'trixie');
  aptUpdate(apt, 'trixie qemu-user');
  const dl = join(base, 'deb');
  rmSync(dl, { recursive: true, force: true });
  mkdirSync(dl);
  aptDownload(apt, ['qemu-user'], dl);
  // Only the one emulator (the package unpacks to ~470 MB), renamed into place once complete.
  execFileSync('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -xO "./usr/bin/qemu-$2" > "$3.tmp" && chmod 755 "$3.tmp" && mv "$3.tmp" "$3"', 'sh', join(dl, readdirSync(dl)[0]!), name, bin]);
  rmSync(dl, { recursive: true, force: true });
  return bin;
}

/**
 * Writes an executable sh script at FILE that runs ROOT's node under qemu with its arguments,
 * appending "seconds maxRSS-KiB" of every run to TIMES (GNU time: the qemu process, guest
 * included, its worker threads too; the host xz(1) children are not counted).
 */
export function writeEmulatedNode(file: string, spec: ArchSpec, root: string, times: string): void {
  const argv = ['/usr/bin/time', '-a', '-o', times, '-f', '%e %M', ...emulatedCommand(spec, root)];
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `#!/bin/sh\nexec ${argv.map((a) => `'${a}'`).join(' ')} "$@"\n`, { mode: 0o755 });
}

export interface Timing {
  seconds: number;
  maxRssKiB: number;
}

export function readTimes(file: string): Timing[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((p) => p.length === 2 && /^[0-9.]+$/.test(p[0]!) && /^[0-9]+$/.test(p[1]!))
    .map(([s, m]) => ({ seconds: Number(s), maxRssKiB: Number(m) }));
}

/** A dpkg root of FA's architecture at ROOT: its run time (hard links) and dpkg's database listing it. */
export function makeDpkgRoot(fa: ForeignArch, root: string): void {
  rmSync(root, { recursive: true, force: true });
  mkdirSync(dirname(root), { recursive: true });
  execFileSync('cp', ['-al', fa.nodeRoot, root]);
  const admin = join(root, 'var', 'lib', 'dpkg');
  for (const d of ['info', 'updates', 'triggers']) mkdirSync(join(admin, d), { recursive: true });
  mkdirSync(join(root, 'etc', 'depmod.d'), { recursive: true });
  // depmod-tx's hooks collect with awk, which the maintainer scripts (run chrootless, on the host)
  // take from the host, as dpkg.test.ts's root takes node: dpkg is told mawk is there.
  const host = `Package: mawk\nStatus: install ok installed\nPriority: required\nSection: interpreters\nMaintainer: host <host@example.org>\nArchitecture: ${fa.spec.deb}\nVersion: 1.3.4.20200120-3.1\nProvides: awk\nDescription: provided by the host\n`;
  writeFileSync(join(admin, 'status'), `${readFileSync(fa.dpkgStatus, 'utf8').trimEnd()}\n\n${host}`);
  for (const f of readdirSync(fa.dpkgLists)) cpSync(join(fa.dpkgLists, f), join(admin, 'info', f));
  writeFileSync(join(admin, 'info', 'mawk.list'), '');
  writeFileSync(join(admin, 'available'), '');
}

/** Builds a binary package of FA's architecture from FILES (absolute path in the package → source). */
export function buildArchDeb(fa: ForeignArch, dir: string, name: string, version: string, files: Array<[string, string]>): string {
  const stage = join(dir, `${name}_${version}`);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'DEBIAN'), { recursive: true });
  for (const [at, src] of files) {
    mkdirSync(dirname(join(stage, at)), { recursive: true });
    cpSync(src, join(stage, at), { recursive: true });
  }
  writeFileSync(join(stage, 'DEBIAN', 'control'), `Package: ${name}\nVersion: ${version}\nArchitecture: ${fa.spec.deb}\nMaintainer: T <t@example.org>\nDescription: emulated-suite test package\n`);
  const out = join(dir, `${name}_${version}_${fa.spec.deb}.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z1', '--build', stage, out], { stdio: ['ignore', 'ignore', 'inherit'] });
  rmSync(stage, { recursive: true, force: true });
  return out;
}

/** e_machine, word size and byte order from an ELF file's header (ELF gABI: e_ident, e_machine at 18). */
export function elfIdentity(file: string): ArchSpec['elf'] {
  const h = readFileSync(file).subarray(0, 20);
  if (h[0] !== 0x7f || h.toString('latin1', 1, 4) !== 'ELF') throw new Error(`${file}: not an ELF file`);
  const endian = h[5] === 2 ? 'BE' : 'LE';
  return { machine: endian === 'BE' ? h.readUInt16BE(18) : h.readUInt16LE(18), bits: h[4] === 2 ? 64 : 32, endian };
}
