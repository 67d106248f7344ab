import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FormatError } from '../../src/errors.ts';
import { IndexTrie, readIndex, sortByteStrings } from '../../src/index/trie.ts';
import { realKernelSkipReason } from '../support/kernels.ts';
import { KmodInsertModel } from './kmod-insert-model.ts';
import { builtinAliasBinFromModinfo, builtinBinFromText } from './oracle-text.ts';
import { modinfoBytes, tinyOracle } from './tiny-oracle.ts';

const skip = realKernelSkipReason();
const enc = new TextEncoder();

function be32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}
function cstr(s: string): number[] {
  return [...enc.encode(s), 0];
}
const HEADER = [...be32(0xb007f457), ...be32(0x00020001)];

describe('IndexTrie: layout from first principles (kmod v30 index_write__node, post-order)', () => {
  it('an empty index is the header and a flagless root reference to offset 12', () => {
    assert.deepEqual([...new IndexTrie().serialize()], [...HEADER, ...be32(12)]);
  });

  it('writes children in edge order before their parent, the root last', () => {
    const t = new IndexTrie();
    t.insert('ac', 'y', 2);
    t.insert('ab', 'x', 1);
    // root -a-> A (no prefix) -b-> B [1 x], -c-> C [2 y]. B at 12 (10 bytes), C at 22, A at 32
    // (first, last, 2 refs = 10 bytes), root at 42 (first, last, 1 ref).
    const expected = [
      ...HEADER, ...be32(0x20000000 | 42),
      ...be32(1), ...be32(1), ...cstr('x'),
      ...be32(1), ...be32(2), ...cstr('y'),
      0x62, 0x63, ...be32(0x40000000 | 12), ...be32(0x40000000 | 22),
      0x61, 0x61, ...be32(0x20000000 | 32),
    ];
    assert.deepEqual([...t.serialize()], expected);
  });

  it('stores a shared tail as a prefix and leaves holes in a child range as 0', () => {
    const t = new IndexTrie();
    t.insert('xq', 'v', 0);
    t.insert('zqr', 'w', 0);
    // root -x-> X (prefix "q") [0 v] at 12 (12 bytes), -z-> Z (prefix "qr") [0 w] at 24
    // (13 bytes), root at 37; root's range x..z has y empty.
    const expected = [
      ...HEADER, ...be32(0x20000000 | 37),
      ...cstr('q'), ...be32(1), ...be32(0), ...cstr('v'),
      ...cstr('qr'), ...be32(1), ...be32(0), ...cstr('w'),
      0x78, 0x7a, ...be32(0xc0000000 | 12), 0, 0, 0, 0, ...be32(0xc0000000 | 24),
    ];
    assert.deepEqual([...t.serialize()], expected);
  });
});

describe('IndexTrie: value order (kmod v30 index_add_value)', () => {
  it('sorts by priority and puts a new value before existing ones of equal priority', () => {
    const t = new IndexTrie();
    t.insert('k', 'a', 5);
    t.insert('k', 'b', 3);
    t.insert('k', 'c', 5);
    t.insert('k', 'd', 3);
    t.insert('k', 'e', 9);
    t.insert('k', 'f', 0);
    const got = readIndex(t.serialize(), 't').get('k')?.map((v) => `${v.priority}${v.value}`);
    assert.deepEqual(got, ['0f', '3d', '3b', '5c', '5a', '9e']);
  });

  it('reports a duplicate value and stores it again', () => {
    const t = new IndexTrie();
    assert.equal(t.insert('k', 'a', 1), false);
    assert.equal(t.insert('k', 'b', 1), false);
    assert.equal(t.insert('k', 'a', 2), true);
    assert.equal(t.insert('other', 'a', 1), false);
    assert.deepEqual(readIndex(t.serialize(), 't').get('k'), [
      { priority: 1, value: 'b' },
      { priority: 1, value: 'a' },
      { priority: 2, value: 'a' },
    ]);
  });

  it('keeps the empty key on the root and a key that is a prefix of another on an inner node', () => {
    const t = new IndexTrie();
    t.insert('abc', '3', 0);
    t.insert('', '0', 0);
    t.insert('a', '1', 0);
    t.insert('ab', '2', 0);
    const m = readIndex(t.serialize(), 't');
    assert.deepEqual([...m.keys()], ['', 'a', 'ab', 'abc']);
    assert.deepEqual([...m.values()].map((v) => v[0]?.value), ['0', '1', '2', '3']);
  });

  it('rejects NUL characters and priorities that are not 32-bit unsigned', () => {
    const t = new IndexTrie('modules.x.bin');
    assert.throws(() => t.insert('a\0b', 'v', 0), FormatError);
    assert.throws(() => t.insert('a', 'v\0', 0), FormatError);
    assert.throws(() => t.insert('a', 'v', -1), FormatError);
    assert.throws(() => t.insert('a', 'v', 2 ** 32), FormatError);
    assert.throws(() => t.insert('a', 'v', 1.5), /modules\.x\.bin: priority 1\.5/);
  });
});

