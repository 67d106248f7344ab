// The index patcher (src/index/patch.ts) against the writer: for random key sets, random changes
// and a random monotone priority remap, the patched file must be byte-identical to writing the new
// entry set from scratch (trie.ts, itself pinned to kmod's index_insert by kmod-insert-model.ts), in
// both node orders, and the layout it returns must be the new file's.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { indexLayoutOf, patchIndex, type KeyChange } from '../../src/index/patch.ts';
import { writeIndexWithLayout, type IndexNodeOrder } from '../../src/index/trie.ts';
import { mulberry32 } from '../support/random-tree.ts';

const enc = new TextEncoder();


/** key → module ids holding it; module id → name; array order of modules (position = priority). */
interface Model {
  keys: Map<string, Set<number>>;
  order: number[];
  names: Map<number, string>;
}

function write(m: Model, order: IndexNodeOrder) {
  const pos = new Map(m.order.map((id, i) => [id, i]));
  const keyList: string[] = [];
  const valList: string[] = [];
  const prio: number[] = [];
  // Insertion order: by module position (as depmod inserts module by module).
  const pairs: Array<[string, number]> = [];
  for (const [k, mods] of m.keys) for (const id of mods) if (pos.has(id)) pairs.push([k, id]);
  pairs.sort((a, b) => pos.get(a[1])! - pos.get(b[1])!);
  for (const [k, id] of pairs) {
    keyList.push(k);
    valList.push(m.names.get(id)!);
    prio.push(pos.get(id)!);
  }
  const heap = enc.encode(keyList.join('') + valList.join(''));
  const koff = new Uint32Array(keyList.length);
  const klen = new Uint32Array(keyList.length);
  const voff = new Uint32Array(keyList.length);
  const vlen = new Uint32Array(keyList.length);
  let p = 0;
  keyList.forEach((k, i) => { koff[i] = p; klen[i] = k.length; p += k.length; });
  valList.forEach((v, i) => { voff[i] = p; vlen[i] = v.length; p += v.length; });
  return writeIndexWithLayout({ count: keyList.length, keys: { heap, off: koff, len: klen }, values: { heap, off: voff, len: vlen }, priority: Uint32Array.from(prio) }, order, 'test.bin');
}

const ALPHA = 'abc_-:*0123xyzAZ.';
function randomKey(r: () => number, stems: string[]): string {
  if (stems.length > 0 && r() < 0.7) {
    const s = stems[Math.floor(r() * stems.length)]!;
    const cut = Math.floor(r() * (s.length + 1));
    let k = s.slice(0, cut);
    const add = Math.floor(r() * 4);
    for (let i = 0; i < add; i++) k += ALPHA[Math.floor(r() * ALPHA.length)];
    return k;
  }
  let k = '';
  const n = Math.floor(r() * 7);
  for (let i = 0; i < n; i++) k += ALPHA[Math.floor(r() * ALPHA.length)];
  return k;
}

