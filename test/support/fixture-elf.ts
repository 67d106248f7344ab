// Synthetic kernel modules: ELF relocatable objects (ET_REL) holding exactly what kmod v30's depmod
// reads from a .ko, for ELF32/ELF64 and little/big endian. Test support only: a writer, never a reader.
//
// What kmod reads (libkmod/libkmod-elf.c at v30) and so what we write:
//   ELF header       e_ident (class, data), e_machine (only SPARC changes behaviour: STT_REGISTER),
//                    e_shoff, e_shentsize (must equal sizeof(ElfN_Shdr)), e_shnum, e_shstrndx
//                    (kmod_elf_new; the section name table must end with a NUL byte).
//   .modinfo         NUL-separated "key=value" strings (kmod_elf_get_strings via kmod_module_get_info).
//   .symtab/.strtab  kmod_elf_get_symbols: exports are the `__crc_NAME` symbols, CRC from
//                    kmod_elf_resolve_crc (st_value when st_shndx is SHN_ABS/SHN_UNDEF, else the
//                    32-bit word at st_value inside section st_shndx); with no `__crc_` symbol at all
//                    it falls back to the strings of __ksymtab_strings with CRC 0.
//                    kmod_elf_get_dependency_symbols: imports are the st_shndx == SHN_UNDEF symbols
//                    with a non-empty name, STB_WEAK => weak.
//   __versions       kmod_elf_get_modversions / kmod_elf_crc_find: 64-byte entries, a CRC word of the
//                    ELF's word size (4 or 8 bytes, ELF byte order) then a NUL-padded name. Entries that
//                    match no undefined symbol (module_layout) are appended to the imports.
// Also written, as Linux 6.1 does, though kmod does not read them: __ksymtab[_gpl] (12-byte prel32
// entries, left zero: we write no relocations), __kcrctab[_gpl], .text holding the exported
// functions. .gnu.linkonce.this_module is not written: nothing in depmod looks at it.
//
// crcStyle (only matters for exports that carry a crc):
//   'kcrctab'      Linux 5.19..6.x (Debian 12): LOCAL `__crc_NAME` NOTYPE symbols whose st_value is
//                  the byte offset of the CRC word in __kcrctab (or __kcrctab_gpl).
//   'crc-absolute' Linux before CONFIG_MODULE_REL_CRCS: GLOBAL `__crc_NAME` symbols in SHN_ABS whose
//                  st_value is the CRC itself; no __kcrctab section.
//   'crc-section'  CRC words in a section that is not __kcrctab (`.rodata..crc`, after 8 bytes of
//                  padding), reached only through st_shndx + st_value: proves a reader resolves the
//                  section like kmod_elf_resolve_crc does instead of assuming __kcrctab.
// An export without a crc gets no `__crc_` symbol. kmod then lists it only when the module has no
// `__crc_` symbol at all (the __ksymtab_strings fallback): a module mixing both loses its crc-less
// exports in kmod's eyes, exactly as kmod behaves on such a file. kmodExports() states that rule.

export interface FixtureExport {
  name: string;
  /** uint32 CRC; absent: an unversioned export (no `__crc_` symbol). */
  crc?: number;
  /** EXPORT_SYMBOL_GPL: listed in __ksymtab_gpl/__kcrctab_gpl instead (kmod does not care). */
  gpl?: boolean;
}

export interface FixtureImport {
  name: string;
  /** uint32 CRC written to __versions; absent: no __versions entry (kmod reports crc 0). */
  crc?: number;
  /** STB_WEAK undefined symbol: depmod does not warn when it is unresolved. */
  weak?: boolean;
  /** Only a __versions entry, no undefined symbol (like module_layout). Requires crc. */
  versionOnly?: boolean;
}

export interface FixtureModule {
  /** Written in order into .modinfo (alias, softdep, devname, depends, vermagic ...). */
  modinfo?: Array<[string, string]>;
  exports?: FixtureExport[];
  /** Undefined symbols, in symbol-table order; crc → __versions entry (in the same order). */
  imports?: FixtureImport[];
  /** How export CRCs are recorded; default 'kcrctab' (what Debian 12's 6.1 modules use). */
  crcStyle?: 'kcrctab' | 'crc-absolute' | 'crc-section';
}

export interface ElfOptions {
  bits?: 32 | 64;
  endian?: 'le' | 'be';
  /** e_machine; default x86-64 (62), i386 (3), ppc (20) or s390 (22) by class and byte order. */
  machine?: number;
}

