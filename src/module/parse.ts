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
// The readers return byte ranges of the image (RawReading): the module set stores those bytes as
// they are (a cold build makes no string per symbol); a ModuleRecord decodes them (toReading).
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
import type { ModuleReading, ModuleRecord, RawReading } from './record.ts';

/** kmod_elf_resolve_crc's (uint64_t)-1 for a __crc_ symbol pointing outside its section (2^64 as a double). */
export const UNRESOLVED_CRC = 0xffff_ffff_ffff_ffff;

const VERSION_ENTRY_SIZE = 64;
const STT_REGISTER = 13;
// "__crc_" as bytes, compared in place so non-matching symbols cost no string.
const CRC_PREFIX = [0x5f, 0x5f, 0x63, 0x72, 0x63, 0x5f] as const;
const NO_BYTES = new Uint8Array(0);

const utf8 = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

/**
 * Text of bytes start..end, for modinfo values and symbol names alike. Module strings are ASCII in
 * practice and decode byte by byte; anything else goes through UTF-8 so author names read
 * correctly and a non-ASCII symbol re-encodes to its own bytes in modules.symbols (decoded
 * byte-wise it came out as two UTF-8 characters per byte). Symvers text is decoded the same way.
 */
function text(bytes: Uint8Array, buf: Buffer, start: number, end: number): string {
  for (let i = start; i < end; i++) {
    if ((bytes[i] as number) >= 0x80) return utf8.decode(bytes.subarray(start, end));
  }
  return latin1(buf, start, end);
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

/** The keys as bytes, to be compared with .modinfo keys in place (kept per key set). */
const keyBytesOf = new WeakMap<ReadonlySet<string>, Uint8Array[]>();

function keyBytes(keys: ReadonlySet<string>): Uint8Array[] {
  let k = keyBytesOf.get(keys);
  if (k === undefined) keyBytesOf.set(keys, (k = [...keys].map((key) => utf8Encoder.encode(key))));
  return k;
}

function rangeIsOneOf(bytes: Uint8Array, start: number, end: number, wanted: readonly Uint8Array[]): boolean {
  const n = end - start;
  next: for (const w of wanted) {
    if (w.length !== n) continue;
    for (let i = 0; i < n; i++) if (bytes[start + i] !== w[i]) continue next;
    return true;
  }
  return false;
}

/** .modinfo pairs as ranges (RawReading.modinfo), only those under `keys` when given. */
function readModinfo(elf: Elf, keys: ReadonlySet<string> | undefined, note: Divergence): number[] {
  const sec = section(elf, '.modinfo', note);
  const out: number[] = [];
  if (sec === undefined) return out;
  const bytes = elf.bytes;
  const wanted = keys === undefined ? undefined : keyBytes(keys);
  eachString(bytes, sec, (start, end) => {
    let eq = start;
    while (eq < end && bytes[eq] !== 0x3d) eq++;
    if (wanted !== undefined && !rangeIsOneOf(bytes, start, eq, wanted)) return;
    // kmod_module_get_info: no '=' means the whole string is the key and the value is empty.
    if (eq === end) out.push(start, eq, end, end);
    else out.push(start, eq, eq + 1, end);
  });
  return out;
}

/**
 * kmod_elf_get_symbols_symtab, the fallback: the names in __ksymtab_strings (ranges). Undefined
 * when the call fails: kmod 34 wants the strings NUL-terminated (e5ef157).
 */
function ksymtabStrings(elf: Elf, note: Divergence): number[] | undefined {
  const sec = section(elf, '__ksymtab_strings', note);
  const out: number[] = [];
  if (sec === undefined) return out;
  const bytes = elf.bytes;
  let p = sec.offset;
  const end = sec.offset + sec.size;
  while (p < end - 1 && bytes[p] === 0) p++;
  if (end - p > 1 && bytes[end - 1] !== 0) {
    if (elf.gen === 34) return undefined;
    note.diverges = true;
  }
  eachString(bytes, sec, (start, stop) => out.push(start, stop));
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

/** FNV-1a of a byte range: the hash of the __versions name table. */
function fnv1a(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h >>> 0;
}

interface Versions {
  section: ElfSection;
  count: number;
  crcSize: 4 | 8;
  /** Each entry's name as a range of the image. */
  start: Int32Array;
  end: Int32Array;
  /** Open addressing over the matchable entries by name (entry + 1, 0 empty): the first entry of each name. */
  table: Int32Array;
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
  const start = new Int32Array(count);
  const end = new Int32Array(count);
  let size = 16;
  while (size < count * 2) size *= 2;
  const table = new Int32Array(size);
  const bytes = elf.bytes;
  let tooLong = false;
  for (let i = 0; i < count; i++) {
    const s = sec.offset + i * VERSION_ENTRY_SIZE + crcSize;
    const e = cStringEnd(elf, s);
    start[i] = s;
    end[i] = e;
    // kmod 30 reads the name on to the next NUL wherever it is; kmod 34 wants it inside its slot (0930e7b).
    if (e - s >= nameSlot) {
      if (elf.gen === 34) {
        tooLong = true;
        end[i] = s;
        continue;
      }
      note.diverges = true;
    }
    // kmod_elf_crc_find returns the first entry of a name: later ones are not placed.
    for (let t = fnv1a(bytes, s, e) & (size - 1); ; t = (t + 1) & (size - 1)) {
      const at = table[t]!;
      if (at === 0) {
        table[t] = i + 1;
        break;
      }
      if (sameBytes(bytes, start[at - 1]!, end[at - 1]!, bytes, s, e)) break;
    }
  }
  return { section: sec, count, crcSize, start, end, table, tooLong };
}

/** The first __versions entry named like bytes start..end (kmod_elf_crc_find), or -1. */
function versionIndex(v: Versions, bytes: Uint8Array, start: number, end: number): number {
  const mask = v.table.length - 1;
  for (let t = fnv1a(bytes, start, end) & mask; ; t = (t + 1) & mask) {
    const at = v.table[t]!;
    if (at === 0) return -1;
    if (sameBytes(bytes, v.start[at - 1]!, v.end[at - 1]!, bytes, start, end)) return at - 1;
  }
}

function sameBytes(a: Uint8Array, as: number, ae: number, b: Uint8Array, bs: number, be: number): boolean {
  const n = ae - as;
  if (n !== be - bs) return false;
  for (let i = 0; i < n; i++) if (a[as + i] !== b[bs + i]) return false;
  return true;
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
  exports: number[];
  exportCrcs: number[];
  /** kmod_module_get_symbols failed with this errno (kmod 34's __ksymtab_strings check). */
  exportsFailed?: 'EINVAL';
  imports: number[];
  importCrcs: number[];
}

/** Exports from __ksymtab_strings: names without CRCs, or the call's failure. */
function fallbackExports(elf: Elf, note: Divergence, imports: number[], importCrcs: number[]): Symbols {
  const names = ksymtabStrings(elf, note);
  if (names === undefined) return { exports: [], exportCrcs: [], exportsFailed: 'EINVAL', imports, importCrcs };
  return { exports: names, exportCrcs: new Array<number>(names.length / 2).fill(0), imports, importCrcs };
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
    const fallback = fallbackExports(elf, note, [], []);
    readVersions(elf, note); // looked up all the same (kmod_elf_get_dependency_symbols starts there)
    return fallback;
  }
  const versions = readVersions(elf, note);
  const bytes = elf.bytes;
  const count = symtab.size / entSize;
  const sparc = elf.machine === EM_SPARC || elf.machine === EM_SPARCV9;
  const sym: ElfSymbol = { nameOffset: 0, value: 0, info: 0, shndx: 0 };
  // __crc_ symbols as (name start, value, shndx): resolved only once the walk proved kmod gets that far.
  const crcs: number[] = [];
  let imports: number[] = [];
  let importCrcs: number[] = [];
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
      const end = cStringEnd(elf, p);
      let crc = 0;
      if (versions !== undefined && visited !== undefined) {
        const vi = versionIndex(versions, bytes, p, end);
        if (vi >= 0) {
          visited[vi] = 1;
          crc = versionCrc(elf, versions, vi);
        }
      }
      imports.push(p, end, sym.info >> 4 === STB_WEAK ? 1 : 0);
      importCrcs.push(crc);
    }
    // kmod looks at every symbol for __crc_, defined or not (an undefined one resolves to its value).
    if (exportsUsable && nameOk && hasCrcPrefix(bytes, p)) crcs.push(p + CRC_PREFIX.length, sym.value, sym.shndx);
  }

  if (!importsUsable || versions?.tooLong === true) {
    imports = [];
    importCrcs = [];
  } else if (versions !== undefined && visited !== undefined) {
    for (let i = 0; i < versions.count; i++) {
      if (visited[i] === 0) {
        imports.push(versions.start[i]!, versions.end[i]!, 0);
        importCrcs.push(versionCrc(elf, versions, i));
      }
    }
  }
  if (!exportsUsable || crcs.length === 0) return fallbackExports(elf, note, imports, importCrcs);
  const exports: number[] = [];
  const exportCrcs: number[] = [];
  for (let k = 0; k < crcs.length; k += 3) {
    const start = crcs[k]!;
    exports.push(start, cStringEnd(elf, start));
    exportCrcs.push(resolveCrc(elf, crcs[k + 1]!, crcs[k + 2]!, note));
  }
  return { exports, exportCrcs, imports, importCrcs };
}

