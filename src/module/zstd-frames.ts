// Whether kmod 34 can size a .ko.zst at all. kmod 34 decompresses a zstd module in one call into a
// buffer of the size its first frame declares (libkmod-file-zstd.c, kmod_file_load_zstd:
// ZSTD_getFrameContentSize, then ZSTD_decompress): a first frame without a content size (written by
// a streaming compressor), one declaring 0, or a header libzstd cannot read makes the load fail
// ("zstd: Failed to determine decompression size"), and depmod then lists the module with nothing
// in it. kmod 33 and older decompress as a stream and read such files. What else makes kmod 34's
// one call fail (further frames, a cut stream) is zstd-kmod.ts's.
// Frame header: RFC 8878 §3.1.1 (magic 28 B5 2F FD; descriptor: content size flag bits 7-6,
// single segment bit 5, reserved bit 3, dictionary id flag bits 1-0; window descriptor unless
// single segment; 2-byte sizes are stored minus 256). Pure: bytes in, a verdict out.

/** libzstd's ZSTD_WINDOWLOG_MAX on 64-bit builds: a larger window makes the header unreadable. */
const WINDOWLOG_MAX = 31;

/** ZSTD_getFrameContentSize of the stream's first frame is a size above 0 (what kmod 34 needs). */
export function zstdFrameSizeKnown(b: Uint8Array): boolean {
  if (b.length < 5 || b[0] !== 0x28 || b[1] !== 0xb5 || b[2] !== 0x2f || b[3] !== 0xfd) return false;
  const fhd = b[4]!;
  const single = (fhd >> 5) & 1;
  const dictBytes = [0, 1, 2, 4][fhd & 3]!;
  const fcsBytes = [single ? 1 : 0, 2, 4, 8][fhd >> 6]!;
  const sizeAt = 5 + (single ? 0 : 1) + dictBytes;
  if (sizeAt + fcsBytes > b.length || fhd & 0x08 || fcsBytes === 0) return false;
  if (!single && 10 + (b[5]! >> 3) > WINDOWLOG_MAX) return false;
  let fcs = 0;
  for (let i = fcsBytes - 1; i >= 0; i--) fcs = fcs * 256 + b[sizeAt + i]!;
  return fcsBytes === 2 || fcs > 0;
}
