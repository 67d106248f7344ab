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

export interface ModuleRecord {
  /** Module name as depmod derives it: file name without the .ko[.xz|.zst|.gz] suffix, '-' turned into '_'. */
  name: string;
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
   * A .ko.zst whose stream kmod 34+ cannot decompress in one call (zstd-frames.ts): those kmods list
   * the module with nothing in it. Absent for every other file.
   */
  zstdUnsized?: true;
}

/**
 * The .modinfo keys the database is made of: "alias" (modules.alias, .alias.bin, .devname),
 * "softdep" (modules.softdep) and "weakdep" (modules.weakdep, kmod 33+), the only ones depmod
 * reads. On the Debian amd64 tree they are 26,192 of 69,323 pairs; keeping only them makes records
 * cheaper to pass from parse workers.
 */
export const DATABASE_MODINFO_KEYS: ReadonlySet<string> = new Set(['alias', 'softdep', 'weakdep']);
