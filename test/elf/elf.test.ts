// The ELF reader's acceptance rules (kmod v30 elf_identify / kmod_elf_new) and its bounds checks:
// every malformed input is a FormatError naming the file, never a RangeError.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findSection, readElf, sectionName } from '../../src/elf/elf.ts';
import { FormatError } from '../../src/errors.ts';
import { parseModule } from '../../src/module/parse.ts';
import { buildModuleElf } from '../support/fixture-elf.ts';

const FILE = 'kernel/drivers/x/broken.ko';

function rejects(bytes: Uint8Array, reason: RegExp, parse: (b: Uint8Array, f: string) => unknown = readElf): FormatError {
  let caught: unknown;
  try {
    parse(bytes, FILE);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof FormatError, `expected FormatError, got ${String(caught)}`);
  assert.equal(caught.file, FILE);
  assert.ok(caught.message.startsWith(`${FILE}: `), caught.message);
  assert.match(caught.reason, reason);
  return caught;
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

test('zero-length, non-ELF and short files', () => {
  rejects(new Uint8Array(0), /empty file/);
  rejects(new Uint8Array([0x7f, 0x45]), /not an ELF file/);
  rejects(new TextEncoder().encode('#!/bin/sh\necho not a module\n'), /not an ELF file/);
  rejects(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0]), /truncated ELF header/);
  // e_ident complete but the 64-byte header is not (kmod wants more than sizeof(Elf64_Ehdr)).
  rejects(valid64().subarray(0, 64), /truncated ELF header/);
  rejects(valid64().subarray(0, 40), /truncated ELF header/);
});

test('wrong class and byte order', () => {
  const b = valid64();
  b[4] = 3;
  const e = rejects(b, /unsupported ELF class 3/);
  assert.equal(e.offset, 4);
  const c = valid64();
  c[5] = 0;
  rejects(c, /unsupported ELF byte order 0/);
});

test('garbage section table', () => {
  const entsize = valid64();
  layout(entsize).view.setUint16(58, 40, true);
  rejects(entsize, /corrupt ELF section table/);

  const pastEnd = valid64();
  layout(pastEnd).view.setBigUint64(40, BigInt(pastEnd.byteLength - 64), true);
  rejects(pastEnd, /corrupt ELF section table/);

  const huge = valid64();
  layout(huge).view.setBigUint64(40, 0xffff_ffff_ffff_ff00n, true);
  rejects(huge, /corrupt ELF section table/);

  const noNames = valid64();
  layout(noNames).view.setUint16(62, 0, true);
  rejects(noNames, /section-name string table/);

  const namesOutOfRange = valid64();
  const l = layout(namesOutOfRange);
  l.view.setUint16(62, l.shnum + 3, true);
  rejects(namesOutOfRange, /section-name string table/);
});

test('section-name string table without a final NUL', () => {
  const b = valid64();
  const l = layout(b);
  const h = l.shoff + l.shstrndx * 64;
  const off = Number(l.view.getBigUint64(h + 24, true));
  const size = Number(l.view.getBigUint64(h + 32, true));
  b[off + size - 1] = 0x41;
  rejects(b, /not NUL-terminated/);
});

test('section names table pointing past the end of the file', () => {
  const b = valid64();
  const l = layout(b);
  l.view.setBigUint64(l.shoff + l.shstrndx * 64 + 24, BigInt(b.byteLength), true);
  rejects(b, /section-name string table past the end/);
  const wrap = valid64();
  const w = layout(wrap);
  // offset + size overflows 64 bits: must not wrap around into range.
  w.view.setBigUint64(w.shoff + w.shstrndx * 64 + 24, 16n, true);
  w.view.setBigUint64(w.shoff + w.shstrndx * 64 + 32, 0xffff_ffff_ffff_fff8n, true);
  rejects(wrap, /section-name string table past the end/);
});

test('a section the parser needs pointing past the end is a FormatError; others are ignored like kmod does', () => {
  const b = valid64();
  const l = layout(b);
  const i = sectionIndex(b, '.modinfo');
  l.view.setBigUint64(l.shoff + i * 64 + 32, BigInt(b.byteLength), true);
  // The reader itself accepts the file (kmod_elf_new does not look at other sections) ...
  const elf = readElf(b, FILE);
  assert.equal(findSection(elf, '.modinfo'), undefined);
  // ... the module parser refuses to pretend the module has no .modinfo.
  rejects(b, /\.modinfo lies outside the file/, parseModule);

  const c = valid64();
  const lc = layout(c);
  const t = sectionIndex(c, '.text');
  lc.view.setBigUint64(lc.shoff + t * 64 + 24, 1n << 60n, true);
  assert.deepEqual(parseModule(c, FILE).modinfo, [['license', 'GPL']]);
});

test('.strtab without a NUL before the end of the file', () => {
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
  rejects(copy, /unterminated string in \.strtab/, parseModule);
});

test('every truncation of a valid module is a FormatError or a successful parse, never another error', () => {
  for (const [bits, endian] of [[64, 'le'], [32, 'be']] as const) {
    const b = buildModuleElf(
      { modinfo: [['alias', 'pci:v*']], exports: [{ name: 'f', crc: 1 }], imports: [{ name: 'g', crc: 2 }] },
      { bits, endian },
    );
    for (let n = 0; n < b.byteLength; n += 7) {
      try {
        parseModule(b.slice(0, n), FILE);
      } catch (e) {
        assert.ok(e instanceof FormatError, `truncated to ${n} bytes (${bits}${endian}): ${String(e)}`);
      }
    }
  }
});

test('sectionName reads names from the section-name table', () => {
  const elf = readElf(valid64(), FILE);
  const names = elf.sections.slice(1).map((s) => sectionName(elf, s));
  assert.ok(names.includes('.modinfo') && names.includes('.symtab') && names.includes('.shstrtab'), names.join(','));
});
