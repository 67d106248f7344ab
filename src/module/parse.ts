// One module's ELF image → ModuleRecord: exactly the data kmod's depmod takes from it, for kmod 28
// to 33 and, where it reads a file differently, for kmod 34 (ModuleRecord.kmod34).
//
// depmod_load_modules (tools/depmod.c) makes three calls per module, each of which may fail alone;
// only the first one's failure is printed ("failed to load symbols from PATH: strerror"):
//   exports            kmod_module_get_symbols → kmod_elf_get_symbols: every .symtab entry named
//                      __crc_NAME, in table order, CRC resolved by kmod_elf_resolve_crc; with no
//                      such entry (or an unusable .symtab/.strtab) the names in __ksymtab_strings,
//                      CRC 0 (kmod 34: an unterminated __ksymtab_strings fails the call, EINVAL).
//   .modinfo           kmod_module_get_info → kmod_elf_get_strings (kmod_elf_get_modinfo_strings):
//                      runs of non-NUL bytes, leading NUL padding skipped, split at the first '='.
//   imports            kmod_module_get_dependency_symbols → kmod_elf_get_dependency_symbols: every
//                      undefined .symtab entry (index >= 1, non-empty name, sparc STT_REGISTER
//                      skipped) with the CRC of the first __versions entry of that name
//                      (kmod_elf_crc_find), then the __versions entries no symbol matched
//                      (module_layout & co.), in section order; without a usable .strtab/.symtab
//                      the call fails (EINVAL) and the module has no imports.
//   __versions entry   64 bytes on both classes: CRC as a native word (4 or 8 bytes, ELF byte
//                      order), then the NUL-padded name (kmod 34: a name filling all of it is
//                      "too long": never matched, and it fails the dependency call).
// An image kmod_elf_new refuses fails all three (src/elf/elf.ts openElf). Where a libkmod
// assertion fires, depmod dies: the reading says so (kmodAborts) and holds nothing else.
// Names are kept exactly as kmod returns them: no ppc64 '.' or symbol-prefix stripping here;
// depmod's symbol table does that (tools/depmod.c: depmod_symbol_add / depmod_symbol_find).
// kmod_module_get_info appends signature pseudo-keys (sig_id, signer, ...) for signed modules;
// depmod only reads alias/softdep keys from that list, so the record keeps .modinfo alone.
import {
  EM_SPARC,
  EM_SPARCV9,
  KmodAbort,
  SHN_ABS,
  SHN_UNDEF,
  STB_WEAK,
  cStringEnd,
  findSection,
  isElfRefusal,
  latin1,
  openElf,
  readSymbol,
  readU64,
  sectionByIndex,
  symEntrySize,
  type Elf,
  type ElfSection,
  type ElfSymbol,
  type KmodGeneration,
} from '../elf/elf.ts';
import { modnameFromPath } from './decompress.ts';
import { loadModuleImages, type ImageLoad } from './load.ts';
import { strerror } from './strerror.ts';
import type { ExportedSymbol, ImportedSymbol, ModuleReading, ModuleRecord } from './record.ts';

/** kmod_elf_resolve_crc's (uint64_t)-1 for a __crc_ symbol pointing outside its section (2^64 as a double). */
export const UNRESOLVED_CRC = 0xffff_ffff_ffff_ffff;

const VERSION_ENTRY_SIZE = 64;
const STT_REGISTER = 13;
// "__crc_" as bytes, compared in place so non-matching symbols cost no string.
const CRC_PREFIX = [0x5f, 0x5f, 0x63, 0x72, 0x63, 0x5f] as const;

const utf8 = new TextDecoder('utf-8');

/**
 * Text of bytes start..end, for modinfo values and symbol names alike. Module strings are ASCII in
 * practice and decode byte by byte; anything else goes through UTF-8 so author names read
 * correctly and a non-ASCII symbol re-encodes to its own bytes in modules.symbols (decoded
 * byte-wise it came out as two UTF-8 characters per byte). Symvers text is decoded the same way.
 */
