// parseModule over synthetic modules (test/support/fixture-elf.ts) in all four ELF class/byte-order
// combinations and the three export-CRC layouts, plus kmod v30 edge rules stated from its source.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseModule, UNRESOLVED_CRC } from '../../src/module/parse.ts';
import { DATABASE_MODINFO_KEYS } from '../../src/module/record.ts';
import { buildModuleElf, kmodExports, kmodImports, type FixtureModule } from '../support/fixture-elf.ts';

const COMBOS = [
  [32, 'le'],
  [32, 'be'],
  [64, 'le'],
  [64, 'be'],
] as const;

const sample: FixtureModule = {
  modinfo: [
    ['alias', 'pci:v00008086d000010D3sv*sd*bc*sc*i*'],
    ['alias', 'of:N*T*Cfsl,imx'],
    ['softdep', 'pre: crc32c post: mdio'],
    ['author', 'Jérôme Exemple <j@example.org>'],
    ['depends', ''],
    ['vermagic', '6.1.0-56-amd64 SMP preempt mod_unload modversions '],
  ],
  exports: [
    { name: 'e1000_hw_reset', crc: 0x12345678 },
    { name: 'e1000_gpl_thing', crc: 0xfedcba98, gpl: true },
    { name: 'e1000_zero', crc: 0 },
  ],
  imports: [
    { name: 'printk', crc: 0x11111111 },
    { name: 'kfree', crc: 0x22222222 },
    { name: 'maybe_there', crc: 0x33333333, weak: true },
    { name: 'no_version_entry' },
    { name: 'module_layout', crc: 0x44444444, versionOnly: true },
  ],
};

for (const [bits, endian] of COMBOS) {
  for (const crcStyle of ['kcrctab', 'crc-absolute', 'crc-section'] as const) {
    test(`round trip ELF${bits} ${endian.toUpperCase()} ${crcStyle}`, () => {
      const m = { ...sample, crcStyle };
      const rec = parseModule(buildModuleElf(m, { bits, endian }), 'kernel/drivers/net/e1000-e.ko');
      assert.equal(rec.name, 'e1000_e');
      assert.deepEqual(rec.modinfo, sample.modinfo);
      assert.deepEqual(rec.exports, kmodExports(m));
      assert.deepEqual(rec.imports, kmodImports(m));
      // Stated independently of the fixture's helpers:
      assert.deepEqual(
        rec.imports.map((i) => [i.name, i.crc, i.weak]),
        [
          ['printk', 0x11111111, false],
          ['kfree', 0x22222222, false],
          ['maybe_there', 0x33333333, true],
          ['no_version_entry', 0, false],
          ['module_layout', 0x44444444, false],
        ],
      );
    });
  }
}

test('unversioned module: exports come from __ksymtab_strings with CRC 0 (kmod fallback)', () => {
  for (const [bits, endian] of COMBOS) {
    const m: FixtureModule = { exports: [{ name: 'b_gpl', gpl: true }, { name: 'a_plain' }], imports: [{ name: 'printk' }] };
    const rec = parseModule(buildModuleElf(m, { bits, endian }), 'x.ko');
    assert.deepEqual(rec.exports, [
      { name: 'a_plain', crc: 0 },
      { name: 'b_gpl', crc: 0 },
    ]);
    assert.deepEqual(rec.imports, [{ name: 'printk', crc: 0, weak: false }]);
  }
});

test('a module mixing CRC and CRC-less exports loses the CRC-less ones, as kmod does', () => {
  const m: FixtureModule = { exports: [{ name: 'with', crc: 7 }, { name: 'without' }] };
  assert.deepEqual(parseModule(buildModuleElf(m), 'x.ko').exports, [{ name: 'with', crc: 7 }]);
});

test('no sections of interest: empty record, not an error', () => {
  const rec = parseModule(buildModuleElf({}), 'kernel/a/empty.ko.zst');
  assert.deepEqual(rec, { name: 'empty', modinfo: [], exports: [], imports: [] });
});

/** A module whose .modinfo section holds exactly `raw` (written over a placeholder of the same size). */
function withRawModinfo(raw: string): Uint8Array {
  const bytes = Buffer.from(raw, 'latin1');
  const b = buildModuleElf({ modinfo: [['k', 'v'.repeat(bytes.length - 3)]] }, { bits: 64, endian: 'le' });
  const sec = sectionBytes(b, '.modinfo');
  assert.equal(sec.length, bytes.length, 'placeholder .modinfo has the raw size');
  sec.set(bytes);
  return b;
}

test('.modinfo splitting (kmod_elf_get_strings): padding, NUL runs, keys without "=", "=" in values, unterminated end', () => {
  const rec = parseModule(withRawModinfo('\0\0\0alias=a=b\0\0\0flag\0k=\0last=x'), 'x.ko');
  assert.deepEqual(rec.modinfo, [
    ['alias', 'a=b'],
    ['flag', ''],
    ['k', ''],
    ['last', 'x'],
  ]);
  // After the leading padding, a single remaining byte yields nothing at all.
  assert.deepEqual(parseModule(withRawModinfo('\0\0\0\0\0x'), 'x.ko').modinfo, []);
  assert.deepEqual(parseModule(withRawModinfo('\0\0\0\0xy'), 'x.ko').modinfo, [['xy', '']]);
});