export interface ParseModuleOptions {
  /** Keep only these .modinfo keys (DATABASE_MODINFO_KEYS for the database); default: all. */
  modinfoKeys?: ReadonlySet<string>;
}

/** A reading in which every call failed: kmod could not open the file, or its ELF image. */
export function failedReading(errno: string, detail: string, extra: Pick<ModuleReading, 'libkmodErrors' | 'kmodAborts'> = {}): ModuleReading {
  return { modinfo: [], exports: [], imports: [], loadError: strerror(errno), loadDetail: detail, ...extra };
}

/** failedReading as ranges (of nothing). */
export function failedRawReading(errno: string, detail: string, extra: Pick<RawReading, 'libkmodErrors' | 'kmodAborts'> = {}): RawReading {
  return { bytes: NO_BYTES, modinfo: [], exports: [], exportCrcs: [], imports: [], importCrcs: [], loadError: strerror(errno), loadDetail: detail, ...extra };
}

/** What kmod of generation `gen` reads from a decompressed image. */
function readImage(image: Uint8Array, file: string, gen: KmodGeneration, keys: ReadonlySet<string> | undefined, note: Divergence): RawReading {
  const elf = openElf(image, file, gen);
  if (isElfRefusal(elf)) {
    if (elf.abort !== undefined) note.diverges = true;
    return failedRawReading(elf.errno, elf.detail, elf.abort !== undefined ? { kmodAborts: elf.abort } : {});
  }
  if (elf.names.nameOffset >= elf.names.size) note.diverges = true;
  try {
    const { exports, exportCrcs, exportsFailed, imports, importCrcs } = readSymbols(elf, note);
    const modinfo = readModinfo(elf, keys, note);
    const reading: RawReading = { bytes: image, modinfo, exports, exportCrcs, imports, importCrcs };
    if (exportsFailed !== undefined) {
      reading.loadError = strerror(exportsFailed);
      reading.loadDetail = '__ksymtab_strings does not end with a NUL byte';
    }
    return reading;
  } catch (err) {
    if (!(err instanceof KmodAbort)) throw err;
    note.diverges = true;
    return failedRawReading('EINVAL', `libkmod's assertion \`${err.assertion}' fails on this file`, { kmodAborts: err.assertion });
  }
}

