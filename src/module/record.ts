// ModuleRecord: everything kmod's depmod takes from one module file, as plain data
// (JSON-serialisable, so it can cross worker threads and live in the module cache).
// Field order rules come from kmod v30: libkmod/libkmod-elf.c (kmod_elf_get_symbols,
// kmod_elf_get_dependency_symbols, kmod_elf_get_modinfo_strings) and tools/depmod.c.

export interface ExportedSymbol {
  /** Symbol name without any __ksymtab_/__crc_ prefix. */
  name: string;
  /** CRC the module exports the symbol with (uint32/uint64 as a number), 0 when unversioned, as kmod reports it. */
  crc: number;
}

export interface ImportedSymbol {
  name: string;
  /** CRC the module expects (from __versions); 0 when the module has no entry for it. */
  crc: number;
  /** True for weak undefined symbols: depmod does not complain when they are unresolved. */
  weak: boolean;
}

/**
 * What one kmod takes from a module file through depmod_load_modules' three calls
 * (kmod_module_get_symbols, kmod_module_get_info, kmod_module_get_dependency_symbols), each of
 * which may fail on its own: a failed call contributes nothing. Partial readings are kmod's.
 */
export interface ModuleReading {
  /**
   * .modinfo key=value pairs, in file order (alias, softdep, depends, vermagic, ...). Records made
   * for the database (parse pool, module cache) keep only DATABASE_MODINFO_KEYS.
   */
  modinfo: Array<[key: string, value: string]>;
  /** Exported symbols, in the order kmod_elf_get_symbols returns them. */
  exports: ExportedSymbol[];
  /** Undefined symbols, in the order kmod_elf_get_dependency_symbols returns them. */
  imports: ImportedSymbol[];
  /**
   * kmod_module_get_symbols failed: the strerror() text depmod prints after "failed to load
   * symbols from PATH: " ("Invalid argument", "Exec format error", "Permission denied", ...).
   * Absent when depmod prints nothing.
   */
  loadError?: string;
  /** What is wrong with the file, in our words (findings, `inspect`); set with loadError. */
  loadDetail?: string;
  /** What libkmod itself logs on each of the three calls, in order (kmod 34: "xz: File is corrupt"), without "depmod: ERROR: ". */
  libkmodErrors?: string[];
  /** kmod's depmod dies on this file (a libkmod assertion, SIGABRT) and writes nothing: the assertion. */
  kmodAborts?: string;
}

/**
 * A reading whose strings are byte ranges of the image it was read from (src/module/parse.ts):
 * what the module set stores (src/depmod/module-set.ts), made without a JavaScript string per
 * symbol. A ModuleReading is its decoded form; rawReadingOf turns one back. Ranges are [start, end).
 */
export interface RawReading {
  /** The bytes the ranges lie in. */
  bytes: Uint8Array;
  /** .modinfo pairs, 4 numbers each: key start and end, value start and end (empty without '='). */
  modinfo: number[];
  /** Exported symbols, 2 numbers each: name start and end; CRCs in exportCrcs. */
  exports: number[];
  exportCrcs: number[];
  /** Undefined symbols, 3 numbers each: name start and end, 1 when weak; CRCs in importCrcs. */
  imports: number[];
  importCrcs: number[];
  loadError?: string;
  loadDetail?: string;
  libkmodErrors?: string[];
  kmodAborts?: string;
}

export interface ModuleRecord extends ModuleReading {
  /** Module name as depmod derives it: file name without the .ko[.xz|.zst|.gz] suffix, '-' turned into '_'. */
  name: string;
  /**
   * A .ko.zst whose first frame does not say how large it is (zstd-frames.ts): kmod 34+ cannot
   * load it and lists the module with nothing in it. Absent for every other file.
   */
  zstdUnsized?: true;
  /**
   * How kmod 34 and later read this file, where that differs from kmod 28 to 33 (the fields above):
   * libkmod 34 checks some damaged files differently (src/elf/elf.ts) and loads .ko.zst in one call.
   * Absent when both read the same (every sound module).
   */
  kmod34?: ModuleReading;
}

/**
 * The record as kmod `major` reads it: the kmod 34 reading in place of the base one where there is
 * one. `byKmod` tells a caller that keeps readings (the module cache) to read the file again
 * when the kmod changes generation.
 */
export function readingFor(record: ModuleRecord, major: number): { record: ModuleRecord; byKmod: boolean } {
  const alt = record.kmod34;
  if (alt === undefined) return { record, byKmod: false };
  if (major < 34) return { record, byKmod: true };
  const { kmod34: _alt, modinfo: _m, exports: _e, imports: _i, loadError: _l, loadDetail: _d, libkmodErrors: _k, kmodAborts: _a, ...rest } = record;
  return { record: { ...rest, ...alt }, byKmod: true };
}

const utf8 = new TextEncoder();

/** A reading's strings as UTF-8 bytes in one array, with their ranges: what the parser would have read them as. */
export function rawReadingOf(r: ModuleReading): RawReading {
  const parts: string[] = [];
  for (const [k, v] of r.modinfo) parts.push(k, v);
  for (const e of r.exports) parts.push(e.name);
  for (const i of r.imports) parts.push(i.name);
  let cap = 0;
  for (const t of parts) cap += t.length * 3;
  const bytes = new Uint8Array(cap);
  let at = 0;
  const put = (t: string): [number, number] => {
    const start = at;
    at += utf8.encodeInto(t, bytes.subarray(at)).written;
    return [start, at];
  };
  const raw: RawReading = { bytes, modinfo: [], exports: [], exportCrcs: [], imports: [], importCrcs: [] };
  for (const [k, v] of r.modinfo) raw.modinfo.push(...put(k), ...put(v));
  for (const e of r.exports) {
    raw.exports.push(...put(e.name));
    raw.exportCrcs.push(e.crc);
  }
  for (const i of r.imports) {
    raw.imports.push(...put(i.name), i.weak ? 1 : 0);
    raw.importCrcs.push(i.crc);
  }
  if (r.loadError !== undefined) raw.loadError = r.loadError;
  if (r.loadDetail !== undefined) raw.loadDetail = r.loadDetail;
  if (r.libkmodErrors !== undefined) raw.libkmodErrors = r.libkmodErrors;
  if (r.kmodAborts !== undefined) raw.kmodAborts = r.kmodAborts;
  return raw;
}

/**
 * The .modinfo keys the database is made of: "alias" (modules.alias, .alias.bin, .devname),
 * "softdep" (modules.softdep) and "weakdep" (modules.weakdep, kmod 33+), the only ones depmod
 * reads. On the Debian amd64 tree they are 26,192 of 69,323 pairs; keeping only them makes records
 * cheaper to pass from parse workers.
 */
export const DATABASE_MODINFO_KEYS: ReadonlySet<string> = new Set(['alias', 'softdep', 'weakdep']);
