// Reads everything a rebuild or update needs from the system besides the module files: depmod.d,
// modules.order, modules.builtin(.modinfo), and the kernel's symbol versions for the KABI check.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
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

export function readKernelInputs(tree: ModuleTree, configDirList: readonly string[]): KernelInputs {
  const order = configFileOrder(configDirList.map(listConfigDir));
  const configFiles = order.paths.map((path) => ({ path, text: readFileSync(path, 'latin1') }));
  const orderBytes = readIfExists(join(tree.moddir, 'modules.order'));
  const builtin = readIfExists(join(tree.moddir, 'modules.builtin'));
  const builtinModinfo = readIfExists(join(tree.moddir, 'modules.builtin.modinfo'));
  const h = createHash('sha256');
  for (const f of configFiles) h.update(`cfg\0${f.path}\0${f.text}\0`);
  for (const [tag, b] of [['order', orderBytes], ['builtin', builtin], ['modinfo', builtinModinfo]] as const) {
    h.update(`${tag}\0${b ? b.length : -1}\0`);
    if (b) h.update(b);
  }
  return {
    configFiles,
    configWarnings: order.warnings,
    order: orderBytes ? Buffer.from(orderBytes).toString('latin1') : undefined,
    builtin,
    builtinModinfo,
    digest: h.digest('hex'),
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
