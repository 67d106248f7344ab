// XXH64 (seed 0), the content checksum of a zstd frame (RFC 8878 §3.1.1: the low 4 bytes of
// XXH64 of the decompressed content, little-endian). libzstd checks it and fails the stream when
// it differs, and so does kmod with it; fzstd, the decoder used where neither Node's own zstd nor
// zstd(1) is available, does not. Algorithm: xxHash's XXH64 specification (doc/xxhash_spec.md).
// 64-bit values are pairs of unsigned 32-bit halves (h, l): BigInt costs far more per round. Pure.

const P1H = 0x9e3779b1, P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d, P2L = 0x27d4eb4f;
const P3H = 0x165667b1, P3L = 0x9e3779f9;
const P4H = 0x85ebca77, P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f, P5L = 0x165667c5;

/** High 32 bits of the 64-bit product of two unsigned 32-bit numbers. */
function mulhi(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const t1 = a1 * b0 + ((a0 * b0) >>> 16);
  const t2 = a0 * b1 + (t1 & 0xffff);
  return (a1 * b1 + (t1 >>> 16) + (t2 >>> 16)) >>> 0;
}

/** A 64-bit accumulator: s[i] high, s[i + 1] low. */
type Acc = Uint32Array;

/** s[i] = s[i] * (bh:bl) mod 2^64. */
function mulInto(s: Acc, i: number, bh: number, bl: number): void {
  const h = s[i]!, l = s[i + 1]!;
  s[i] = (mulhi(l, bl) + Math.imul(h, bl) + Math.imul(l, bh)) >>> 0;
  s[i + 1] = Math.imul(l, bl) >>> 0;
}

function addInto(s: Acc, i: number, bh: number, bl: number): void {
  const l = s[i + 1]! + bl;
  s[i] = (s[i]! + bh + (l > 0xffffffff ? 1 : 0)) >>> 0;
  s[i + 1] = l >>> 0;
}

function rotlInto(s: Acc, i: number, n: number): void {
  let h = s[i]!, l = s[i + 1]!;
  if (n >= 32) {
    [h, l] = [l, h];
    n -= 32;
  }
  if (n === 0) {
    s[i] = h;
    s[i + 1] = l;
    return;
  }
  s[i] = ((h << n) | (l >>> (32 - n))) >>> 0;
  s[i + 1] = ((l << n) | (h >>> (32 - n))) >>> 0;
}

/** s[i] = round(s[i], input) = rotl(s[i] + input * P2, 31) * P1; uses s[t] as scratch. */
function roundInto(s: Acc, i: number, inh: number, inl: number, t: number): void {
  s[t] = inh;
  s[t + 1] = inl;
  mulInto(s, t, P2H, P2L);
  addInto(s, i, s[t]!, s[t + 1]!);
  rotlInto(s, i, 31);
  mulInto(s, i, P1H, P1L);
}

/** XXH64 of `b` with seed 0, as [high, low] 32-bit halves. */
export function xxh64(b: Uint8Array): [number, number] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const len = b.length;
  // 0..7: the four lanes; 8: h; 10: scratch; 12: scratch.
  const s = new Uint32Array(14);
  let p = 0;
  const H = 8, T = 10, U = 12;
  if (len >= 32) {
    // Lanes start at P1 + P2, P2, 0, -P1 (seed 0).
    s[0] = P1H; s[1] = P1L;
    addInto(s, 0, P2H, P2L);
    s[2] = P2H; s[3] = P2L;
    s[6] = ~P1H >>> 0; s[7] = ~P1L >>> 0;
    addInto(s, 6, 0, 1);
    for (const limit = len - 32; p <= limit; p += 32) {
      for (let lane = 0; lane < 4; lane++) roundInto(s, 2 * lane, dv.getUint32(p + 8 * lane + 4, true), dv.getUint32(p + 8 * lane, true), T);
    }
    // h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18), then one merge round per lane.
    s[H] = 0; s[H + 1] = 0;
    for (const [lane, n] of [[0, 1], [1, 7], [2, 12], [3, 18]] as const) {
      s[T] = s[2 * lane]!; s[T + 1] = s[2 * lane + 1]!;
      rotlInto(s, T, n);
      addInto(s, H, s[T]!, s[T + 1]!);
    }
    for (let lane = 0; lane < 4; lane++) {
      s[U] = 0; s[U + 1] = 0;
      roundInto(s, U, s[2 * lane]!, s[2 * lane + 1]!, T);
      s[H] = (s[H]! ^ s[U]!) >>> 0;
      s[H + 1] = (s[H + 1]! ^ s[U + 1]!) >>> 0;
      mulInto(s, H, P1H, P1L);
      addInto(s, H, P4H, P4L);
    }
  } else {
    s[H] = P5H; s[H + 1] = P5L;
  }
  addInto(s, H, Math.floor(len / 0x1_0000_0000) >>> 0, len >>> 0);
  for (; p + 8 <= len; p += 8) {
    s[U] = 0; s[U + 1] = 0;
    roundInto(s, U, dv.getUint32(p + 4, true), dv.getUint32(p, true), T);
    s[H] = (s[H]! ^ s[U]!) >>> 0;
    s[H + 1] = (s[H + 1]! ^ s[U + 1]!) >>> 0;
    rotlInto(s, H, 27);
    mulInto(s, H, P1H, P1L);
    addInto(s, H, P4H, P4L);
  }
  if (p + 4 <= len) {
    s[U] = 0; s[U + 1] = dv.getUint32(p, true);
    mulInto(s, U, P1H, P1L);
    s[H] = (s[H]! ^ s[U]!) >>> 0;
    s[H + 1] = (s[H + 1]! ^ s[U + 1]!) >>> 0;
    rotlInto(s, H, 23);
    mulInto(s, H, P2H, P2L);
    addInto(s, H, P3H, P3L);
    p += 4;
  }
  for (; p < len; p++) {
    s[U] = 0; s[U + 1] = b[p]!;
    mulInto(s, U, P5H, P5L);
    s[H] = (s[H]! ^ s[U]!) >>> 0;
    s[H + 1] = (s[H + 1]! ^ s[U + 1]!) >>> 0;
    rotlInto(s, H, 11);
    mulInto(s, H, P1H, P1L);
  }
  // Avalanche: h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32.
  s[H + 1] = (s[H + 1]! ^ (s[H]! >>> 1)) >>> 0;
  mulInto(s, H, P2H, P2L);
  // h >> 29 spans both halves: its low word is (hh << 3) | (hl >>> 29), its high word hh >>> 29.
  s[H + 1] = (s[H + 1]! ^ ((s[H]! << 3) | (s[H + 1]! >>> 29))) >>> 0;
  s[H] = (s[H]! ^ (s[H]! >>> 29)) >>> 0;
  mulInto(s, H, P3H, P3L);
  s[H + 1] = (s[H + 1]! ^ s[H]!) >>> 0;
  return [s[H]!, s[H + 1]!];
}
