// Writes a synthetic module tree ROOT/lib/modules/KVER (the layout `depmod -b ROOT -a KVER` reads in
// kmod v30: MODULE_DIRECTORY is /lib/modules) from FixtureModule descriptions. Test support: does I/O.
// Files kmod's depmod reads besides the modules: modules.order (one relative path a line),
// modules.builtin (same), modules.builtin.modinfo ("module.key=value" records, NUL-terminated).
// depmod.d files: `depmod -b` does NOT prefix its configuration directories with ROOT
// (tools/depmod.c: cfg_load uses the absolute default_cfg_paths unless -C is given), so files written
// under ROOT only take effect through `-C` options: depmodConfigArgs() builds them.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildModuleElf, type ElfOptions, type FixtureModule } from './fixture-elf.ts';

export interface FixtureTreeModule {
  /** Relative to the module directory, e.g. 'kernel/drivers/foo.ko' or 'updates/foo.ko.xz'. */
  path: string;
  module: FixtureModule;
  /** Per-module ELF class/byte order; defaults to the tree's. */
  elf?: ElfOptions;
}

export interface FixtureTreeOptions {
  /** modules.order lines; no file when absent. */
  order?: string[];
  /** modules.builtin lines (e.g. 'kernel/lib/foo.ko'); no file when absent. */
  builtin?: string[];
  /** modules.builtin.modinfo records: module, key, value. No file when absent. */
  builtinModinfo?: Array<[string, string, string]>;
  /** Relative path under root (e.g. 'etc/depmod.d/x.conf') → file text. */
  depmodConf?: Record<string, string>;
  bits?: 32 | 64;
  endian?: 'le' | 'be';
}

/** Compresses a module image the way its file suffix says (.ko.xz, .ko.zst, .ko.gz; .ko stays raw). */
export function compressForPath(path: string, raw: Uint8Array): Uint8Array {
  if (path.endsWith('.xz')) {
    // The kernel's own settings (scripts/Makefile.modinst): CRC32 check, 1 MiB dictionary.
    return execFileSync('xz', ['--check=crc32', '--lzma2=dict=1MiB', '-T1', '-c'], { input: raw, maxBuffer: 1 << 28 });
  }
  if (path.endsWith('.zst')) return execFileSync('zstd', ['-q', '-c'], { input: raw, maxBuffer: 1 << 28 });
  if (path.endsWith('.gz')) return gzipSync(raw, { level: 9 });
  return raw;
}

/** Writes the tree; modules are created in the given order (readdir order may follow creation). Returns the module directory. */
export function writeFixtureTree(root: string, kver: string, mods: FixtureTreeModule[], opts: FixtureTreeOptions = {}): string {
  const moddir = join(root, 'lib', 'modules', kver);
  mkdirSync(moddir, { recursive: true });
  const tree: ElfOptions = {};
  if (opts.bits !== undefined) tree.bits = opts.bits;
  if (opts.endian !== undefined) tree.endian = opts.endian;
  for (const m of mods) {
    if (m.path.startsWith('/') || m.path.split('/').includes('..')) throw new RangeError(`module path must stay inside the module directory: ${m.path}`);
    const file = join(moddir, m.path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, compressForPath(m.path, buildModuleElf(m.module, { ...tree, ...m.elf })));
  }
  const lines = (l: string[]): string => l.map((s) => `${s}\n`).join('');
  if (opts.order !== undefined) writeFileSync(join(moddir, 'modules.order'), lines(opts.order));
  if (opts.builtin !== undefined) writeFileSync(join(moddir, 'modules.builtin'), lines(opts.builtin));
  if (opts.builtinModinfo !== undefined) {
    writeFileSync(join(moddir, 'modules.builtin.modinfo'), opts.builtinModinfo.map(([m, k, v]) => `${m}.${k}=${v}\0`).join(''));
  }
  for (const [rel, text] of Object.entries(opts.depmodConf ?? {})) {
    const file = join(root, rel);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
  return moddir;
}

/**
 * `-C DIR` arguments that make depmod (and depmod-tx) read the depmod.d files written under ROOT:
 * one per distinct directory, in first-seen order. With no configuration, `-C` an empty directory
 * under ROOT so the host's /etc/depmod.d cannot leak into a test.
 */
export function depmodConfigArgs(root: string, depmodConf: Record<string, string> | undefined): string[] {
  const dirs: string[] = [];
  for (const rel of Object.keys(depmodConf ?? {})) {
    const d = join(root, dirname(rel));
    if (!dirs.includes(d)) dirs.push(d);
  }
  if (dirs.length === 0) {
    const empty = join(root, 'etc', 'depmod.d');
    mkdirSync(empty, { recursive: true });
    dirs.push(empty);
  }
  return dirs.flatMap((d) => ['-C', d]);
}