test('records for the database keep only the alias and softdep pairs, in file order', () => {
  const raw = withRawModinfo('alias=a1\0author=me\0softdep=pre: x\0aliasx=no\0alias\0depends=y\0alias=a2');
  assert.deepEqual(parseModule(raw, 'x.ko', { modinfoKeys: DATABASE_MODINFO_KEYS }).modinfo, [
    ['alias', 'a1'],
    ['softdep', 'pre: x'],
    ['alias', ''],
    ['alias', 'a2'],
  ]);
  assert.equal(parseModule(raw, 'x.ko').modinfo.length, 7, 'without the option every pair is kept');
});

test('sparc: STT_REGISTER undefined symbols are not imports; elsewhere they are', () => {
  const m: FixtureModule = { imports: [{ name: 'printk' }, { name: 'kfree', crc: 5 }] };
  // Turn printk's symbol type into STT_REGISTER (13) by patching st_info in the raw symtab.
  const sparc = patchSymbolType(buildModuleElf(m, { bits: 64, endian: 'be', machine: 43 }), 'printk', 13);
  assert.deepEqual(parseModule(sparc, 'x.ko').imports, [{ name: 'kfree', crc: 5, weak: false }]);
  const x86 = patchSymbolType(buildModuleElf(m, { bits: 64, endian: 'be', machine: 62 }), 'printk', 13);
  assert.deepEqual(parseModule(x86, 'x.ko').imports, [
    { name: 'printk', crc: 0, weak: false },
    { name: 'kfree', crc: 5, weak: false },
  ]);
});

test('__crc_ symbol pointing outside its section resolves to kmod\'s (uint64_t)-1', () => {
  const b = buildModuleElf({ exports: [{ name: 'f', crc: 9 }] }, { bits: 64, endian: 'le' });
  const patched = patchSymbolValue(b, '__crc_f', 0x1000);
  assert.deepEqual(parseModule(patched, 'x.ko').exports, [{ name: 'f', crc: UNRESOLVED_CRC }]);
});

test('duplicate __versions names: the first entry gives the CRC, the second is appended as unvisited', () => {
  const m: FixtureModule = {
    imports: [
      { name: 'printk', crc: 1 },
      { name: 'printk', crc: 2, versionOnly: true },
    ],
  };
  const rec = parseModule(buildModuleElf(m, { bits: 32, endian: 'le' }), 'x.ko');
  assert.deepEqual(rec.imports, [
    { name: 'printk', crc: 1, weak: false },
    { name: 'printk', crc: 2, weak: false },
  ]);
});

function sectionBytes(b: Uint8Array, name: string): Uint8Array {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const shoff = Number(view.getBigUint64(40, true));
  const shnum = view.getUint16(60, true);
  const shstrndx = view.getUint16(62, true);
  const sh = (i: number, f: number): number => Number(view.getBigUint64(shoff + i * 64 + f, true));
  for (let i = 1; i < shnum; i++) {
    const s = sh(shstrndx, 24) + view.getUint32(shoff + i * 64, true);
    if (Buffer.from(b.subarray(s, b.indexOf(0, s))).toString('latin1') === name) return b.subarray(sh(i, 24), sh(i, 24) + sh(i, 32));
  }
  throw new Error(`no section ${name}`);
}

// --- raw symbol-table patching (gABI offsets; ELF64 only where used) ---------------------------

function findSymbol(b: Uint8Array, name: string): { view: DataView; le: boolean; entry: number } {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const le = b[5] === 1;
  assert.equal(b[4], 2, 'helper handles ELF64');
  const shoff = Number(view.getBigUint64(40, le));
  const shnum = view.getUint16(60, le);
  const sh = (i: number, f: number): number => Number(view.getBigUint64(shoff + i * 64 + f, le));
  for (let i = 1; i < shnum; i++) {
    if (view.getUint32(shoff + i * 64 + 4, le) !== 2) continue; // SHT_SYMTAB
    const link = view.getUint32(shoff + i * 64 + 40, le);
    const strOff = sh(link, 24);
    for (let e = sh(i, 24); e < sh(i, 24) + sh(i, 32); e += 24) {
      const s = strOff + view.getUint32(e, le);
      if (Buffer.from(b.subarray(s, b.indexOf(0, s))).toString('latin1') === name) return { view, le, entry: e };
    }
  }
  throw new Error(`no symbol ${name}`);
}

function patchSymbolType(b: Uint8Array, name: string, type: number): Uint8Array {
  const c = b.slice();
  const { view, entry } = findSymbol(c, name);
  view.setUint8(entry + 4, (view.getUint8(entry + 4) & 0xf0) | type);
  return c;
}

function patchSymbolValue(b: Uint8Array, name: string, value: number): Uint8Array {
  const c = b.slice();
  const { view, le, entry } = findSymbol(c, name);
  view.setBigUint64(entry + 8, BigInt(value), le);
  return c;
}
