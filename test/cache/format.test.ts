import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeCache, decodeCacheHeader, encodeCache, type CacheContents } from '../../src/cache/format.ts';
import { FormatError } from '../../src/errors.ts';

function sample(n: number): CacheContents {
  const entries = [];
  for (let i = 0; i < n; i++) {
    entries.push({
      path: `kernel/drivers/m${i}.ko.xz`,
      fp: { size: BigInt(1000 + i), mtimeNs: 1700000000123456789n + BigInt(i), ctimeNs: 1700000000999999999n, ino: BigInt(2 ** 40 + i) },
      record: {
        name: `m${i}`,
        modinfo: [
          ['alias', `pci:v0000${i}d*`],
          ['description', 'Grüße, ü — UTF-8 survives'],
          ['depends', i > 0 ? `m${i - 1}` : ''],
        ] as Array<[string, string]>,
        exports: [{ name: `sym_${i}`, crc: 0xdeadbeef }],
        imports: [
          { name: `sym_${Math.max(0, i - 1)}`, crc: 0x12345678, weak: false },
          { name: 'printk', crc: 0, weak: true },
        ],
      },
    });
  }
  return {
    header: { kver: '6.1.0-1-amd64', moddir: '/lib/modules/6.1.0-1-amd64', inputsDigest: 'abc', dirs: { '': { mtimeNs: '1', entries: [{ name: 'kernel', type: 'dir' }] } }, outputs: {} },
    entries,
  };
}

test('cache round-trips records, fingerprints and the header', () => {
  const c = sample(50);
  const bytes = encodeCache(c);
  assert.deepEqual(decodeCache(bytes, 'x.cache'), c);
  assert.deepEqual(decodeCacheHeader(bytes, 'x.cache').header, c.header);
});

test('an empty cache round-trips', () => {
  const c = sample(0);
  assert.deepEqual(decodeCache(encodeCache(c), 'x.cache'), c);
});

test('every single-byte corruption and every truncation is a FormatError, never trusted', () => {
  const bytes = encodeCache(sample(3));
  for (let i = 0; i < bytes.length; i += 7) {
    const bad = bytes.slice();
    bad[i] = bad[i]! ^ 0x40;
    assert.throws(() => decodeCache(bad, 'k.cache'), (e: unknown) => e instanceof FormatError && e.message.startsWith('k.cache: '));
  }
  for (const len of [0, 10, 40, bytes.length - 1]) {
    assert.throws(() => decodeCache(bytes.subarray(0, len), 'k.cache'), FormatError);
  }
});

test("kmod's (uint64_t)-1 CRC (2^64 as a double) survives exactly", () => {
  const c = sample(1);
  c.entries[0]!.record.exports[0]!.crc = 0xffff_ffff_ffff_ffff;
  assert.equal(decodeCache(encodeCache(c), 'x').entries[0]!.record.exports[0]!.crc, 2 ** 64);
});
