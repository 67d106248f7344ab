// One module's ELF image → ModuleRecord: exactly the data kmod v30 hands depmod.
//
// Sources (libkmod/libkmod-elf.c unless noted):
//   .modinfo           kmod_elf_get_strings + kmod_module_get_info (libkmod-module.c): runs of
//                      non-NUL bytes, leading NUL padding skipped, split at the first '='.
//   exports            kmod_elf_get_symbols: every .symtab entry named __crc_NAME, in table order,
//                      CRC resolved by kmod_elf_resolve_crc; with no such entry (or an unusable
//                      .symtab/.strtab) the names in __ksymtab_strings, CRC 0.
//   imports            kmod_elf_get_dependency_symbols: every undefined .symtab entry (index >= 1,
//                      non-empty name, sparc STT_REGISTER skipped) with the CRC of the first
//                      __versions entry of that name (kmod_elf_crc_find), then the __versions
//                      entries no symbol matched (module_layout & co.), in section order.
//   __versions entry   64 bytes on both classes: CRC as a native word (4 or 8 bytes, ELF byte
//                      order), then the NUL-padded name.
// Names are kept exactly as kmod returns them: no ppc64 '.' or symbol-prefix stripping here;
// depmod's symbol table does that (tools/depmod.c: depmod_symbol_add / depmod_symbol_find).
// kmod_module_get_info appends signature pseudo-keys (sig_id, signer, ...) for signed modules;
// depmod only reads alias/softdep keys from that list, so the record keeps .modinfo alone.
import { FormatError } from '../errors.ts';
import {
  EM_SPARC,
  EM_SPARCV9,
  SHN_ABS,
  SHN_UNDEF,
  STB_WEAK,
  cStringEnd,
  findSection,
  hasSectionNamed,
  latin1,
  readElf,
  readSymbol,
  readU64,
  symEntrySize,
  type Elf,
  type ElfSection,
  type ElfSymbol,
} from '../elf/elf.ts';
import { decompressModule, detectCompression, modnameFromPath } from './decompress.ts';
import { zstdLoadableInOneCall } from './zstd-frames.ts';
import type { ExportedSymbol, ImportedSymbol, ModuleRecord } from './record.ts';

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
 * A section the parser reads. Absent → undefined (kmod: -ENOENT, the data is simply missing).
 * Present but lying outside the file → FormatError: kmod would silently pass over it, but a
 * module whose .symtab or .modinfo points past its end is broken, and we say so.
 */
