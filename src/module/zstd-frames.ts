// Whether kmod 34 can load a .ko.zst at all. kmod 34 decompresses a zstd module in one call into a
// buffer of the size its first frame declares (libkmod-file-zstd.c, kmod_file_load_zstd:
// ZSTD_getFrameContentSize, then ZSTD_decompress): a first frame without a content size (written by
// a streaming compressor), one declaring 0, or further data frames after it make the load fail
// ("zstd: Failed to determine decompression size" / "Destination buffer is too small"), and depmod
// then lists the module with nothing in it. kmod 33 and older decompress as a stream and read them.
// Frame layout: RFC 8878 §3.1.1 (magic 28 B5 2F FD; skippable frames 0x184D2A5?, 4-byte size).
// Pure: bytes in, a verdict out. A stream that is not valid zstd is the decoder's to report.

function u32(b: Uint8Array, o: number): number {
  return ((b[o] ?? 0) | ((b[o + 1] ?? 0) << 8) | ((b[o + 2] ?? 0) << 16) | ((b[o + 3] ?? 0) << 24)) >>> 0;
}

/** True when the zstd stream is one sized data frame (plus skippable frames): what kmod 34 loads. */
export function zstdLoadableInOneCall(b: Uint8Array): boolean {
  if (b.length < 6 || u32(b, 0) !== 0xfd2fb528) return false;
  const fhd = b[4]!;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const dictFlag = fhd & 3;
  const fcsBytes = [single ? 1 : 0, 2, 4, 8][fcsFlag]!;
  if (fcsBytes === 0) return false;
  let q = 5 + (single ? 0 : 1) + [0, 1, 2, 4][dictFlag]!;
  if (q + fcsBytes > b.length) return false;
  const fcs = fcsBytes === 1 ? b[q]! : fcsBytes === 2 ? (b[q]! | (b[q + 1]! << 8)) + 256 : fcsBytes === 4 ? u32(b, q) : u32(b, q + 4) * 0x1_0000_0000 + u32(b, q);
  if (fcs === 0) return false;
  q += fcsBytes;
  // Walk the frame's blocks to where it ends; after it, only skippable frames may follow.
  for (;;) {
    if (q + 3 > b.length) return false;
    const h = b[q]! | (b[q + 1]! << 8) | (b[q + 2]! << 16);
    q += 3 + (((h >> 1) & 3) === 1 ? 1 : h >>> 3);
    if (h & 1) break;
  }
  q += (fhd >> 2) & 1 ? 4 : 0;
  while (q < b.length) {
    if (q + 8 > b.length || (u32(b, q) & 0xfffffff0) !== 0x184d2a50) return false;
    q += 8 + u32(b, q + 4);
  }
  return true;
}
