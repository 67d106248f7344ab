// Reads everything a rebuild or update needs from the system besides the module files: depmod.d,
// modules.order, modules.builtin(.modinfo), and the kernel's symbol versions for the KABI check.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { KabiBasis } from '../depmod/compute.ts';
import type { KmodBehaviour } from '../depmod/kmod-version.ts';
import { configFileOrder, type ConfigFile, type ConfigListing, type ConfigWarning } from '../depmod/config.ts';
import { ConfigError, InputError } from '../errors.ts';
import { parseSymvers, parseSystemMap, type KernelSymbols } from '../depmod/kernel-symbols.ts';
import { listDirInReaddirOrder, readIfExists, type ModuleTree } from '../io/tree.ts';

export interface KernelInputs {
  configFiles: ConfigFile[];
  configWarnings: ConfigWarning[];
  order: string | undefined;
  builtin: Uint8Array | undefined;
  builtinModinfo: Uint8Array | undefined;
  /** Digest of all of the above: when it changes, cached records are not reused. */
  digest: string;
}

/**
 * depmod.d directories (which ones depends on the kmod version; `explicit`, even empty, replaces them, as depmod -C does). kmod reads the host's /etc, /run, /usr/local/lib and /lib depmod.d even
 * with -b ROOT; depmod-tx reads them inside --root, because the root is the system whose package
 * transaction is being finished (an image build must not pick up the build host's overrides).
 * With --root / (every hook run) the two are the same.
 */
export function configDirs(root: string, explicit: readonly string[] | undefined, behaviour: KmodBehaviour): string[] {
  if (explicit !== undefined) {
    // kmod skips a -C path that does not exist; then no depmod.d is read at all, and a typo silently
    // yields a database without the system's overrides and excludes. Refused before any work.
    for (const p of explicit) if (!existsSync(p)) throw new ConfigError(p, '--config: no such file or directory');
    return [...explicit];
  }
  return behaviour.configDirs.map((d) => join(root, d));
}

/**
 * Files named on the command line must exist: checked before any work (and before any lock file or
 * state directory is created), not found halfway through a merge. --config → 78, the others → 66.
 */
export function assertNamedInputsExist(root: string, named: { config?: readonly string[] | undefined; symvers?: string | undefined; systemMap?: string | undefined }): void {
  for (const p of named.config ?? []) if (!existsSync(p)) throw new ConfigError(p, '--config: no such file or directory');
  for (const [what, file] of [['Module.symvers', named.symvers], ['System.map', named.systemMap]] as const) {
    if (file !== undefined && !existsSync(file)) throw new InputError(file, `${what} not found`, 'ENOENT');
  }
}

function listConfigDir(path: string): ConfigListing {
  try {
    if (!statSync(path).isDirectory()) return { path, entries: 'file' };
    return { path, entries: listDirInReaddirOrder(path) };
  } catch {
    return { path, entries: undefined };
  }
}

/**
 * The inputs readKernelInputs reads, by path and identity (size, mtime in ns, inode), without
 * reading them: the no-op check of every merge. Package managers replace files by rename (a new
 * inode), so an unchanged identity means unchanged contents; a changed one is settled by the digest.
 */
export function kernelInputsIdentity(tree: ModuleTree, configDirList: readonly string[]): string {
  const paths = [...configFileOrder(configDirList.map(listConfigDir)).paths, ...['modules.order', 'modules.builtin', 'modules.builtin.modinfo'].map((f) => join(tree.moddir, f))];
  return paths
    .map((p) => {
      const st = statSync(p, { bigint: true, throwIfNoEntry: false });
      return `${p}\0${st ? `${st.size}:${st.mtimeNs}:${st.ino}` : '-'}`;
    })
    .join('\n');
}

/**
 * The kernel's inputs, each read when first asked for: a merge whose inputs' identities are
 * unchanged needs the depmod.d files (for the search) but not modules.order (unless modules were
 * added), the builtin files (unless their indexes must be written again) or the digest.
 */
