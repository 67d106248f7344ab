import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FormatError } from '../../src/errors.ts';
import { diffIndexes, IndexTrie, readIndex } from '../../src/index/trie.ts';

function be32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}
const HEADER = [...be32(0xb007f457), ...be32(0x00020001)];

function bytes(...parts: number[][]): Uint8Array {
  return Uint8Array.from(parts.flat());
}

function formatError(input: Uint8Array, reason: RegExp): void {
  assert.throws(
    () => readIndex(input, 'modules.test.bin'),
    (e: unknown) => e instanceof FormatError && e.file === 'modules.test.bin' && reason.test(e.reason),
  );
}

describe('readIndex on hand-made files', () => {
  it('reads keys, priorities and values', () => {
    // root (at 24) -a-> node at 12: prefix "b", one value [7 "v"].
    const file = bytes(HEADER, be32(0x20000000 | 24), [0x62, 0], be32(1), be32(7), [0x76, 0], [0x61, 0x61], be32(0xc0000000 | 12));
    assert.deepEqual([...readIndex(file, 'f')], [['ab', [{ priority: 7, value: 'v' }]]]);
  });

  it('reads an empty index', () => {
    assert.equal(readIndex(bytes(HEADER, be32(12)), 'f').size, 0);
  });
});

describe('readIndex rejects corrupt files with FormatError', () => {
  it('short file', () => formatError(bytes(HEADER), /shorter than its 12-byte header/));
  it('bad magic', () => formatError(bytes(be32(0xb007fa57), be32(0x00020001), be32(12)), /bad index magic/));
  it('wrong version', () => formatError(bytes(be32(0xb007f457), be32(0x00020002), be32(12)), /unsupported index version/));
  it('root offset past the end', () => formatError(bytes(HEADER, be32(0x40000000 | 400)), /past the end/));
  it('root offset into the header', () => formatError(bytes(HEADER, be32(0x40000000 | 4)), /points into the header/));
  it('unknown flag bit', () => formatError(bytes(HEADER, be32(0x10000000 | 12)), /unknown flag/));
  it('self-referencing node', () => {
    // Root at 12 with one child 'a' whose reference is the root's own.
    formatError(bytes(HEADER, be32(0x20000000 | 12), [0x61, 0x61], be32(0x20000000 | 12)), /reached twice/);
  });
  it('two parents sharing a child', () => {
    const leaf = 12; // values [0 ""]
    const file = bytes(HEADER, be32(0x20000000 | 21), be32(1), be32(0), [0], [0x61, 0x62], be32(0x40000000 | leaf), be32(0x40000000 | leaf));
    formatError(file, /reached twice/);
  });
  it('child offset past the end', () => formatError(bytes(HEADER, be32(0x20000000 | 12), [0x61, 0x61], be32(0x40000000 | 9999)), /past the end/));
  it('child range cut short', () => formatError(bytes(HEADER, be32(0x20000000 | 12), [0x61, 0x63], be32(0)), /child reference runs past/));
  it('child range reversed', () => formatError(bytes(HEADER, be32(0x20000000 | 12), [0x63, 0x61], be32(0)), /first .* > last/));
  it('child range beyond ASCII', () => formatError(bytes(HEADER, be32(0x20000000 | 12), [0x80, 0x80], be32(0)), /beyond 7-bit ASCII/));
  it('unterminated prefix', () => formatError(bytes(HEADER, be32(0xc0000000 | 12), [0x61, 0x62]), /not NUL-terminated/));
  it('unterminated value', () => formatError(bytes(HEADER, be32(0x40000000 | 12), be32(1), be32(0), [0x61]), /not NUL-terminated/));
  it('a long chain whose keys would expand far beyond the file', () => {
    // 4,000 nodes in a chain, each a 15-byte prefix, one child and one value: a 128 KB file whose
    // keys add up to 128 MB. Within the depth and key-length limits, stopped by the key budget.
    const n = 4000;
    const size = 32;
    const file = new Uint8Array(12 + n * size);
    const view = new DataView(file.buffer);
    view.setUint32(0, 0xb007f457);
    view.setUint32(4, 0x00020001);
    view.setUint32(8, (0xe0000000 | 12) >>> 0);
    for (let i = 0; i < n; i++) {
      let pos = 12 + i * size;
      file.fill(0x78, pos, pos + 15);
      pos += 16;
      if (i < n - 1) {
        file[pos] = 0x78;
        file[pos + 1] = 0x78;
        view.setUint32(pos + 2, (0xe0000000 | (12 + (i + 1) * size)) >>> 0);
      }
      pos += 6;
      view.setUint32(pos, 1);
      view.setUint32(pos + 4, i);
      file[pos + 8] = 0x76;
    }
    view.setUint32(12 + (n - 2) * size + 18, (0xc0000000 | (12 + (n - 1) * size)) >>> 0);
    formatError(file, /more key text/);
  });
  it('value count larger than the file', () => formatError(bytes(HEADER, be32(0x40000000 | 12), be32(0xffffffff), be32(0), [0]), /cannot fit/));
});

describe('readIndex survives random corruption of a real-shaped index', () => {
  const t = new IndexTrie();
  for (const [k, v, p] of [
    ['pci:v00008086d*sv*sd*bc*sc*i*', 'e1000e', 3],
    ['pci:v00008086d00001234sv*', 'igb', 1],
    ['usb:v1234p*', 'usbx', 2],
    ['symbol:printk', 'vmlinux', 0],
    ['', 'root', 0],
  ] as const) t.insert(k, v, p);
  const good = t.serialize();
  it('every mutation yields a map or a FormatError, never another error', () => {
    let s = 12345;
    const rand = (n: number): number => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s % n;
    };
    let rejected = 0;
    for (let round = 0; round < 3000; round++) {
      const bad = good.slice(0, round % 7 === 0 ? rand(good.length) : good.length);
      for (let m = 1 + rand(4); m > 0 && bad.length > 0; m--) bad[rand(bad.length)] = rand(256);
      try {
        readIndex(bad, 'fuzz');
      } catch (e) {
        if (!(e instanceof FormatError)) throw e;
        rejected++;
      }
    }
    assert.ok(rejected > 100, `only ${rejected} of 3000 mutations rejected`);
  });
});

describe('diffIndexes', () => {
  it('names keys only on one side and keys whose values differ, in key order', () => {
    const a = new Map([
      ['b', [{ priority: 1, value: 'x' }]],
      ['a', [{ priority: 0, value: 'y' }]],
      ['same', [{ priority: 0, value: 's' }]],
    ]);
    const b = new Map([
      ['b', [{ priority: 2, value: 'x' }]],
      ['c', [{ priority: 0, value: 'z' }]],
      ['same', [{ priority: 0, value: 's' }]],
    ]);
    assert.deepEqual(diffIndexes(a, b), [
      '"a": only in first: [0 "y"]',
      '"b": first [1 "x"] second [2 "x"]',
      '"c": only in second: [0 "z"]',
    ]);
    assert.deepEqual(diffIndexes(a, a), []);
  });
});