describe('IndexTrie equals kmod\'s incremental insert (reference model) on random input', () => {
  // xorshift32: deterministic, so a failure names a reproducible seed.
  function rng(seed: number): () => number {
    let s = seed >>> 0 || 1;
    return () => {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      return s / 2 ** 32;
    };
  }
  for (const seed of [1, 2, 3, 42, 4711, 99991]) {
    it(`seed ${seed}`, () => {
      const r = rng(seed);
      const alphabet = 'ab:-_*[]0';
      const a = new IndexTrie();
      const b = new KmodInsertModel();
      const n = 1 + Math.floor(r() * 400);
      for (let i = 0; i < n; i++) {
        let key = '';
        const len = Math.floor(r() * 7);
        for (let j = 0; j < len; j++) key += alphabet[Math.floor(r() * alphabet.length)];
        const value = `v${Math.floor(r() * 5)}`;
        const prio = Math.floor(r() * 4);
        assert.equal(a.insert(key, value, prio), b.insert(key, value, prio), `duplicate report for ${key}`);
      }
      assert.deepEqual(a.serialize('post-order'), b.serialize('post-order'), 'post-order');
      assert.deepEqual(a.serialize('pre-order'), b.serialize('pre-order'), 'pre-order');
    });
  }
  it('sortByteStrings orders distinct byte strings as a plain sort does (empty key, prefixes, bytes >= 0x80)', () => {
    const r = rng(7);
    for (let round = 0; round < 50; round++) {
      const keys = new Set<string>();
      const n = Math.floor(r() * 300);
      for (let i = 0; i < n; i++) {
        let k = round % 2 === 0 ? 'symbol:' : '';
        const len = Math.floor(r() * 12);
        for (let j = 0; j < len; j++) k += String.fromCharCode(r() < 0.1 ? 0x80 + Math.floor(r() * 128) : 0x2d + Math.floor(r() * 6));
        keys.add(k);
      }
      const input = [...keys];
      assert.deepEqual(sortByteStrings(input.slice()), input.slice().sort(), `round ${round}`);
    }
  });
});

describe('IndexTrie against Debian depmod on tiny trees (modules.builtin[.modinfo])', { skip }, () => {
  it('builtin.alias.bin: splits, equal keys from several modules, duplicate values, normalisation', () => {
    const modinfo = modinfoBytes([
      ['m1', 'alias', 'abc'],
      ['m1', 'description', 'not an alias'],
      ['m2', 'alias', 'abd'],
      ['m3', 'alias', 'ab'],
      ['m1', 'alias', 'a'],
      ['m4', 'alias', 'abc'],
      ['m1', 'alias', 'abc'],
      ['m5', 'alias', 'x-y[0-9]-z'],
      ['m5', 'alias', 'x_y[0-9]_z'],
      ['m6', 'alias', 'bad]bracket'],
      ['m6', 'alias', 'open[bracket'],
      ['m7', 'alias', 'pci:v00008086d*sv*sd*bc*sc*i*'],
      ['m8', 'alias', 'pci:v00008086d00001234sv*sd*bc*sc*i*'],
      ['m9', 'alias', 'b'],
    ]);
    const run = tinyOracle({ 'modules.builtin.modinfo': modinfo }, ['modules.builtin.alias.bin']);
    assert.equal(run.status, 0);
    const oracle = run.files.get('modules.builtin.alias.bin');
    assert.ok(oracle);
    assert.deepEqual(builtinAliasBinFromModinfo(modinfo).serialize(), oracle);
  });

  it('builtin.bin: empty index, empty key, the same module twice', () => {
    const empty = tinyOracle({ 'modules.builtin': new Uint8Array() }, ['modules.builtin.bin']);
    assert.deepEqual(empty.files.get('modules.builtin.bin'), new IndexTrie().serialize());

    const text = 'kernel/a/.ko\nkernel/fs/ext4/ext4.ko\n/bad line\nkernel/x/ext4.ko\nkernel/y/snd-pcm.ko\nkernel/z/noext\n';
    const run = tinyOracle({ 'modules.builtin': enc.encode(text) }, ['modules.builtin.bin']);
    const oracle = run.files.get('modules.builtin.bin');
    assert.ok(oracle);
    assert.deepEqual(builtinBinFromText(text).serialize(), oracle);
    // From first principles too: the key of "kernel/z/noext\n" keeps fgets' newline.
    assert.deepEqual([...readIndex(oracle, 'oracle').keys()], ['', 'ext4', 'noext\n', 'snd_pcm']);
  });

  it('non-ASCII bytes: kept inside prefixes and values, fatal where they would be an edge', () => {
    const ok = modinfoBytes([
      ['m\u00e9', 'alias', 'ab\u00e9cd'],
      ['m2', 'alias', 'aX'],
    ]);
    const run = tinyOracle({ 'modules.builtin.modinfo': ok }, ['modules.builtin.alias.bin']);
    assert.equal(run.status, 0);
    assert.deepEqual(builtinAliasBinFromModinfo(ok).serialize(), run.files.get('modules.builtin.alias.bin'));

    // Two keys that first differ at a non-ASCII byte: depmod 30 indexes children[-61] and dies.
    const bad = modinfoBytes([
      ['m1', 'alias', 'ab\u00e9'],
      ['m2', 'alias', 'abc'],
    ]);
    const crash = tinyOracle({ 'modules.builtin.modinfo': bad }, ['modules.builtin.alias.bin']);
    assert.ok(crash.status !== 0 || !crash.files.has('modules.builtin.alias.bin'), 'depmod 30 does not write this index');
    assert.throws(() => builtinAliasBinFromModinfo(bad).serialize(), FormatError);
  });
});
