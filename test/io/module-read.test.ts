// readModuleForParse reads a plain module sparsely; the parser must not be able to tell: every
// record (or error) equals the one from the whole file.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readModuleForParse } from '../../src/io/module-read.ts';
import { parseModule } from '../../src/module/parse.ts';
import { buildModuleElf, type FixtureModule } from '../support/fixture-elf.ts';
import { realKernel, realKernelSkipReason } from '../support/kernels.ts';

function outcome(bytes: Uint8Array, file: string): unknown {
  try {
    return parseModule(bytes, file);
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** A fixture padded past the whole-read threshold with bytes the parser never needs. */
function padded(elf: Uint8Array, fill: number): Uint8Array {
  const out = new Uint8Array(elf.length + 100_000).fill(fill);
  out.set(elf, 0);
  return out;
}

const module: (style: FixtureModule['crcStyle']) => FixtureModule = (style) => ({
  modinfo: [
    ['alias', 'pci:v00008086d*'],
    ['depends', 'libfoo'],
    ['description', 'sparse read test'],
  ],
  exports: [
    { name: 'foo_one', crc: 0x11223344 },
    { name: 'foo_two', crc: 0xdeadbeef, gpl: true },
  ],
  imports: [
    { name: 'printk', crc: 0x12345678 },
    { name: 'weak_thing', weak: true },
    { name: 'module_layout', crc: 0xcafef00d, versionOnly: true },
  ],
  crcStyle: style,
});

test('sparse read parses like the whole file: 4 ELF classes x 3 CRC layouts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'module-read-'));
  try {
    for (const bits of [32, 64] as const) {
      for (const endian of ['le', 'be'] as const) {
        for (const style of ['kcrctab', 'crc-absolute', 'crc-section'] as const) {
          const bytes = padded(buildModuleElf(module(style), { bits, endian }), 0xa5);
          const file = join(dir, `m-${bits}-${endian}-${style}.ko`);
          writeFileSync(file, bytes);
          const sparse = readModuleForParse(file);
          assert.equal(sparse.byteLength, bytes.byteLength);
          const whole = parseModule(bytes, file);
          assert.deepEqual(parseModule(sparse, file), whole, `${bits} ${endian} ${style}`);
          if (style !== 'crc-absolute') assert.deepEqual(whole.exports.map((e) => e.crc), [0x11223344, 0xdeadbeef]);
          // The padding was not read: the sparse buffer differs from the file where nothing looks.
          assert.notDeepEqual(Buffer.from(sparse), Buffer.from(bytes));
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('damaged headers and string tables: same record or same error as the whole file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'module-read-'));
  try {
    const base = padded(buildModuleElf(module('kcrctab'), { bits: 64, endian: 'le' }), 0x41);
    const view = new DataView(base.buffer);
    const shoff = Number(view.getBigUint64(40, true));
    const shnum = view.getUint16(60, true);
    const variants: Array<[string, (b: Uint8Array) => void]> = [
      ['as built', () => {}],
      ['section table past the end', (b) => new DataView(b.buffer).setBigUint64(40, BigInt(b.length - 10), true)],
      ['bad shentsize', (b) => new DataView(b.buffer).setUint16(58, 40, true)],
      ['shstrndx out of range', (b) => new DataView(b.buffer).setUint16(62, shnum + 3, true)],
    ];
    // Every section in turn: last byte made non-NUL, offset pushed past the end.
    for (let i = 1; i < shnum; i++) {
      const h = shoff + i * 64;
      const off = Number(view.getBigUint64(h + 24, true));
      const size = Number(view.getBigUint64(h + 32, true));
      if (size > 0) variants.push([`section ${i} last byte`, (b) => void (b[off + size - 1] = 0x58)]);
      variants.push([`section ${i} past the end`, (b) => new DataView(b.buffer).setBigUint64(h + 24, BigInt(b.length - 1), true)]);
    }
    variants.forEach(([what, damage], n) => {
      const bytes = base.slice();
      damage(bytes);
      const file = join(dir, `d${n}.ko`);
      writeFileSync(file, bytes);
      assert.deepEqual(outcome(readModuleForParse(file), file), outcome(bytes, file), what);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('compressed and small files are returned whole', () => {
  const dir = mkdtempSync(join(tmpdir(), 'module-read-'));
  try {
    const raw = padded(buildModuleElf(module('kcrctab')), 0);
    const plain = join(dir, 'small.ko');
    writeFileSync(plain, raw.subarray(0, 1000));
    assert.deepEqual(Buffer.from(readModuleForParse(plain)), Buffer.from(raw.subarray(0, 1000)));
    const xz = join(dir, 'm.ko');
    writeFileSync(xz, raw);
    execFileSync('xz', ['--check=crc32', '-k', xz]);
    assert.deepEqual(Buffer.from(readModuleForParse(`${xz}.xz`)), readFileSync(`${xz}.xz`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('real Debian cloud kernel: every module parses the same from a sparse read', (t) => {
  const skip = realKernelSkipReason();
  if (skip) return t.skip(skip);
  const k = realKernel('cloud-amd64');
  const files = execFileSync('find', [k.moddir, '-name', '*.ko'], { encoding: 'utf8' }).trim().split('\n');
  assert.ok(files.length > 1000);
  for (const f of files) assert.deepEqual(parseModule(readModuleForParse(f), f), parseModule(readFileSync(f), f), f);
});