function section(elf: Elf, name: string): ElfSection | undefined {
  const s = findSection(elf, name);
  if (s === undefined && hasSectionNamed(elf, name)) {
    throw new FormatError(elf.file, `ELF section ${name} lies outside the file`);
  }
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

function readModinfo(elf: Elf, keys: ReadonlySet<string> | undefined): Array<[string, string]> {
  const sec = section(elf, '.modinfo');
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

function ksymtabStrings(elf: Elf): ExportedSymbol[] {
  const sec = section(elf, '__ksymtab_strings');
  const out: ExportedSymbol[] = [];
  if (sec === undefined) return out;
  const bytes = elf.bytes;
  eachString(bytes, sec, (start, end) => out.push({ name: text(elf, start, end), crc: 0 }));
  return out;
}

/** kmod_elf_resolve_crc: an absolute value is the CRC; otherwise it is an offset into section shndx. */
function resolveCrc(elf: Elf, value: number, shndx: number): number {
  if (shndx === SHN_ABS || shndx === SHN_UNDEF) return value;
  const s = elf.sections[shndx];
  if (s === undefined || !s.valid) return UNRESOLVED_CRC;
  // kmod compares against size - 4 in uint64: for a section smaller than 4 bytes that wraps and
  // the read below is what fails.
  if (s.size >= 4 && value > s.size - 4) return UNRESOLVED_CRC;
  const at = s.offset + value;
  if (!Number.isSafeInteger(at) || at + 4 > elf.bytes.byteLength) return UNRESOLVED_CRC;
  return elf.view.getUint32(at, elf.littleEndian);
}

interface Versions {
  /** Byte offset of each entry's CRC. */
  section: ElfSection;
  count: number;
  crcSize: 4 | 8;
  names: string[];
  /** First entry index per name (kmod_elf_crc_find returns the first match). */
  firstIndex: Map<string, number>;
}

function readVersions(elf: Elf): Versions | undefined {
  const sec = section(elf, '__versions');
  // A size that is not a whole number of entries makes kmod ignore the section for dependencies.
  if (sec === undefined || sec.size === 0 || sec.size % VERSION_ENTRY_SIZE !== 0) return undefined;
  const crcSize = elf.is64 ? 8 : 4;
  const count = sec.size / VERSION_ENTRY_SIZE;
  const names: string[] = new Array(count);
  const firstIndex = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const start = sec.offset + i * VERSION_ENTRY_SIZE + crcSize;
    const name = text(elf, start, cStringEnd(elf, start, '__versions'));
    names[i] = name;
    if (!firstIndex.has(name)) firstIndex.set(name, i);
  }
  return { section: sec, count, crcSize, names, firstIndex };
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

/**
 * One walk over .symtab serving both kmod_elf_get_symbols (exports) and
 * kmod_elf_get_dependency_symbols (imports), with each function's own failure rule.
 */
function readSymbols(elf: Elf): { exports: ExportedSymbol[]; imports: ImportedSymbol[] } {
  const strtab = section(elf, '.strtab');
  const symtab = section(elf, '.symtab');
  const entSize = symEntrySize(elf);
  const versions = readVersions(elf);
  if (strtab === undefined || symtab === undefined || symtab.size % entSize !== 0) {
    // Exports fall back to __ksymtab_strings; dependency symbols fail as a whole (-EINVAL).
    return { exports: ksymtabStrings(elf), imports: [] };
  }
  const bytes = elf.bytes;
  const count = symtab.size / entSize;
  const sparc = elf.machine === EM_SPARC || elf.machine === EM_SPARCV9;
  const sym: ElfSymbol = { nameOffset: 0, value: 0, info: 0, shndx: 0 };
  const exports: ExportedSymbol[] = [];
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
      const name = text(elf, p, cStringEnd(elf, p, '.strtab'));
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
    if (exportsUsable && nameOk && hasCrcPrefix(bytes, p)) {
      const start = p + CRC_PREFIX.length;
      exports.push({ name: text(elf, start, cStringEnd(elf, start, '.strtab')), crc: resolveCrc(elf, sym.value, sym.shndx) });
    }
  }

  if (!importsUsable) imports = [];
  else if (versions !== undefined && visited !== undefined) {
    for (let i = 0; i < versions.count; i++) {
      if (visited[i] === 0) imports.push({ name: versions.names[i] as string, crc: versionCrc(elf, versions, i), weak: false });
    }
  }
  return { exports: exportsUsable && exports.length > 0 ? exports : ksymtabStrings(elf), imports };
}

export interface ParseModuleOptions {
  /** Keep only these .modinfo keys (DATABASE_MODINFO_KEYS for the database); default: all. */
  modinfoKeys?: ReadonlySet<string>;
}

/** Parses a decompressed module image. Pure and synchronous; `file` names the module and its errors. */
export function parseModule(elfBytes: Uint8Array, file: string, opts: ParseModuleOptions = {}): ModuleRecord {
  const elf = readElf(elfBytes, file);
  const modinfo = readModinfo(elf, opts.modinfoKeys);
  const { exports, imports } = readSymbols(elf);
  return { name: modnameFromPath(file), modinfo, exports, imports };
}

/** Decompresses (by content, like kmod) and parses one module file's bytes. */
export async function parseModuleFile(bytes: Uint8Array, file: string, opts: ParseModuleOptions = {}): Promise<ModuleRecord> {
  return withLoadability(bytes, parseModule(await decompressModule(bytes, file), file, opts));
}

/** Marks a record whose file kmod 34+ cannot load (see zstd-frames.ts); `raw` is the file as stored. */
export function withLoadability(raw: Uint8Array, record: ModuleRecord): ModuleRecord {
  if (detectCompression(raw) === 'zstd' && !zstdLoadableInOneCall(raw)) record.zstdUnsized = true;
  return record;
}
