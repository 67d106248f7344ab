// The ELF reader's acceptance rules (kmod's elf_identify / kmod_elf_new, v30 and v34) and its
// bounds checks: every malformed image is a refusal carrying kmod's errno (or the assertion that
// kills kmod's depmod), never an exception; the module parser turns it into kmod's reading.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findSection, isElfRefusal, openElf, sectionName, type Elf, type ElfRefusal, type KmodGeneration } from '../../src/elf/elf.ts';
import { parseModule } from '../../src/module/parse.ts';
import { buildModuleElf } from '../support/fixture-elf.ts';

const FILE = 'kernel/drivers/x/broken.ko';

function refused(bytes: Uint8Array, errno: ElfRefusal['errno'], detail: RegExp, gen: KmodGeneration = 30): ElfRefusal {
  const r = openElf(bytes, FILE, gen);
  assert.ok(isElfRefusal(r), `expected a refusal, got an ELF (${detail})`);
  assert.equal(r.errno, errno, r.detail);
  assert.match(r.detail, detail);
  return r;
}

function opened(bytes: Uint8Array, gen: KmodGeneration = 30): Elf {
  const r = openElf(bytes, FILE, gen);
  assert.ok(!isElfRefusal(r), `refused: ${isElfRefusal(r) ? r.detail : ''}`);
  return r;
}

const valid64 = (): Uint8Array => buildModuleElf({ modinfo: [['license', 'GPL']] }, { bits: 64, endian: 'le' });

interface Layout {
  view: DataView;
  le: boolean;
  shoff: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
}

/** Header fields read straight from the gABI offsets (independent of the reader under test). */
function layout(b: Uint8Array): Layout {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const le = b[5] === 1;
  const is64 = b[4] === 2;
  return {
    view,
    le,
    shoff: is64 ? Number(view.getBigUint64(40, le)) : view.getUint32(32, le),
    shentsize: view.getUint16(is64 ? 58 : 46, le),
    shnum: view.getUint16(is64 ? 60 : 48, le),
    shstrndx: view.getUint16(is64 ? 62 : 50, le),
  };
}

/** Index of the section called `name`, by scanning names in the raw section-name table. */
function sectionIndex(b: Uint8Array, name: string): number {
  const l = layout(b);
  const strOff = Number(l.view.getBigUint64(l.shoff + l.shstrndx * 64 + 24, l.le));
  for (let i = 1; i < l.shnum; i++) {
    const nameOff = l.view.getUint32(l.shoff + i * 64, l.le);
    const s = strOff + nameOff;
    const got = Buffer.from(b.subarray(s, b.indexOf(0, s))).toString('latin1');
    if (got === name) return i;
  }
  throw new Error(`fixture has no ${name}`);
}

test('zero-length, non-ELF and short images: ENOEXEC up to e_ident, EINVAL for a short header', () => {
  refused(new Uint8Array(0), 'ENOEXEC', /empty image/);
  refused(new Uint8Array([0x7f, 0x45]), 'ENOEXEC', /too short/);
  refused(new TextEncoder().encode('#!/bin/sh\necho not a module\n'), 'ENOEXEC', /bad magic/);
  refused(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0]), 'ENOEXEC', /too short/);
  // e_ident complete but the 64-byte header is not (kmod wants more than sizeof(Elf64_Ehdr)).
  refused(valid64().subarray(0, 64), 'EINVAL', /truncated ELF header/);
  refused(valid64().subarray(0, 40), 'EINVAL', /truncated ELF header/);
});

test('wrong class and byte order', () => {
  const b = valid64();
  b[4] = 3;
  refused(b, 'EINVAL', /unsupported ELF class 3/);
  const c = valid64();
  c[5] = 0;
  refused(c, 'EINVAL', /unsupported ELF byte order 0/);
});

test('garbage section table; a section-name index that names no section aborts kmod (both generations)', () => {
  const entsize = valid64();
  layout(entsize).view.setUint16(58, 40, true);
  refused(entsize, 'EINVAL', /corrupt ELF section table/);

  const pastEnd = valid64();
  layout(pastEnd).view.setBigUint64(40, BigInt(pastEnd.byteLength - 64), true);
  refused(pastEnd, 'EINVAL', /corrupt ELF section table/);

  const huge = valid64();
  layout(huge).view.setBigUint64(40, 0xffff_ffff_ffff_ff00n, true);
  refused(huge, 'EINVAL', /corrupt ELF section table/);

  for (const gen of [30, 34] as const) {
    const noNames = valid64();
    layout(noNames).view.setUint16(62, 0, true);
    assert.equal(refused(noNames, 'EINVAL', /e_shstrndx 0/, gen).abort, 'idx != SHN_UNDEF');

    const namesOutOfRange = valid64();
    const l = layout(namesOutOfRange);
    l.view.setUint16(62, l.shnum + 3, true);
    assert.equal(refused(namesOutOfRange, 'EINVAL', /names no section/, gen).abort, 'idx < elf->header.section.count');
  }
});

test('section-name string table without a final NUL', () => {
  const b = valid64();
  const l = layout(b);
  const h = l.shoff + l.shstrndx * 64;
  const off = Number(l.view.getBigUint64(h + 24, true));
  const size = Number(l.view.getBigUint64(h + 32, true));
  b[off + size - 1] = 0x41;
  refused(b, 'EINVAL', /not NUL-terminated/);
});