function text(elf: Elf, start: number, end: number): string {
  const bytes = elf.bytes;
  for (let i = start; i < end; i++) {
    if ((bytes[i] as number) >= 0x80) return utf8.decode(bytes.subarray(start, end));
  }
  return latin1(elf.buf, start, end);
}

/**
 * While reading with kmod 30's rules: whether kmod 34 could read the image differently, so that
 * it must be read again with its rules. Set on every branch where libkmod 34 behaves otherwise.
 */
interface Divergence {
  diverges: boolean;
}

/** kmod's section lookup, noting a section at offset 0 (kmod 34 takes it for a missing one). */
function section(elf: Elf, name: string, note: Divergence): ElfSection | undefined {
  const s = findSection(elf, name);
  if (s !== undefined && s.offset === 0) note.diverges = true;
  return s;
}

/**
 * kmod_elf_get_strings' splitting rule: leading NULs are skipped; a remainder of at most one byte
 * yields nothing; otherwise every maximal run of non-NUL bytes is one string (an unterminated
 * last run included). Calls `each(start, end)` per string.
 */
function eachString(bytes: Uint8Array, sec: ElfSection, each: (start: number, end: number) => void): void {
  let p = sec.offset;
  const end = sec.offset + sec.size;
  while (p < end - 1 && bytes[p] === 0) p++;
  if (end - p <= 1) return;
  while (p < end) {
    if (bytes[p] === 0) {
      p++;
      continue;
    }
    let q = p;
    while (q < end && bytes[q] !== 0) q++;
    each(p, q);
    p = q;
  }
}

function readModinfo(elf: Elf, keys: ReadonlySet<string> | undefined, note: Divergence): Array<[string, string]> {
  const sec = section(elf, '.modinfo', note);
  const out: Array<[string, string]> = [];
  if (sec === undefined) return out;
  const bytes = elf.bytes;
  eachString(bytes, sec, (start, end) => {
    let eq = start;
    while (eq < end && bytes[eq] !== 0x3d) eq++;
    // kmod_module_get_info: no '=' means the whole string is the key and the value is empty.
    const key = text(elf, start, eq);
    if (keys !== undefined && !keys.has(key)) return;
    out.push([key, eq === end ? '' : text(elf, eq + 1, end)]);
  });
  return out;
}

/**
 * kmod_elf_get_symbols_symtab, the fallback: the names in __ksymtab_strings. Undefined when the
 * call fails: kmod 34 wants the strings NUL-terminated (e5ef157).
 */
function ksymtabStrings(elf: Elf, note: Divergence): ExportedSymbol[] | undefined {
  const sec = section(elf, '__ksymtab_strings', note);
  const out: ExportedSymbol[] = [];
  if (sec === undefined) return out;
  const bytes = elf.bytes;
  let p = sec.offset;
  const end = sec.offset + sec.size;
  while (p < end - 1 && bytes[p] === 0) p++;
  if (end - p > 1 && bytes[end - 1] !== 0) {
    if (elf.gen === 34) return undefined;
    note.diverges = true;
  }
  eachString(bytes, sec, (start, stop) => out.push({ name: text(elf, start, stop), crc: 0 }));
  return out;
}

/**
 * kmod_elf_resolve_crc: an absolute value is the CRC; otherwise it is an offset into section
 * shndx. kmod 30 compares with size - 4 in uint64, which wraps for a section smaller than 4 bytes:
 * the word is then read wherever the offset points, and a read past the image trips elf_get_uint's
 * assertion. kmod 34 refuses such sections (c40627f) and wants the section's name readable.
 */
function resolveCrc(elf: Elf, value: number, shndx: number, note: Divergence): number {
  if (shndx === SHN_ABS || shndx === SHN_UNDEF) return value;
  const s = sectionByIndex(elf, shndx);
  if (elf.gen === 30 && elf.sections[shndx]!.valid && (elf.sections[shndx]!.size < 4 || elf.sections[shndx]!.nameOffset >= elf.names.size)) note.diverges = true;
  if (s === undefined) return UNRESOLVED_CRC;
  if (s.size < 4) {
    if (elf.gen === 34 || value >= 2 ** 64 - 4 + s.size) return UNRESOLVED_CRC;
  } else if (value > s.size - 4) return UNRESOLVED_CRC;
  const at = s.offset + value;
  if (at + 4 > elf.bytes.byteLength) throw new KmodAbort('offset + size <= elf->size');
  return elf.view.getUint32(at, elf.littleEndian);
}

