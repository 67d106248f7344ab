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
};

function sample(n: number, drop: number[] = []): CacheContents {
  const set = new ModuleSet();
  for (let i = 0; i < n; i++) {
    const fp = { size: BigInt(1000 + i), mtimeNs: 1700000000123456789n + BigInt(i), ctimeNs: 1700000000999999999n, ino: BigInt(2 ** 40 + i) };
    set.add(`kernel/drivers/m${i}.ko.xz`, fp, record(i), i % 3 === 0 ? 1 : -i);
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

test('a set decoded from a cache of two modules takes four more: their fingerprints are kept and it saves', () => {
  // grow() gives alive 16 slots at once but fp only 16 entries (4 slots): fingerprints of slots 4+
  // were dropped silently and encodeCache threw "Invalid typed array length" (a kernel whose tree
  // was reduced to a KMP's two modules, then given four more).
  const back = decodeCache(encodeCache(sample(2)), 'x.cache');
  const c = sample(2);
  for (const set of [c.set, back.set]) for (let i = 0; i < 4; i++) set.add(`updates/n${i}.ko`, { size: BigInt(i + 1), mtimeNs: 5n, ctimeNs: 6n, ino: BigInt(70 + i) }, record(10 + i), 1);
  assert.deepEqual(observable(back.set), observable(c.set));
  assert.deepEqual(back.set.fingerprint(5), { size: 4n, mtimeNs: 5n, ctimeNs: 6n, ino: 73n });
  assert.deepEqual(observable(decodeCache(encodeCache({ ...c, set: back.set }), 'y.cache').set), observable(c.set));
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
