// kmod's string hash table (shared/hash.c in kmod v30), reduced to the one property depmod's output
// depends on: iteration order. A table has a power-of-two bucket count; a key lands in bucket
// hash_superfast(key) & (buckets - 1); each bucket keeps its entries sorted by strcmp; iteration
// walks buckets in index order. depmod iterates two such tables when it writes:
//   - modules_by_name (512 buckets): the module array starts in this order (depmod_modules_build_array),
//     so modules missing from modules.order appear in modules.dep etc. in this order, not in the
//     order the directory walk found them;
//   - symbols (2,048 buckets): the line order of modules.symbols and the insertion order of
//     modules.symbols.bin (output_symbols, output_symbols_bin).

export const MODULES_BY_NAME_BUCKETS = 512;
export const SYMBOLS_BUCKETS = 2048;

const encoder = new TextEncoder();

/** Byte at i as a C `char` on x86 (signed): kmod's tail handling sign-extends it. */
function schar(b: number): number {
  return b >= 0x80 ? b - 0x100 : b;
}

/**
 * Paul Hsieh's SuperFastHash as kmod v30 computes it on little-endian hosts (the 16-bit reads are
 * get_unaligned(uint16_t), i.e. host order; Debian amd64 is little-endian). Returns a uint32.
 */
export function hashSuperfast(key: Uint8Array): number {
  return hashSuperfastRange(key, 0, key.length);
}

/** hashSuperfast of bytes start..end of `key`. */
export function hashSuperfastRange(key: Uint8Array, start: number, end: number): number {
  let len = end - start;
  let hash = len >>> 0;
  const rem = len & 3;
  len >>>= 2;
  let p = start;
  for (; len > 0; len--) {
    hash = (hash + (key[p]! | (key[p + 1]! << 8))) >>> 0;
    const tmp = (((key[p + 2]! | (key[p + 3]! << 8)) << 11) ^ hash) >>> 0;
    hash = ((hash << 16) ^ tmp) >>> 0;
    p += 4;
    hash = (hash + (hash >>> 11)) >>> 0;
  }
  switch (rem) {
    case 3:
      hash = (hash + (key[p]! | (key[p + 1]! << 8))) >>> 0;
      hash = (hash ^ (hash << 16)) >>> 0;
      hash = (hash ^ (schar(key[p + 2]!) << 18)) >>> 0;
      hash = (hash + (hash >>> 11)) >>> 0;
      break;
    case 2:
      hash = (hash + (key[p]! | (key[p + 1]! << 8))) >>> 0;
      hash = (hash ^ (hash << 11)) >>> 0;
      hash = (hash + (hash >>> 17)) >>> 0;
      break;
    case 1:
      hash = (hash + schar(key[p]!)) >>> 0;
      hash = (hash ^ (hash << 10)) >>> 0;
      hash = (hash + (hash >>> 1)) >>> 0;
      break;
  }
  hash = (hash ^ (hash << 3)) >>> 0;
  hash = (hash + (hash >>> 5)) >>> 0;
  hash = (hash ^ (hash << 4)) >>> 0;
  hash = (hash + (hash >>> 17)) >>> 0;
  hash = (hash ^ (hash << 25)) >>> 0;
  hash = (hash + (hash >>> 6)) >>> 0;
  return hash;
}

// Reused scratch for ASCII keys (nearly every module and symbol name): no allocation per key.
let scratch = new Uint8Array(256);

function keyBytes(key: string): Uint8Array {
  const n = key.length;
  if (n > scratch.length) scratch = new Uint8Array(n * 2);
  for (let i = 0; i < n; i++) {
    const c = key.charCodeAt(i);
    if (c >= 0x80) return encoder.encode(key);
    scratch[i] = c;
  }
  return scratch.subarray(0, n);
}

/** The bucket kmod's hash_add puts `key` in, for a table of `buckets` (a power of two). */
export function kmodBucket(key: string, buckets: number): number {
  return hashSuperfast(keyBytes(key)) & (buckets - 1);
}

/** strcmp order of two keys (byte order of their UTF-8 encodings; equal to code unit order outside surrogates). */
export function strcmpOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The order hash_iter_next visits `items` in, when each was added to a kmod hash table of `buckets`
 * under `key(item)` (keys unique): bucket index, then strcmp order inside the bucket.
 */
export function kmodHashIterationOrder<T>(items: readonly T[], key: (item: T) => string, buckets: number): T[] {
  const decorated = items.map((item) => {
    const k = key(item);
    return { item, k, b: kmodBucket(k, buckets) };
  });
  decorated.sort((x, y) => x.b - y.b || strcmpOrder(x.k, y.k));
  return decorated.map((d) => d.item);
}