function scenario(seed: number, order: IndexNodeOrder): void {
  const r = mulberry32(seed);
  const m: Model = { keys: new Map(), order: [], names: new Map() };
  const nMods = 1 + Math.floor(r() * 12);
  let nextId = 0;
  for (let i = 0; i < nMods; i++) {
    m.order.push(nextId);
    m.names.set(nextId, `mod${nextId}`);
    nextId++;
  }
  const stems: string[] = [];
  const nKeys = Math.floor(r() * 40);
  for (let i = 0; i < nKeys; i++) {
    const k = randomKey(r, stems);
    stems.push(k);
    const mods = m.keys.get(k) ?? new Set<number>();
    const c = 1 + Math.floor(r() * 2);
    for (let j = 0; j < c; j++) mods.add(m.order[Math.floor(r() * m.order.length)]!);
    m.keys.set(k, mods);
  }
  const before = write(m, order);
  assert.deepEqual(indexLayoutOf(before.bytes, 'x'), before.layout, 'the writer reports the layout a walk finds');

  // Changes: drop some modules, insert new ones at random positions, change memberships.
  const oldPos = new Map(m.order.map((id, i) => [id, i]));
  const touched = new Set<string>();
  const dropped = new Set<number>();
  for (const id of [...m.order]) if (r() < 0.2) dropped.add(id);
  m.order = m.order.filter((id) => !dropped.has(id));
  for (const [k, mods] of m.keys) for (const id of mods) if (dropped.has(id)) touched.add(k);
  const adds = Math.floor(r() * 4);
  for (let i = 0; i < adds; i++) {
    const id = nextId++;
    m.names.set(id, `new${id}`);
    m.order.splice(Math.floor(r() * (m.order.length + 1)), 0, id);
    const nk = Math.floor(r() * 4);
    for (let j = 0; j < nk; j++) {
      const k = randomKey(r, stems);
      const mods = m.keys.get(k) ?? new Set<number>();
      mods.add(id);
      m.keys.set(k, mods);
      touched.add(k);
    }
  }
  for (const k of [...m.keys.keys()]) {
    if (r() < 0.1) {
      m.keys.get(k)!.clear();
      touched.add(k);
    } else if (r() < 0.1 && m.order.length > 0) {
      m.keys.get(k)!.add(m.order[Math.floor(r() * m.order.length)]!);
      touched.add(k);
    }
  }
  for (const id of dropped) for (const mods of m.keys.values()) mods.delete(id);
  const newPos = new Map(m.order.map((id, i) => [id, i]));
  const remap = new Int32Array(oldPos.size).fill(-1);
  for (const [id, p] of oldPos) if (newPos.has(id)) remap[p] = newPos.get(id)!;

  const changes: KeyChange[] = [...touched]
    .sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))))
    .map((k) => ({
      key: enc.encode(k),
      values: [...(m.keys.get(k) ?? [])]
        .filter((id) => newPos.has(id))
        .sort((a, b) => newPos.get(a)! - newPos.get(b)!)
        .map((id) => ({ priority: newPos.get(id)!, bytes: enc.encode(m.names.get(id)!) })),
    }));
  const expected = write(m, order);
  const got = patchIndex({ old: before.bytes, layout: before.layout, changes, remap, order, name: 'test.bin' });
  assert.deepEqual(Buffer.from(got.bytes).toString('hex'), Buffer.from(expected.bytes).toString('hex'), `seed ${seed} ${order}`);
  assert.deepEqual(got.layout, expected.layout, `layout, seed ${seed} ${order}`);
}

describe('patchIndex', () => {
  for (const order of ['post-order', 'pre-order'] as const) {
    it(`equals a fresh write for 3,000 random key sets and changes (${order})`, () => {
      for (let seed = 1; seed <= 3000; seed++) scenario(seed, order);
    });
  }

  it('no change and the identity remap copy the file as it is', () => {
    const m: Model = { keys: new Map([['pci:v1', new Set([0])], ['pci:v2', new Set([1])], ['usb:x', new Set([0, 1])]]), order: [0, 1], names: new Map([[0, 'a'], [1, 'b']]) };
    const before = write(m, 'post-order');
    const got = patchIndex({ old: before.bytes, layout: before.layout, changes: [], order: 'post-order', name: 'x' });
    assert.deepEqual(got.bytes, before.bytes);
    assert.equal(got.writtenNodes, 1, 'only the root is written');
  });

  it('a byte >= 0x80 that would become an edge is refused as the writer refuses it', () => {
    const m: Model = { keys: new Map([['ab', new Set([0])]]), order: [0], names: new Map([[0, 'a']]) };
    const before = write(m, 'post-order');
    assert.throws(
      () => patchIndex({ old: before.bytes, layout: before.layout, changes: [{ key: new Uint8Array([0x61, 0xc3, 0xa9]), values: [{ priority: 0, bytes: enc.encode('a') }] }], order: 'post-order', name: 'x.bin' }),
      /byte 0xc3 would become a trie edge/,
    );
  });
});
