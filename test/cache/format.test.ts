import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeCache, decodeCacheHeader, encodeCache, type CacheContents, type CacheHeader } from '../../src/cache/format.ts';
import { computeDatabase } from '../../src/depmod/compute.ts';
import { emitDatabase } from '../../src/depmod/emit.ts';
import { ModuleSet } from '../../src/depmod/module-set.ts';
import { DEFAULT_BEHAVIOUR } from '../../src/depmod/rebuild.ts';
import { FormatError } from '../../src/errors.ts';
import type { ModuleRecord } from '../../src/module/record.ts';

function record(i: number): ModuleRecord {
  // Every fifth module is one kmod failed to load: listed with nothing, its failure kept.
  if (i % 5 === 4) return { name: `m${i}`, modinfo: [], exports: [], imports: [], loadError: 'Invalid argument', loadDetail: 'cut short', libkmodErrors: ['xz: File is corrupt'] };
  return {
    name: `m${i}`,
    modinfo: [
      ['alias', `pci:v0000${i}d*`],
      ['alias', 'usb:v1234-[0-9]*'],
      ['softdep', `pre: m${i + 1}`],
      ['weakdep', 'Grüße'],
    ],
    exports: [{ name: `sym_${i}`, crc: 0xdeadbeef }, { name: 'shared', crc: i === 0 ? 2 ** 64 : i }],
    imports: [
      { name: `sym_${Math.max(0, i - 1)}`, crc: 0x12345678, weak: false },
      { name: 'printk', crc: 0, weak: true },
    ],
  };
}

const header: CacheHeader = {
  kver: '6.1.0-1-amd64',
  moddir: '/lib/modules/6.1.0-1-amd64',
  inputsDigest: 'abc',
  inputsIdentity: 'x',
  kmodVersion: '30',
  dirs: { '': '1' },
  outputs: { 'modules.dep': '1:2:3' },
  kabiKey: 'none',
  kabi: { against: 'none', unknown: 0, mismatched: 0 },
  modules: 0,
  warnings: [],
  builtinWarnings: [],
  unreadable: [{ kind: 'unreadable', module: 'm4', modulePath: '/m/kernel/drivers/m4.ko.xz', error: 'Invalid argument', detail: 'cut short', message: 'failed to load symbols from /m/kernel/drivers/m4.ko.xz: Invalid argument' }],
};

function sample(n: number, drop: number[] = []): CacheContents {
  const set = new ModuleSet();
  for (let i = 0; i < n; i++) {
    const fp = { size: BigInt(1000 + i), mtimeNs: 1700000000123456789n + BigInt(i), ctimeNs: 1700000000999999999n, ino: BigInt(2 ** 40 + i) };
    set.add(`kernel/drivers/m${i}.ko.xz`, fp, record(i), i % 3 === 0 ? 1 : -i, i % 4 === 1);
  }
  for (const s of drop) set.drop(s);
  set.setKernelSymbols('symvers', new Map([['printk', 7], ['sym_0', 9]]));
  return { header: { ...header, modules: n }, set, dirEntries: { '': [{ name: 'kernel', type: 'dir' }] }, kabi: [] };
}

/** Everything a set says, as depmod would write it (plus the fingerprints, which no output shows). */
function observable(set: ModuleSet): unknown {
  const db = computeDatabase(set, { kabi: 'symvers', dirname: '/m' });
  const files = emitDatabase({ set, db, behaviour: DEFAULT_BEHAVIOUR, dirname: '/m' }).files;
  return {
    files: [...files].map(([k, v]) => [k, Buffer.from(v).toString('hex')]),
    kabi: db.kabi,
    unreadable: db.unreadableModules,
    warnings: db.warnings,
    byKmod: set.liveSlots().map((s) => set.byKmod[s]),
    fps: set.liveSlots().map((s) => [set.path(s), set.fingerprint(s)]),
    kernelSource: set.kernelSource,
  };
}

test('cache round-trips the module set, the header and the JSON sections', () => {
  const c = sample(50, [3, 17]);
  const bytes = encodeCache(c);
  const back = decodeCache(bytes, 'x.cache');
  assert.deepEqual(back.header, c.header);
  assert.deepEqual(back.dirEntries, c.dirEntries);
  assert.deepEqual(observable(back.set), observable(c.set));
  assert.equal(back.set.liveCount, 48);
  assert.equal(computeDatabase(back.set, { kabi: 'none', dirname: '/m' }).unreadableModules.length, 10, 'every fifth module, none of them dropped');
  assert.deepEqual(decodeCacheHeader(bytes, 'x.cache').header, c.header);
});

test('a decoded set keeps working: modules added and dropped after loading, and compacted', () => {
  const c = sample(20);
  const back = decodeCache(encodeCache(c), 'x.cache');
  for (const set of [c.set, back.set]) {
    set.drop(5);
    set.add('updates/new.ko', { size: 1n, mtimeNs: 2n, ctimeNs: 3n, ino: 4n }, record(99), 1);
  }
  assert.deepEqual(observable(back.set), observable(c.set));
  assert.deepEqual(observable(back.set.compact()), observable(c.set));
  assert.equal(back.set.compact().slots, 20);
});

test('an empty cache round-trips', () => {
  const c = sample(0);
  const back = decodeCache(encodeCache(c), 'x.cache');
  assert.deepEqual(observable(back.set), observable(c.set));
});

test('every single-byte corruption and every truncation is a FormatError, never trusted', () => {
  const bytes = encodeCache(sample(3));
  for (let i = 0; i < bytes.length; i += 7) {
    const bad = bytes.slice();
    bad[i] = bad[i]! ^ 0x40;
    // Padding between header checksum and body is not covered by a checksum and never read.
    let ok = false;
    try {
      decodeCache(bad, 'k.cache');
      ok = true;
    } catch (e) {
      assert.ok(e instanceof FormatError && e.message.startsWith('k.cache: '), String(e));
    }
    if (ok) assert.deepEqual(observable(decodeCache(bad, 'k.cache').set), observable(decodeCache(bytes, 'k.cache').set), `byte ${i} changed what the cache says`);
  }
  for (const len of [0, 10, 40, bytes.length - 1]) {
    assert.throws(() => decodeCache(bytes.subarray(0, len), 'k.cache'), FormatError);
  }
});

test('a body that is not 8-aligned in memory is copied, not misread', () => {
  const bytes = encodeCache(sample(5));
  const shifted = new Uint8Array(bytes.length + 1).subarray(1);
  shifted.set(bytes);
  assert.deepEqual(observable(decodeCache(shifted, 'x').set), observable(decodeCache(bytes, 'x').set));
});

test("kmod's (uint64_t)-1 CRC (2^64 as a double) survives exactly", () => {
  const back = decodeCache(encodeCache(sample(1)), 'x').set;
  const id = back.pool.find('shared');
  let crc = -1;
  for (let e = 0; e < back.exports; e++) if (back.expSym[e] === id) crc = back.expCrc[e]!;
  assert.equal(crc, 2 ** 64);
});