interface Versions {
  section: ElfSection;
  count: number;
  crcSize: 4 | 8;
  names: string[];
  /** First matchable entry index per name (kmod_elf_crc_find returns the first match). */
  firstIndex: Map<string, number>;
  /** kmod 34: an entry whose name fills its whole slot; it fails the dependency call. */
  tooLong: boolean;
}

function readVersions(elf: Elf, note: Divergence): Versions | undefined {
  const sec = section(elf, '__versions', note);
  // A size that is not a whole number of entries makes kmod ignore the section for dependencies.
  if (sec === undefined || sec.size === 0 || sec.size % VERSION_ENTRY_SIZE !== 0) return undefined;
  const crcSize = elf.is64 ? 8 : 4;
  const nameSlot = VERSION_ENTRY_SIZE - crcSize;
  const count = sec.size / VERSION_ENTRY_SIZE;
  const names: string[] = new Array(count);
  const firstIndex = new Map<string, number>();
  const bytes = elf.bytes;
  let tooLong = false;
  for (let i = 0; i < count; i++) {
    const start = sec.offset + i * VERSION_ENTRY_SIZE + crcSize;
    const end = cStringEnd(elf, start);
    // kmod 30 reads the name on to the next NUL wherever it is; kmod 34 wants it inside its slot (0930e7b).
    if (end - start >= nameSlot) {
      if (elf.gen === 34) {
        tooLong = true;
        names[i] = '';
        continue;
      }
      note.diverges = true;
    }
    const name = text(elf, start, end);
    names[i] = name;
    if (!firstIndex.has(name)) firstIndex.set(name, i);
  }
  return { section: sec, count, crcSize, names, firstIndex, tooLong };
}

function versionCrc(elf: Elf, v: Versions, i: number): number {
  const at = v.section.offset + i * VERSION_ENTRY_SIZE;
  return v.crcSize === 8 ? readU64(elf.view, at, elf.littleEndian) : elf.view.getUint32(at, elf.littleEndian);
}

function hasCrcPrefix(bytes: Uint8Array, p: number): boolean {
  return (
    bytes[p] === CRC_PREFIX[0] &&
    bytes[p + 1] === CRC_PREFIX[1] &&
    bytes[p + 2] === CRC_PREFIX[2] &&
    bytes[p + 3] === CRC_PREFIX[3] &&
    bytes[p + 4] === CRC_PREFIX[4] &&
    bytes[p + 5] === CRC_PREFIX[5]
  );
}

interface Symbols {
  exports: ExportedSymbol[];
  /** kmod_module_get_symbols failed with this errno (kmod 34's __ksymtab_strings check). */
  exportsFailed?: 'EINVAL';
  imports: ImportedSymbol[];
}

/**
 * One walk over .symtab serving both kmod_elf_get_symbols (exports) and
 * kmod_elf_get_dependency_symbols (imports), with each function's own failure rule. The sections
 * are looked up in kmod's order (.strtab, .symtab, then __ksymtab_strings only on the fallback
 * path; __versions by the dependency call), so that a lookup kmod never makes cannot abort.
 */
