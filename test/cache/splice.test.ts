// encodeCache copies the bytes of entries it decoded itself (an update reuses almost all of them);
// the result must decode to exactly what was passed in, whichever entries were copied.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeCache, encodeCache, type CacheContents, type CacheEntry } from '../../src/cache/format.ts';

function entry(i: number, tag = ''): CacheEntry {
  return {
    path: `kernel/drivers/${tag}m${i}.ko.xz`,
    fp: { size: BigInt(1000 + i), mtimeNs: 1700000000123456789n + BigInt(i), ctimeNs: 1700000000999999999n, ino: BigInt(2 ** 40 + i) },
    record: {
      name: `${tag}m${i}`,
      modinfo: [
        ['alias', `pci:v0000${i}d*`],
        ['description', `Grüße ${tag}`],
      ],
      exports: [{ name: `${tag}sym_${i}`, crc: i === 3 ? 2 ** 64 : 0xdeadbeef }],
      imports: [
        { name: `${tag}sym_${Math.max(0, i - 1)}`, crc: 0x12345678, weak: false },
        { name: 'printk', crc: 0, weak: i % 2 === 0 },
      ],
    },
  };
}

function contents(entries: CacheEntry[]): CacheContents {
  return { header: { kver: 'k', moddir: '/lib/modules/k', inputsDigest: 'd', dirs: {}, outputs: { 'modules.dep': '1:2:3' } }, entries };
}

/** A deep copy: no object of it was decoded, so encodeCache has nothing to copy. */
const plain = (c: CacheContents): CacheContents => structuredClone(c);

test('re-encoding a decoded cache unchanged gives the same bytes as a fresh encode', () => {
  const first = encodeCache(contents(Array.from({ length: 40 }, (_, i) => entry(i))));
  const decoded = decodeCache(first, 'a');
  const again = encodeCache(decoded);
  assert.deepEqual(Buffer.from(again), Buffer.from(first));
  assert.deepEqual(Buffer.from(encodeCache(plain(decoded))), Buffer.from(first));
});

test('added, removed and replaced entries next to copied ones decode to what was passed', () => {
  const decoded = decodeCache(encodeCache(contents(Array.from({ length: 40 }, (_, i) => entry(i)))), 'a');
  const kept = decoded.entries.filter((_, i) => i % 7 !== 3); // removed: their strings stay unused
  const replaced = kept[5]!;
  replaced.record = entry(99, 'new-').record; // same entry object, new record: must not be copied
  const entries = [...kept.slice(0, 10), entry(1, 'added-'), entry(2, 'added-'), ...kept.slice(10)];
  const c = { ...decoded, header: { ...decoded.header, inputsDigest: 'changed' }, entries };
  const expected = plain(c);
  const bytes = encodeCache(c);
  assert.deepEqual(decodeCache(bytes, 'b'), expected);
  // A second generation copies entries that were themselves added by the first.
  const second = decodeCache(bytes, 'b');
  second.entries.push(entry(7, 'third-'));
  const expected2 = plain(second);
  assert.deepEqual(decodeCache(encodeCache(second), 'c'), expected2);
});

test('entries decoded from two different caches are encoded correctly', () => {
  const a = decodeCache(encodeCache(contents(Array.from({ length: 10 }, (_, i) => entry(i, 'a-')))), 'a');
  const b = decodeCache(encodeCache(contents(Array.from({ length: 6 }, (_, i) => entry(i, 'b-')))), 'b');
  const c = contents([...a.entries, ...b.entries]);
  const expected = plain(c);
  assert.deepEqual(decodeCache(encodeCache(c), 'c'), expected);
});

test('a fingerprint object replaced after decoding is written, not the old bytes', () => {
  const decoded = decodeCache(encodeCache(contents([entry(1), entry(2), entry(3)])), 'a');
  decoded.entries[1]!.fp = { size: 1n, mtimeNs: 2n, ctimeNs: 3n, ino: 4n };
  assert.deepEqual(decodeCache(encodeCache(decoded), 'b').entries[1]!.fp, { size: 1n, mtimeNs: 2n, ctimeNs: 3n, ino: 4n });
});

test('a new entry reuses the ids of strings the old table has: the table grows only by strings it lacks', () => {
  const decoded = decodeCache(encodeCache(contents(Array.from({ length: 40 }, (_, i) => entry(i)))), 'a');
  // entry(5) again under another path: every other string of it (name, alias, description, symbols) exists.
  const twin: CacheEntry = { ...entry(5), path: 'extra/m5.ko.xz' };
  const c = { ...decoded, entries: [...decoded.entries, twin] };
  const spliced = encodeCache(c);
  assert.deepEqual(decodeCache(spliced, 'b'), plain(c));
  // A fresh encode interns every string once; the spliced one may only add the new path (same size).
  assert.equal(spliced.length, encodeCache(plain(c)).length);
});
