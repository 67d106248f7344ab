import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import { test } from 'node:test';
import { applyDelta, decodeBase, encodeBase, encodeDelta, listingsOf, type CacheContents, type CacheMeta } from '../../src/cache/format.ts';
import { buildState, databaseOf, findingsOf, listOf, updateState, type DbState } from '../../src/depmod/db-state.ts';
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

const meta: CacheMeta = {
  kver: '6.1.0-1-amd64',
  moddir: '/lib/modules/6.1.0-1-amd64',
  inputsDigest: 'abc',
  inputsIdentity: 'x',
  kmodVersion: '30',
  dirs: { '': '1' },
  writtenAtMs: 1,
  outputs: { 'modules.dep': '1:2:3' },
  kabiKey: 'none',
  kabi: { against: 'symvers', unknown: 0, mismatched: 0 },
  modules: 0,
  warnings: [],
  warningsBeforeKabi: 0,
  configWarnings: [],
  orderWarnings: [],
  builtinWarnings: [],
  config: { searches: [{ kind: 'path', path: 'updates' }], overrides: [], externals: [], excludes: [] } as unknown as CacheMeta['config'],
  shadowed: [['updates/x.ko', 'x']],
  noisy: [],
  unreadable: [{ kind: 'unreadable', module: 'm4', modulePath: '/m/kernel/drivers/m4.ko.xz', error: 'Invalid argument', detail: 'cut short', message: 'failed to load symbols from /m/kernel/drivers/m4.ko.xz: Invalid argument' }],
  orderTotal: 3,
  stateOptions: { kabi: 'symvers', unsized: false },
  cycles: null,
};

const OPTS = { kabi: 'symvers' as const, unsizedZstdUnreadable: false };