const SHT_PROGBITS = 1;
const SHT_SYMTAB = 2;
const SHT_STRTAB = 3;
const SHF_ALLOC = 2;
const SHF_EXECINSTR = 4;
const SHF_MERGE = 0x10;
const SHF_STRINGS = 0x20;
const SHN_UNDEF = 0;
const SHN_ABS = 0xfff1;
const STB_LOCAL = 0;
const STB_GLOBAL = 1;
const STB_WEAK = 2;
const STT_NOTYPE = 0;
const STT_FUNC = 2;
const MODVERSION_ENTRY = 64;
const KSYMTAB_ENTRY = 12;

const enc = new TextEncoder();

interface Section {
  name: string;
  type: number;
  flags: number;
  align: number;
  entsize: number;
  link?: string;
  info?: number;
  data: Uint8Array;
}

interface Sym {
  name: string;
  value: number | bigint;
  size: number;
  bind: number;
  type: number;
  /** Section name, or a special index (SHN_UNDEF, SHN_ABS). */
  shndx: string | number;
}

function defaultMachine(bits: 32 | 64, endian: 'le' | 'be'): number {
  if (endian === 'le') return bits === 64 ? 62 : 3;
  return bits === 64 ? 22 : 20;
}

function checkCrc(what: string, crc: number): void {
  if (!Number.isInteger(crc) || crc < 0 || crc > 0xffffffff) throw new RangeError(`${what}: CRC ${crc} is not a uint32`);
}

function checkName(what: string, s: string): void {
  if (s.length === 0 || s.includes('\0')) throw new RangeError(`${what}: empty name or NUL inside: ${JSON.stringify(s)}`);
}