function readSymbols(elf: Elf, note: Divergence): Symbols {
  const strtab = section(elf, '.strtab', note);
  const symtab = strtab !== undefined ? section(elf, '.symtab', note) : undefined;
  const entSize = symEntrySize(elf);
  if (strtab === undefined || symtab === undefined || symtab.size % entSize !== 0) {
    // Exports fall back to __ksymtab_strings; dependency symbols fail as a whole (-EINVAL).
    const fallback = ksymtabStrings(elf, note);
    readVersions(elf, note); // looked up all the same (kmod_elf_get_dependency_symbols starts there)
    return fallback === undefined ? { exports: [], exportsFailed: 'EINVAL', imports: [] } : { exports: fallback, imports: [] };
  }
  const versions = readVersions(elf, note);
  const bytes = elf.bytes;
  const count = symtab.size / entSize;
  const sparc = elf.machine === EM_SPARC || elf.machine === EM_SPARCV9;
  const sym: ElfSymbol = { nameOffset: 0, value: 0, info: 0, shndx: 0 };
  // __crc_ symbols as (name start, value, shndx): resolved only once the walk proved kmod gets that far.
  const crcs: number[] = [];
  let imports: ImportedSymbol[] = [];
  let exportsUsable = true; // any name offset past .strtab sends kmod_elf_get_symbols to its fallback
  let importsUsable = true; // ... and fails kmod_elf_get_dependency_symbols if the symbol is undefined
  const visited = versions !== undefined ? new Uint8Array(versions.count) : undefined;

  for (let i = 1; i < count; i++) {
    readSymbol(elf, symtab, i, sym);
    const nameOk = sym.nameOffset < strtab.size;
    if (!nameOk) exportsUsable = false;
    const p = strtab.offset + sym.nameOffset;

    // sparc gcc marks global register variables as undefined symbols: kmod passes over them.
    const undef = sym.shndx === SHN_UNDEF && !(sparc && (sym.info & 0xf) === STT_REGISTER);
    if (undef && !nameOk) importsUsable = false;
    if (undef && importsUsable && nameOk && bytes[p] !== 0) {
      const name = text(elf, p, cStringEnd(elf, p));
      let crc = 0;
      if (versions !== undefined && visited !== undefined) {
        const vi = versions.firstIndex.get(name);
        if (vi !== undefined) {
          visited[vi] = 1;
          crc = versionCrc(elf, versions, vi);
        }
      }
      imports.push({ name, crc, weak: sym.info >> 4 === STB_WEAK });
    }
    // kmod looks at every symbol for __crc_, defined or not (an undefined one resolves to its value).
    if (exportsUsable && nameOk && hasCrcPrefix(bytes, p)) crcs.push(p + CRC_PREFIX.length, sym.value, sym.shndx);
  }

  if (!importsUsable || versions?.tooLong === true) imports = [];
  else if (versions !== undefined && visited !== undefined) {
    for (let i = 0; i < versions.count; i++) {
      if (visited[i] === 0) imports.push({ name: versions.names[i] as string, crc: versionCrc(elf, versions, i), weak: false });
    }
  }
  if (!exportsUsable || crcs.length === 0) {
    const fallback = ksymtabStrings(elf, note);
    return fallback === undefined ? { exports: [], exportsFailed: 'EINVAL', imports } : { exports: fallback, imports };
  }
  const exports: ExportedSymbol[] = [];
  for (let k = 0; k < crcs.length; k += 3) {
    const start = crcs[k]!;
    exports.push({ name: text(elf, start, cStringEnd(elf, start)), crc: resolveCrc(elf, crcs[k + 1]!, crcs[k + 2]!, note) });
  }
  return { exports, imports };
}

export interface ParseModuleOptions {
  /** Keep only these .modinfo keys (DATABASE_MODINFO_KEYS for the database); default: all. */
  modinfoKeys?: ReadonlySet<string>;
}

/** A reading in which every call failed: kmod could not open the file, or its ELF image. */
export function failedReading(errno: string, detail: string, extra: Pick<ModuleReading, 'libkmodErrors' | 'kmodAborts'> = {}): ModuleReading {
  return { modinfo: [], exports: [], imports: [], loadError: strerror(errno), loadDetail: detail, ...extra };
}

/** What kmod of generation `gen` reads from a decompressed image. */
function readImage(image: Uint8Array, file: string, gen: KmodGeneration, keys: ReadonlySet<string> | undefined, note: Divergence): ModuleReading {
  const elf = openElf(image, file, gen);
  if (isElfRefusal(elf)) {
    if (elf.abort !== undefined) note.diverges = true;
    return failedReading(elf.errno, elf.detail, elf.abort !== undefined ? { kmodAborts: elf.abort } : {});
  }
  if (elf.names.nameOffset >= elf.names.size) note.diverges = true;
  try {
    const { exports, exportsFailed, imports } = readSymbols(elf, note);
    const modinfo = readModinfo(elf, keys, note);
    const reading: ModuleReading = { modinfo, exports, imports };
    if (exportsFailed !== undefined) {
      reading.loadError = strerror(exportsFailed);
      reading.loadDetail = '__ksymtab_strings does not end with a NUL byte';
    }
    return reading;
  } catch (err) {
    if (!(err instanceof KmodAbort)) throw err;
    note.diverges = true;
    return failedReading('EINVAL', `libkmod's assertion \`${err.assertion}' fails on this file`, { kmodAborts: err.assertion });
  }
}