test('section names table pointing past the end of the file; at its very end kmod 30 aborts, kmod 34 refuses', () => {
  const b = valid64();
  const l = layout(b);
  l.view.setBigUint64(l.shoff + l.shstrndx * 64 + 24, BigInt(b.byteLength), true);
  refused(b, 'EINVAL', /section-name string table past the end/);
  l.view.setBigUint64(l.shoff + l.shstrndx * 64 + 32, 0n, true);
  assert.equal(refused(b, 'EINVAL', /starts at the end/, 30).abort, 'offset < elf->size');
  // kmod 34 checks the table's own name offset against a size it has not read yet (see openElf).
  assert.equal(refused(b, 'EINVAL', /own name offset \d+ lies outside it/, 34).abort, undefined);
  const wrap = valid64();
  const w = layout(wrap);
  // offset + size overflows 64 bits: must not wrap around into range.
  w.view.setBigUint64(w.shoff + w.shstrndx * 64 + 24, 16n, true);
  w.view.setBigUint64(w.shoff + w.shstrndx * 64 + 32, 0xffff_ffff_ffff_fff8n, true);
  refused(wrap, 'EINVAL', /section-name string table past the end/);
});

test('a section pointing past the end is passed over, as kmod passes over it: the module has no .modinfo', () => {
  const b = valid64();
  const l = layout(b);
  const i = sectionIndex(b, '.modinfo');
  l.view.setBigUint64(l.shoff + i * 64 + 32, BigInt(b.byteLength), true);
  assert.equal(findSection(opened(b), '.modinfo'), undefined);
  const r = parseModule(b, FILE);
  assert.deepEqual(r.modinfo, []);
  assert.equal(r.loadError, undefined);

  const c = valid64();
  const lc = layout(c);
  const t = sectionIndex(c, '.text');
  lc.view.setBigUint64(lc.shoff + t * 64 + 24, 1n << 60n, true);
  assert.deepEqual(parseModule(c, FILE).modinfo, [['license', 'GPL']]);
});

test('a section at offset 0: kmod 30 reads it (the ELF header as .modinfo), kmod 34 takes it for missing', () => {
  const b = valid64();
  const l = layout(b);
  l.view.setBigUint64(l.shoff + sectionIndex(b, '.modinfo') * 64 + 24, 0n, true);
  const r = parseModule(b, FILE);
  assert.ok(r.modinfo.length > 0, 'kmod 30 reads the first bytes of the file as .modinfo');
  assert.deepEqual(r.kmod34?.modinfo, []);
});

test('a size-0 .modinfo at the very end of the file: kmod 30 aborts on it, kmod 34 reads no .modinfo', () => {
  const b = valid64();
  const l = layout(b);
  const i = sectionIndex(b, '.modinfo');
  l.view.setBigUint64(l.shoff + i * 64 + 24, BigInt(b.byteLength), true);
  l.view.setBigUint64(l.shoff + i * 64 + 32, 0n, true);
  const r = parseModule(b, FILE);
  assert.equal(r.kmodAborts, 'offset < elf->size');
  assert.equal(r.kmod34?.kmodAborts, undefined);
  assert.deepEqual(r.kmod34?.modinfo, []);
});

test('.strtab without a NUL before the end of the file: the name ends with the file', () => {
  // An undefined symbol whose name runs to the end of the file.
  const b = buildModuleElf({ imports: [{ name: 'zzzz_last' }] }, { bits: 64, endian: 'le' });
  const l = layout(b);
  const strtab = sectionIndex(b, '.strtab');
  const off = Number(l.view.getBigUint64(l.shoff + strtab * 64 + 24, true));
  const size = Number(l.view.getBigUint64(l.shoff + strtab * 64 + 32, true));
  // Move .strtab to the file's last bytes and drop every NUL after the name's start.
  const tail = b.subarray(off, off + size);
  const copy = new Uint8Array(b.byteLength + size);
  copy.set(b);
  copy.set(tail, b.byteLength);
  for (let k = b.byteLength; k < copy.byteLength; k++) if (copy[k] === 0) copy[k] = 0x41;
  copy[b.byteLength] = 0; // index 0 of a string table is the empty name
  const lv = layout(copy);
  lv.view.setBigUint64(lv.shoff + strtab * 64 + 24, BigInt(b.byteLength), true);
  const r = parseModule(copy, FILE);
  assert.equal(r.loadError, undefined);
  assert.ok(r.imports.some((i) => i.name.startsWith('zzzz_last') && i.name.length > 'zzzz_last'.length), JSON.stringify(r.imports));
});

test('every truncation of a valid module is a reading (kmod\'s failure or a parse), never an exception', () => {
  for (const [bits, endian] of [[64, 'le'], [32, 'be']] as const) {
    const b = buildModuleElf(
      { modinfo: [['alias', 'pci:v*']], exports: [{ name: 'f', crc: 1 }], imports: [{ name: 'g', crc: 2 }] },
      { bits, endian },
    );
    let failed = 0;
    for (let n = 0; n < b.byteLength; n += 7) {
      const r = parseModule(b.slice(0, n), FILE);
      if (r.loadError !== undefined) failed++;
      else assert.ok(r.modinfo.length + r.exports.length + r.imports.length > 0, `truncated to ${n}: neither a failure nor a reading`);
    }
    // The section header table is at the end: every cut loses it.
    assert.equal(failed, Math.ceil(b.byteLength / 7), `${bits}${endian}`);
  }
});

test('sectionName reads names from the section-name table', () => {
  const elf = opened(valid64());
  const names = elf.sections.slice(1).map((s) => sectionName(elf, s));
  assert.ok(names.includes('.modinfo') && names.includes('.symtab') && names.includes('.shstrtab'), names.join(','));
});