/** NUL-terminated strings table builder; offset 0 is the empty string, as ELF requires. */
class StrTab {
  private parts: Uint8Array[] = [new Uint8Array(1)];
  private size = 1;
  private seen = new Map<string, number>();
  add(s: string): number {
    if (s === '') return 0;
    const had = this.seen.get(s);
    if (had !== undefined) return had;
    const b = enc.encode(s);
    const off = this.size;
    this.parts.push(b, new Uint8Array(1));
    this.size += b.length + 1;
    this.seen.set(s, off);
    return off;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

function align(n: number, a: number): number {
  return a <= 1 ? n : Math.ceil(n / a) * a;
}

/**
 * The exports kmod v30 reports for this module (kmod_elf_get_symbols), from the rules in the header:
 * with at least one crc'd export, only crc'd exports (their `__crc_` symbols follow declaration order);
 * otherwise every export, crc 0, in __ksymtab_strings order (plain exports, then GPL ones).
 */
export function kmodExports(m: FixtureModule): Array<{ name: string; crc: number }> {
  const ex = m.exports ?? [];
  const withCrc = ex.filter((e) => e.crc !== undefined);
  if (withCrc.length > 0) return withCrc.map((e) => ({ name: e.name, crc: e.crc ?? 0 }));
  return ksymtabOrder(ex).map((e) => ({ name: e.name, crc: 0 }));
}

/** The imports kmod v30 reports (kmod_elf_get_dependency_symbols): undefined symbols, then unmatched __versions entries. */
export function kmodImports(m: FixtureModule): Array<{ name: string; crc: number; weak: boolean }> {
  const im = m.imports ?? [];
  const undef = im.filter((i) => i.versionOnly !== true);
  // kmod_elf_crc_find takes the first __versions entry with the name.
  const firstCrc = new Map<string, number>();
  for (const i of im) if (i.crc !== undefined && !firstCrc.has(i.name)) firstCrc.set(i.name, i.crc);
  const undefNames = new Set(undef.map((i) => i.name));
  const out = undef.map((i) => ({ name: i.name, crc: firstCrc.get(i.name) ?? 0, weak: i.weak === true }));
  for (const i of im) {
    if (i.crc !== undefined && !undefNames.has(i.name)) out.push({ name: i.name, crc: i.crc, weak: false });
  }
  return out;
}

// The kernel groups exports by section; __ksymtab_strings is filled section by section.
function ksymtabOrder<T extends FixtureExport>(ex: T[]): T[] {
  return [...ex.filter((e) => e.gpl !== true), ...ex.filter((e) => e.gpl === true)];
}

/** One ET_REL module image. Pure: returns the bytes. */
export function buildModuleElf(m: FixtureModule, opts: ElfOptions = {}): Uint8Array {
  const bits = opts.bits ?? 64;
  const endian = opts.endian ?? 'le';
  const machine = opts.machine ?? defaultMachine(bits, endian);
  const le = endian === 'le';
  const word = bits === 64 ? 8 : 4;
  const style = m.crcStyle ?? 'kcrctab';
  const exports = m.exports ?? [];
  const imports = m.imports ?? [];

  for (const e of exports) {
    checkName('export', e.name);
    if (e.crc !== undefined) checkCrc(`export ${e.name}`, e.crc);
  }
  for (const i of imports) {
    checkName('import', i.name);
    if (i.crc !== undefined) checkCrc(`import ${i.name}`, i.crc);
    if (i.versionOnly === true && i.crc === undefined) throw new RangeError(`import ${i.name}: versionOnly needs a crc`);
    if (i.crc !== undefined && enc.encode(i.name).length > MODVERSION_ENTRY - word - 1) {
      throw new RangeError(`import ${i.name}: too long for a ${MODVERSION_ENTRY - word}-byte __versions name`);
    }
  }

  const sections: Section[] = [];
  const syms: Sym[] = [];

  // .text: one 16-byte slot per exported function so each export has a defined GLOBAL symbol.
  sections.push({ name: '.text', type: SHT_PROGBITS, flags: SHF_ALLOC | SHF_EXECINSTR, align: 16, entsize: 0, data: new Uint8Array(Math.max(16, 16 * exports.length)) });

  // __ksymtab[_gpl], __kcrctab[_gpl], __ksymtab_strings (name, then an empty namespace string, as 6.1 does).
  const groups: Array<{ suffix: string; list: FixtureExport[] }> = [
    { suffix: '', list: exports.filter((e) => e.gpl !== true) },
    { suffix: '_gpl', list: exports.filter((e) => e.gpl === true) },
  ];
  const ksymStrings: Uint8Array[] = [];
  let ksymStringsLen = 0;
  const kstrtabOff = new Map<string, number>();
  for (const g of groups) {
    for (const e of g.list) {
      const b = enc.encode(e.name);
      kstrtabOff.set(e.name, ksymStringsLen);
      ksymStrings.push(b, new Uint8Array(2));
      ksymStringsLen += b.length + 2;
    }
  }
  const crcSecName = style === 'crc-section' ? '.rodata..crc' : undefined;
  const crcSection = new Map<FixtureExport, { sec: string; off: number }>();
  const sectionCrcWords: number[] = [];
  for (const g of groups) {
    if (g.list.length === 0) continue;
    sections.push({ name: `__ksymtab${g.suffix}`, type: SHT_PROGBITS, flags: SHF_ALLOC, align: 4, entsize: 0, data: new Uint8Array(KSYMTAB_ENTRY * g.list.length) });
    const versioned = g.list.filter((e) => e.crc !== undefined);
    if (style === 'kcrctab' && versioned.length > 0) {
      const data = new Uint8Array(4 * versioned.length);
      const dv = new DataView(data.buffer);
      versioned.forEach((e, i) => {
        dv.setUint32(4 * i, e.crc ?? 0, le);
        crcSection.set(e, { sec: `__kcrctab${g.suffix}`, off: 4 * i });
      });
      sections.push({ name: `__kcrctab${g.suffix}`, type: SHT_PROGBITS, flags: SHF_ALLOC, align: 4, entsize: 0, data });
    } else if (crcSecName !== undefined) {
      for (const e of versioned) {
        crcSection.set(e, { sec: crcSecName, off: 8 + 4 * sectionCrcWords.length });
        sectionCrcWords.push(e.crc ?? 0);
      }
    }
  }
  if (crcSecName !== undefined && sectionCrcWords.length > 0) {
    const data = new Uint8Array(8 + 4 * sectionCrcWords.length);
    const dv = new DataView(data.buffer);
    sectionCrcWords.forEach((c, i) => dv.setUint32(8 + 4 * i, c, le));
    sections.push({ name: crcSecName, type: SHT_PROGBITS, flags: SHF_ALLOC, align: 4, entsize: 0, data });
  }
  if (ksymStringsLen > 0) {
    const data = new Uint8Array(ksymStringsLen);
    let o = 0;
    for (const p of ksymStrings) {
      data.set(p, o);
      o += p.length;
    }
    sections.push({ name: '__ksymtab_strings', type: SHT_PROGBITS, flags: SHF_ALLOC | SHF_MERGE | SHF_STRINGS, align: 1, entsize: 1, data });
  }

  // .modinfo
  {
    const parts: Uint8Array[] = [];
    let len = 0;
    for (const [k, v] of m.modinfo ?? []) {
      if (k.length === 0 || k.includes('=') || k.includes('\0') || v.includes('\0')) {
        throw new RangeError(`modinfo ${JSON.stringify(k)}=${JSON.stringify(v)}: key must be non-empty without '=' or NUL, value without NUL`);
      }
      const b = enc.encode(`${k}=${v}`);
      parts.push(b);
      len += b.length + 1;
    }
    const data = new Uint8Array(len);
    let o = 0;
    for (const p of parts) {
      data.set(p, o);
      o += p.length + 1;
    }
    sections.push({ name: '.modinfo', type: SHT_PROGBITS, flags: SHF_ALLOC, align: 1, entsize: 0, data });
  }

  // __versions: entries in import order.
  const versioned = imports.filter((i) => i.crc !== undefined);
  if (versioned.length > 0) {
    const data = new Uint8Array(MODVERSION_ENTRY * versioned.length);
    const dv = new DataView(data.buffer);
    versioned.forEach((imp, i) => {
      const base = MODVERSION_ENTRY * i;
      const crc = imp.crc ?? 0;
      if (word === 8) dv.setBigUint64(base, BigInt(crc), le);
      else dv.setUint32(base, crc, le);
      data.set(enc.encode(imp.name), base + word);
    });
    sections.push({ name: '__versions', type: SHT_PROGBITS, flags: SHF_ALLOC, align: 32, entsize: 0, data });
  }

  // Symbols: LOCAL ones first (ELF requires it; sh_info = first non-local index).
  for (const e of ksymtabOrder(exports)) {
    syms.push({ name: `__kstrtab_${e.name}`, value: kstrtabOff.get(e.name) ?? 0, size: 0, bind: STB_LOCAL, type: STT_NOTYPE, shndx: '__ksymtab_strings' });
  }
  groups.forEach((g) => {
    g.list.forEach((e, i) => {
      syms.push({ name: `__ksymtab_${e.name}`, value: KSYMTAB_ENTRY * i, size: 0, bind: STB_LOCAL, type: STT_NOTYPE, shndx: `__ksymtab${g.suffix}` });
    });
  });
  // __crc_ symbols in export declaration order: that order is what kmod_elf_get_symbols returns.
  for (const e of exports) {
    if (e.crc === undefined) continue;
    const at = crcSection.get(e);
    if (at !== undefined) {
      syms.push({ name: `__crc_${e.name}`, value: at.off, size: 0, bind: style === 'kcrctab' ? STB_LOCAL : STB_GLOBAL, type: STT_NOTYPE, shndx: at.sec });
    }
  }
  syms.sort((a, b) => (a.bind === STB_LOCAL ? 0 : 1) - (b.bind === STB_LOCAL ? 0 : 1));
  const firstGlobal = 1 + syms.filter((s) => s.bind === STB_LOCAL).length;
  exports.forEach((e, i) => {
    syms.push({ name: e.name, value: 16 * i, size: 16, bind: STB_GLOBAL, type: STT_FUNC, shndx: '.text' });
    if (style === 'crc-absolute' && e.crc !== undefined) {
      syms.push({ name: `__crc_${e.name}`, value: e.crc, size: 0, bind: STB_GLOBAL, type: STT_NOTYPE, shndx: SHN_ABS });
    }
  });
  for (const i of imports) {
    if (i.versionOnly === true) continue;
    syms.push({ name: i.name, value: 0, size: 0, bind: i.weak === true ? STB_WEAK : STB_GLOBAL, type: STT_NOTYPE, shndx: SHN_UNDEF });
  }

  const strtab = new StrTab();
  const symNames = syms.map((s) => strtab.add(s.name));
  const symSize = bits === 64 ? 24 : 16;
  const shIndex = (name: string): number => {
    const i = sections.findIndex((s) => s.name === name);
    if (i < 0) throw new Error(`internal: no section ${name}`);
    return i + 1;
  };
  const symData = new Uint8Array(symSize * (syms.length + 1));
  {
    const dv = new DataView(symData.buffer);
    syms.forEach((s, k) => {
      const o = symSize * (k + 1);
      const shndx = typeof s.shndx === 'string' ? shIndex(s.shndx) : s.shndx;
      const info = (s.bind << 4) | s.type;
      if (bits === 64) {
        dv.setUint32(o, symNames[k] ?? 0, le);
        dv.setUint8(o + 4, info);
        dv.setUint8(o + 5, 0);
        dv.setUint16(o + 6, shndx, le);
        dv.setBigUint64(o + 8, BigInt(s.value), le);
        dv.setBigUint64(o + 16, BigInt(s.size), le);
      } else {
        dv.setUint32(o, symNames[k] ?? 0, le);
        dv.setUint32(o + 4, Number(s.value), le);
        dv.setUint32(o + 8, s.size, le);
        dv.setUint8(o + 12, info);
        dv.setUint8(o + 13, 0);
        dv.setUint16(o + 14, shndx, le);
      }
    });
  }
  sections.push({ name: '.symtab', type: SHT_SYMTAB, flags: 0, align: word, entsize: symSize, link: '.strtab', info: firstGlobal, data: symData });
  sections.push({ name: '.strtab', type: SHT_STRTAB, flags: 0, align: 1, entsize: 0, data: strtab.bytes() });

  const shstr = new StrTab();
  const secNames = sections.map((s) => shstr.add(s.name));
  const shstrtabName = shstr.add('.shstrtab');
  sections.push({ name: '.shstrtab', type: SHT_STRTAB, flags: 0, align: 1, entsize: 0, data: shstr.bytes() });
  secNames.push(shstrtabName);

  // Layout: header, section contents in order, then the section header table.
  const ehSize = bits === 64 ? 64 : 52;
  const shEntSize = bits === 64 ? 64 : 40;
  const offsets: number[] = [];
  let pos = ehSize;
  for (const s of sections) {
    pos = align(pos, s.align);
    offsets.push(pos);
    pos += s.data.length;
  }
  const shoff = align(pos, word);
  const shnum = sections.length + 1;
  const total = shoff + shEntSize * shnum;

  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, bits === 64 ? 2 : 1, le ? 1 : 2, 1], 0);
  dv.setUint16(16, 1, le); // ET_REL
  dv.setUint16(18, machine, le);
  dv.setUint32(20, 1, le); // EV_CURRENT
  if (bits === 64) {
    dv.setBigUint64(40, BigInt(shoff), le);
    dv.setUint16(52, ehSize, le);
    dv.setUint16(58, shEntSize, le);
    dv.setUint16(60, shnum, le);
    dv.setUint16(62, shnum - 1, le);
  } else {
    dv.setUint32(32, shoff, le);
    dv.setUint16(40, ehSize, le);
    dv.setUint16(46, shEntSize, le);
    dv.setUint16(48, shnum, le);
    dv.setUint16(50, shnum - 1, le);
  }
  sections.forEach((s, i) => {
    const off = offsets[i] ?? 0;
    out.set(s.data, off);
    const h = shoff + shEntSize * (i + 1);
    const link = s.link !== undefined ? shIndex(s.link) : 0;
    const name = secNames[i] ?? 0;
    if (bits === 64) {
      dv.setUint32(h, name, le);
      dv.setUint32(h + 4, s.type, le);
      dv.setBigUint64(h + 8, BigInt(s.flags), le);
      dv.setBigUint64(h + 24, BigInt(off), le);
      dv.setBigUint64(h + 32, BigInt(s.data.length), le);
      dv.setUint32(h + 40, link, le);
      dv.setUint32(h + 44, s.info ?? 0, le);
      dv.setBigUint64(h + 48, BigInt(s.align), le);
      dv.setBigUint64(h + 56, BigInt(s.entsize), le);
    } else {
      dv.setUint32(h, name, le);
      dv.setUint32(h + 4, s.type, le);
      dv.setUint32(h + 8, s.flags, le);
      dv.setUint32(h + 16, off, le);
      dv.setUint32(h + 20, s.data.length, le);
      dv.setUint32(h + 24, link, le);
      dv.setUint32(h + 28, s.info ?? 0, le);
      dv.setUint32(h + 32, s.align, le);
      dv.setUint32(h + 36, s.entsize, le);
    }
  });
  return out;
}