export function readKernelInputs(tree: ModuleTree, configDirList: readonly string[]): KernelInputs {
  const once = <T>(f: () => T): (() => T) => {
    let done = false;
    let v: T;
    return () => {
      if (!done) [v, done] = [f(), true];
      return v!;
    };
  };
  const config = once(() => {
    const order = configFileOrder(configDirList.map(listConfigDir));
    return { files: order.paths.map((path) => ({ path, text: readFileSync(path, 'latin1') })), warnings: order.warnings };
  });
  const orderBytes = once(() => readIfExists(join(tree.moddir, 'modules.order')));
  const orderText = once(() => {
    const b = orderBytes();
    return b ? Buffer.from(b).toString('latin1') : undefined;
  });
  const builtin = once(() => readIfExists(join(tree.moddir, 'modules.builtin')));
  const builtinModinfo = once(() => readIfExists(join(tree.moddir, 'modules.builtin.modinfo')));
  const digest = once(() => {
    // node:crypto only here: the no-op path decides on kernelInputsIdentity and never reads the inputs.
    const { createHash } = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
    const h = createHash('sha256');
    for (const f of config().files) h.update(`cfg\0${f.path}\0${f.text}\0`);
    for (const [tag, b] of [['order', orderBytes()], ['builtin', builtin()], ['modinfo', builtinModinfo()]] as const) {
      h.update(`${tag}\0${b ? b.length : -1}\0`);
      if (b) h.update(b);
    }
    return h.digest('hex');
  });
  return {
    get configFiles() {
      return config().files;
    },
    get configWarnings() {
      return config().warnings;
    },
    get order() {
      return orderText();
    },
    get builtin() {
      return builtin();
    },
    get builtinModinfo() {
      return builtinModinfo();
    },
    get digest() {
      return digest();
    },
  };
}

/** Reads Module.symvers (plain, .gz, .xz, .zst: detected by magic, like modules) or System.map. */
export async function loadKernelSymbols(file: string, kind: 'symvers' | 'system-map'): Promise<KernelSymbols> {
  const { decompressModule } = await import('../module/decompress.ts');
  const bytes = await decompressModule(readFileSync(file), file);
  // UTF-8 like module symbol names (src/module/parse.ts text()), so a non-ASCII name matches.
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  return kind === 'symvers' ? parseSymvers(text, file) : parseSystemMap(text, file);
}

/** Where distributions keep the kernel's symbol versions, most specific first. */
export function symversCandidates(tree: ModuleTree): string[] {
  const { root, kver, moddir } = tree;
  return [
    join(root, 'boot', `symvers-${kver}.gz`),
    join(root, 'boot', `symvers-${kver}.xz`),
    join(moddir, 'symvers.gz'),
    join(moddir, 'symvers.xz'),
    join(root, 'usr', 'src', `linux-headers-${kver}`, 'Module.symvers'),
    join(moddir, 'build', 'Module.symvers'),
    join(root, 'usr', 'src', 'kernels', kver, 'Module.symvers'),
  ];
}

export function discoverSymvers(tree: ModuleTree): string | undefined {
  return symversCandidates(tree).find((p) => existsSync(p));
}

/** What a merge's KABI check compares imports with, and a key that changes when that input does. */
export interface KabiInput {
  against: KabiBasis;
  /** The Module.symvers or System.map file, when one is used. */
  file: string | undefined;
  /** against + file + its size, mtime and inode: a new linux-headers package changes it. */
  key: string;
}

/**
 * symvers: a file, 'auto' (discover it), or undefined; systemMap: used when symvers is undefined.
 * 'modules': a check was asked for but no symvers exists, so only module CRCs are compared.
 */
export function kabiInput(tree: ModuleTree, symvers: string | 'auto' | undefined, systemMap: string | undefined): KabiInput {
  const file = symvers === 'auto' ? discoverSymvers(tree) : symvers ?? systemMap;
  const against: KabiBasis = file !== undefined ? (symvers !== undefined ? 'symvers' : 'system-map') : symvers !== undefined ? 'modules' : 'none';
  let fp = '';
  if (file !== undefined) {
    const st = statSync(file, { bigint: true, throwIfNoEntry: false });
    fp = st ? `${st.size}:${st.mtimeNs}:${st.ino}` : 'missing';
  }
  return { against, file, key: `${against}\0${file ?? ''}\0${fp}` };
}