function sameReading(a: ModuleReading, b: ModuleReading): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Both generations' readings of one image: kmod 30's, and kmod 34's only where its rules could
 * matter (the first reading noted a branch where they differ) and it turned out different.
 */
function readBoth(image: Uint8Array, file: string, keys: ReadonlySet<string> | undefined): { base: ModuleReading; kmod34?: ModuleReading } {
  const note: Divergence = { diverges: false };
  const base = readImage(image, file, 30, keys, note);
  if (!note.diverges) return { base };
  const kmod34 = readImage(image, file, 34, keys, { diverges: false });
  return sameReading(base, kmod34) ? { base } : { base, kmod34 };
}

/** Parses a decompressed module image (the same image for every kmod). Pure and synchronous; never throws for the image's content. */
export function parseModule(elfBytes: Uint8Array, file: string, opts: ParseModuleOptions = {}): ModuleRecord {
  const { base, kmod34 } = readBoth(elfBytes, file, opts.modinfoKeys);
  return { name: modnameFromPath(file), ...base, ...(kmod34 !== undefined ? { kmod34 } : {}) };
}

/** The record of a file whose images each kmod loads (or fails to load) as `load` says. */
export function recordFromLoad(load: ImageLoad, file: string, opts: ParseModuleOptions = {}): ModuleRecord {
  const keys = opts.modinfoKeys;
  const read = (r: ImageLoad['kmod30']): ReturnType<typeof readBoth> => {
    if (!('image' in r)) return { base: failedReading(r.errno, r.detail, r.libkmod !== undefined ? { libkmodErrors: r.libkmod } : {}) };
    const both = readBoth(r.image, file, keys);
    // What the ELF reader found in a decompressed image says more with how the image came to be.
    const compressed = load.compression !== 'none';
    const explain = (x: ModuleReading): void => {
      if (x.loadDetail !== undefined && compressed) x.loadDetail = `${r.note ?? 'decompressed'}: ${x.loadDetail}`;
    };
    explain(both.base);
    if (both.kmod34 !== undefined) explain(both.kmod34);
    return both;
  };
  const for30 = read(load.kmod30);
  const record: ModuleRecord = { name: modnameFromPath(file), ...for30.base };
  // kmod 34 cannot size the stream at all: the flag says so for every kmod 34 (compute.ts).
  if (load.zstdUnsized) return { ...record, zstdUnsized: true };
  // The same image for both: one reading serves both generations.
  const for34 = load.kmod34 === load.kmod30 ? { base: for30.kmod34 ?? for30.base } : read(load.kmod34);
  const kmod34 = for34.kmod34 ?? for34.base;
  if (!sameReading(for30.base, kmod34)) record.kmod34 = kmod34;
  return record;
}

/** Loads (decompressing by content, like kmod) and parses one module file's bytes. Never throws for the bytes' content. */
export async function parseModuleFile(bytes: Uint8Array, file: string, opts: ParseModuleOptions = {}): Promise<ModuleRecord> {
  return recordFromLoad(await loadModuleImages(bytes, file), file, opts);
}

/**
 * Why kmod 28-33 cannot use this file at all, in one sentence for a message; undefined when it
 * can. For callers that need the module's facts (`inspect`, `check` of a candidate).
 */
export function unloadable(record: ModuleRecord): string | undefined {
  if (record.kmodAborts !== undefined) return `kmod's depmod aborts on this file (libkmod assertion \`${record.kmodAborts}'): ${record.loadDetail ?? ''}`;
  if (record.loadError === undefined) return undefined;
  return `kmod's depmod cannot load it ("${record.loadError}"): ${record.loadDetail ?? 'unknown reason'}`;
}