/** Ranges `stride` numbers apart (2 or 4: ranges only; 3: a range and a flag) with the same bytes. */
function sameRanges(a: Uint8Array, ar: readonly number[], b: Uint8Array, br: readonly number[], stride: 2 | 3 | 4): boolean {
  if (ar.length !== br.length) return false;
  const ranges = stride === 4 ? 2 : 1;
  for (let i = 0; i < ar.length; i += stride) {
    for (let j = i; j < i + 2 * ranges; j += 2) if (!sameBytes(a, ar[j]!, ar[j + 1]!, b, br[j]!, br[j + 1]!)) return false;
    if (stride === 3 && ar[i + 2] !== br[i + 2]) return false;
  }
  return true;
}

function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether two readings say the same (what they read, compared as bytes; how they failed). */
function sameReading(a: RawReading, b: RawReading): boolean {
  if (a === b) return true;
  if (a.loadError !== b.loadError || a.loadDetail !== b.loadDetail || a.kmodAborts !== b.kmodAborts) return false;
  if (JSON.stringify(a.libkmodErrors) !== JSON.stringify(b.libkmodErrors)) return false;
  return (
    sameRanges(a.bytes, a.modinfo, b.bytes, b.modinfo, 4) &&
    sameRanges(a.bytes, a.exports, b.bytes, b.exports, 2) &&
    sameNumbers(a.exportCrcs, b.exportCrcs) &&
    sameRanges(a.bytes, a.imports, b.bytes, b.imports, 3) &&
    sameNumbers(a.importCrcs, b.importCrcs)
  );
}

/**
 * Both generations' readings of one image: kmod 30's, and kmod 34's only where its rules could
 * matter (the first reading noted a branch where they differ) and it turned out different.
 */
function readBoth(image: Uint8Array, file: string, keys: ReadonlySet<string> | undefined): { base: RawReading; kmod34?: RawReading } {
  const note: Divergence = { diverges: false };
  const base = readImage(image, file, 30, keys, note);
  if (!note.diverges) return { base };
  const kmod34 = readImage(image, file, 34, keys, { diverges: false });
  return sameReading(base, kmod34) ? { base } : { base, kmod34 };
}