function sample(n: number, drop: number[] = []): CacheContents {
  const set = new ModuleSet();
  for (let i = 0; i < n; i++) {
    const fp = { size: BigInt(1000 + i), mtimeNs: 1700000000123456789n + BigInt(i), ctimeNs: 1700000000999999999n, ino: BigInt(2 ** 40 + i) };
    set.add(`kernel/drivers/m${i}.ko.xz`, fp, record(i), i % 3 === 0 ? 1 : -i, i % 4 === 1);
  }
  for (const s of drop) set.drop(s);
  set.setKernelSymbols('symvers', new Map([['printk', 7], ['sym_0', 9]]));
  const state = buildState(set, OPTS);
  const layout = emitDatabase({ set, db: databaseOf(set, state), behaviour: DEFAULT_BEHAVIOUR, dirname: '/m' }).layout;
  const entries = { '': [{ name: 'kernel', type: 'dir' as const }] };
  return { meta: { ...meta, modules: n }, set, state, layout, dirEntries: listingsOf(entries), orderLines: Uint32Array.from([0, 5, 9]) };
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

/** The state as plain data, overlays folded in. */
function stateOf(set: ModuleSet, st: DbState): unknown {
  return {
    order: [...st.order],
    owners: [...st.ownerSlot],
    lines: set.liveSlots().map((s) => [...listOf(st.lines, s)]),
    deps: set.liveSlots().map((s) => [...listOf(st.deps, s)]),
    findings: set.liveSlots().map((s) => findingsOf(st, s)),
  };
}

test('a base round-trips the module set, the state, the layouts and the meta', () => {
  const c = sample(50, [3, 17]);
  const { bytes } = encodeBase(c);
  const back = decodeBase(bytes, 'x.cache').contents;
  assert.deepEqual(back.meta, c.meta);
  assert.deepEqual(back.dirEntries.all(), c.dirEntries.all());
  assert.deepEqual(back.dirEntries.get(''), [{ name: 'kernel', type: 'dir' }]);
  assert.equal(back.dirEntries.get('nope'), undefined);
  assert.deepEqual(observable(back.set), observable(c.set));
  assert.deepEqual(stateOf(back.set, back.state), stateOf(c.set, c.state));
  assert.deepEqual(back.layout, c.layout);
  assert.deepEqual([...back.orderLines], [0, 5, 9]);
  assert.equal(back.set.liveCount, 48);
});

test('a delta on top of its base gives what was saved: modules added and dropped, state updated', () => {
  const c = sample(20);
  const { bytes, generation } = encodeBase(c);
  // Decoded sets are views of the bytes they came from (and may be changed in place): a copy each.
  const base = decodeBase(bytes.slice(), 'x.cache');
  const counts = base.header.meta.counts;
  const set = base.contents.set;
  set.drop(5);
  const added = [set.add('updates/new.ko', { size: 1n, mtimeNs: 2n, ctimeNs: 3n, ino: 4n }, { ...record(99), exports: [{ name: 'brand_new_symbol', crc: 1 }] }, 1)];
  const up = updateState(set, base.contents.state, added, [5], OPTS);
  const now: CacheContents = { ...base.contents, state: up.state, meta: { ...base.contents.meta, modules: 20 } };
  const delta = encodeDelta({ base: { generation, counts }, contents: now, dropped: [5], dirEntries: { kernel: [] } });
  const again = decodeBase(bytes.slice(), 'x.cache');
  const applied = applyDelta(again, delta, 'x.delta').contents;
  assert.deepEqual(observable(applied.set), observable(set));
  assert.deepEqual(stateOf(applied.set, applied.state), stateOf(set, up.state));
  assert.deepEqual(applied.meta, now.meta);
  assert.deepEqual(applied.dirEntries.get('kernel'), []);
  assert.ok(applied.set.pool.find('brand_new_symbol') >= 0, 'names interned since the base are found');
  // And what a full build of the result says.
  assert.deepEqual(stateOf(applied.set, applied.state), stateOf(applied.set, buildState(applied.set, OPTS)));
  assert.throws(() => applyDelta(decodeBase(encodeBase(c).bytes, 'y.cache'), delta, 'x.delta'), /delta of another base/);
});

test('modules added to a set loaded from a delta keep their fingerprints (the room left for them holds four words a slot)', () => {
  const c = sample(20);
  const { bytes, generation } = encodeBase(c);
  const base = decodeBase(bytes.slice(), 'x.cache');
  const counts = base.header.meta.counts;
  const fpOf = (i: number) => ({ size: BigInt(5000 + i), mtimeNs: 17n + BigInt(i), ctimeNs: 18n + BigInt(i), ino: 19n + BigInt(i) });
  const set = base.contents.set;
  const first = [set.add('updates/a0.ko', fpOf(0), record(100), 1)];
  const up = updateState(set, base.contents.state, first, [], OPTS);
  const delta = encodeDelta({ base: { generation, counts }, contents: { ...base.contents, state: up.state }, dropped: [], dirEntries: {} });
  // The next update loads base + delta and adds more modules than the room a slot column has beyond
  // the fingerprints' share: every one of them must read back as added.
  const applied = applyDelta(decodeBase(bytes.slice(), 'x.cache'), delta, 'x.delta').contents.set;
  const more: Array<[number, ReturnType<typeof fpOf>]> = [];
  for (let i = 1; i <= 80; i++) more.push([applied.add(`updates/a${i}.ko`, fpOf(i), record(100 + i), 1), fpOf(i)]);
  for (const [slot, fp] of more) assert.deepEqual(applied.fingerprint(slot), fp, applied.path(slot));
  assert.deepEqual(applied.fingerprint(20), fpOf(0));
});

test('a set decoded from a cache of two modules takes four more: their fingerprints are kept and it saves', () => {
  // grow() gives alive 16 slots at once but fp only 16 entries (4 slots): fingerprints of slots 4+
  // were dropped silently and encoding threw "Invalid typed array length" (a kernel whose tree
  // was reduced to a KMP's two modules, then given four more).
  const back = decodeBase(encodeBase(sample(2)).bytes, 'x.cache').contents;
  const c = sample(2);
  for (const set of [c.set, back.set]) for (let i = 0; i < 4; i++) set.add(`updates/n${i}.ko`, { size: BigInt(i + 1), mtimeNs: 5n, ctimeNs: 6n, ino: BigInt(70 + i) }, record(10 + i), 1);
  assert.deepEqual(observable(back.set), observable(c.set));
  assert.deepEqual(back.set.fingerprint(5), { size: 4n, mtimeNs: 5n, ctimeNs: 6n, ino: 73n });
  assert.deepEqual(observable(decodeBase(encodeBase({ ...c, set: back.set, state: buildState(back.set, OPTS) }).bytes, 'y.cache').contents.set), observable(c.set));
});

test('an empty cache round-trips', () => {
  const c = sample(0);
  const back = decodeBase(encodeBase(c).bytes, 'x.cache').contents;
  assert.deepEqual(observable(back.set), observable(c.set));
});

test('a damaged header, a cut file or a torn end is a FormatError, never trusted', () => {
  const { bytes } = encodeBase(sample(3));
  const span = 40 + new DataView(bytes.buffer).getUint32(12, true) + 4;
  for (let i = 0; i < span; i += 3) {
    const bad = bytes.slice();
    bad[i] = bad[i]! ^ 0x40;
    assert.throws(() => decodeBase(bad, 'k.cache'), (e: unknown) => e instanceof FormatError && e.message.startsWith('k.cache: '), `byte ${i}`);
  }
  const torn = bytes.slice();
  torn[torn.length - 16] = torn[torn.length - 16]! ^ 1;
  assert.throws(() => decodeBase(torn, 'k.cache'), /torn/);
  for (const len of [0, 10, 40, bytes.length - 1]) assert.throws(() => decodeBase(bytes.subarray(0, len), 'k.cache'), FormatError);
  // The body's CRC-32 where the runtime has zlib.crc32 (container.ts says why not elsewhere).
  const native = typeof (zlib as { crc32?: unknown }).crc32 === 'function';
  for (let i = (span + 7) & ~7; i < bytes.length - 16; i += 97) {
    const bad = bytes.slice();
    bad[i] = bad[i]! ^ 0x40;
    if (native) assert.throws(() => decodeBase(bad, 'k.cache'), /checksum mismatch|out of bounds|points outside|bad size/, `body byte ${i}`);
    else {
      try {
        decodeBase(bad, 'k.cache');
      } catch (e) {
        assert.ok(e instanceof FormatError, String(e));
      }
    }
  }
});

test('a body that is not 8-aligned in memory is copied, not misread', () => {
  const { bytes } = encodeBase(sample(5));
  const shifted = new Uint8Array(bytes.length + 1).subarray(1);
  shifted.set(bytes);
  assert.deepEqual(observable(decodeBase(shifted, 'x').contents.set), observable(decodeBase(bytes, 'x').contents.set));
});

test("kmod's (uint64_t)-1 CRC (2^64 as a double) survives exactly", () => {
  const back = decodeBase(encodeBase(sample(1)).bytes, 'x').contents.set;
  const id = back.pool.find('shared');
  let crc = -1;
  for (let e = 0; e < back.exports; e++) if (back.expSym[e] === id) crc = back.expCrc[e]!;
  assert.equal(crc, 2 ** 64);
});