/** A raw reading's strings, decoded as the parser decodes them (text). */
export function toReading(r: RawReading): ModuleReading {
  const bytes = r.bytes;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const t = (start: number, end: number): string => text(bytes, buf, start, end);
  const modinfo: Array<[string, string]> = [];
  for (let i = 0; i < r.modinfo.length; i += 4) modinfo.push([t(r.modinfo[i]!, r.modinfo[i + 1]!), t(r.modinfo[i + 2]!, r.modinfo[i + 3]!)]);
  const exports = [];
  for (let i = 0, k = 0; i < r.exports.length; i += 2, k++) exports.push({ name: t(r.exports[i]!, r.exports[i + 1]!), crc: r.exportCrcs[k]! });
  const imports = [];
  for (let i = 0, k = 0; i < r.imports.length; i += 3, k++) imports.push({ name: t(r.imports[i]!, r.imports[i + 1]!), crc: r.importCrcs[k]!, weak: r.imports[i + 2] === 1 });
  const out: ModuleReading = { modinfo, exports, imports };
  if (r.loadError !== undefined) out.loadError = r.loadError;
  if (r.loadDetail !== undefined) out.loadDetail = r.loadDetail;
  if (r.libkmodErrors !== undefined) out.libkmodErrors = r.libkmodErrors;
  if (r.kmodAborts !== undefined) out.kmodAborts = r.kmodAborts;
  return out;
}

/** Parses a decompressed module image (the same image for every kmod). Pure and synchronous; never throws for the image's content. */
export function parseModule(elfBytes: Uint8Array, file: string, opts: ParseModuleOptions = {}): ModuleRecord {
  const { base, kmod34 } = readBoth(elfBytes, file, opts.modinfoKeys);
  return { name: modnameFromPath(file), ...toReading(base), ...(kmod34 !== undefined ? { kmod34: toReading(kmod34) } : {}) };
}

/** What kmod 28-33 (base) and kmod 34 read from one file, as ranges; kmod34 only where it differs. */
export interface LoadReadings {
  base: RawReading;
  kmod34?: RawReading;
  /** A .ko.zst kmod 34 cannot size (ModuleRecord.zstdUnsized). */
  zstdUnsized?: true;
}

/** The readings of a file whose images each kmod loads (or fails to load) as `load` says. */
export function readingsFromLoad(load: ImageLoad, file: string, keys: ReadonlySet<string> | undefined): LoadReadings {
  const read = (r: ImageLoad['kmod30']): ReturnType<typeof readBoth> => {
    if (!('image' in r)) return { base: failedRawReading(r.errno, r.detail, r.libkmod !== undefined ? { libkmodErrors: r.libkmod } : {}) };
    const both = readBoth(r.image, file, keys);
    // What the ELF reader found in a decompressed image says more with how the image came to be.
    const compressed = load.compression !== 'none';
    const explain = (x: RawReading): void => {
      if (x.loadDetail !== undefined && compressed) x.loadDetail = `${r.note ?? 'decompressed'}: ${x.loadDetail}`;
    };
    explain(both.base);
    if (both.kmod34 !== undefined) explain(both.kmod34);
    return both;
  };
  const for30 = read(load.kmod30);
  // kmod 34 cannot size the stream at all: the flag says so for every kmod 34 (compute.ts).
  if (load.zstdUnsized) return { base: for30.base, zstdUnsized: true };
  // The same image for both: one reading serves both generations.
  const for34 = load.kmod34 === load.kmod30 ? { base: for30.kmod34 ?? for30.base } : read(load.kmod34);
  const kmod34 = for34.kmod34 ?? for34.base;
  return sameReading(for30.base, kmod34) ? { base: for30.base } : { base: for30.base, kmod34 };
}

/**
 * The reading kmod `major` takes from a file (the kmod 34 one in place of the base where there is
 * one), and whether it depends on the kmod (src/module/record.ts readingFor, for records).
 */
export function readingForKmod(r: LoadReadings, major: number): { reading: RawReading; byKmod: boolean } {
  if (r.kmod34 === undefined) return { reading: r.base, byKmod: false };
  return { reading: major < 34 ? r.base : r.kmod34, byKmod: true };
}

/** The record of a file whose images each kmod loads (or fails to load) as `load` says. */
export function recordFromLoad(load: ImageLoad, file: string, opts: ParseModuleOptions = {}): ModuleRecord {
  return recordFromReadings(readingsFromLoad(load, file, opts.modinfoKeys), file);
}

/** The record of `file` read as `r` says (its strings decoded). */
export function recordFromReadings(r: LoadReadings, file: string): ModuleRecord {
  const record: ModuleRecord = { name: modnameFromPath(file), ...toReading(r.base) };
  if (r.zstdUnsized) return { ...record, zstdUnsized: true };
  if (r.kmod34 !== undefined) record.kmod34 = toReading(r.kmod34);
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
