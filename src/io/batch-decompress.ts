// Decompresses a batch of .ko.xz / .ko.zst images with one run of the system's xz(1) / zstd(1).
// lzma-native's prebuilt addon carries its own liblzma 5.2 build, which needed about twice the CPU
// time of Debian's liblzma 5.4 (xz-utils) on the amd64 tree: 300 modules took ~0.95 s of CPU in
// the addon and ~0.47 s through one `xz -dc`. fzstd (pure JavaScript) needed ~4 s of CPU for the
// amd64 .ko.zst tree where depmod with libzstd needs ~0.9 s. Whatever goes wrong here (no binary, a
// stream the tool refuses, sizes that do not add up) returns undefined for the files concerned, and
// the caller decompresses them the usual way (src/module/decompress.ts: xz(1) per file, then the
// addon, else a typed error naming the file), which reports errors in the project's own terms.
//
// Both tools print the decompressed streams back to back, so each file's share is found from its
// uncompressed size, read from the file's own metadata without decompressing.
//
// xz (The .xz File Format 1.0.4, sections 2.1.2 and 4):
//   stream header 12 bytes (magic FD 37 7A 58 5A 00) ... blocks ... index ... stream footer 12 bytes:
//   CRC32 (4), Backward Size (4, LE; index size = (value + 1) * 4), Stream Flags (2), magic "YZ".
//   Index: indicator 0x00, varint record count, per record varint unpadded size and varint
//   uncompressed size, padding to 4, CRC32. Varints: 7 bits per byte, low first, at most 9 bytes.
// zstd (RFC 8878 3.1.1): magic 28 B5 2F FD, frame header descriptor (FCS flag bits 7-6, single
//   segment bit 5, reserved bit 3, checksum bit 2, dictionary id flag bits 1-0), window descriptor
//   unless single segment, dictionary id (0/1/2/4 bytes), frame content size (0/1/2/4/8 bytes;
//   2-byte values are stored minus 256), then blocks with a 3-byte header (last bit 0, type bits
//   2-1: raw, RLE (1 byte of content), compressed, reserved; size bits 23-3), then an optional
//   4-byte checksum.
// Only files holding exactly one stream/frame (nothing before or after it, the metadata accounting
// for every byte, a content size recorded, no dictionary) are batched; anything else takes the
// usual path.
import { execFileSync } from 'node:child_process';
import { MAX_MODULE_BYTES, nativeZstdDecompress, XZ_DECOMPRESS_COMMAND } from '../module/decompress.ts';

const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] as const;
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd] as const;

function isXz(b: Uint8Array): boolean {
  for (let i = 0; i < XZ_MAGIC.length; i++) if (b[i] !== XZ_MAGIC[i]) return false;
  return true;
}

/** Uncompressed size of a single-stream .xz file, from its index; undefined when unsure. */
export function xzUncompressedSize(b: Uint8Array): number | undefined {
  const n = b.length;
  if (n < 12 + 12 + 8 || !isXz(b) || b[n - 2] !== 0x59 || b[n - 1] !== 0x5a) return undefined;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const indexSize = (dv.getUint32(n - 8, true) + 1) * 4;
  const indexStart = n - 12 - indexSize;
  if (indexStart < 12 || b[indexStart] !== 0x00) return undefined;
  let p = indexStart + 1;
  const varint = (): number | undefined => {
    let v = 0;
    for (let i = 0; i < 9; i++) {
      const byte = b[p++];
      if (byte === undefined || p > n - 12) return undefined;
      v += (byte & 0x7f) * 2 ** (7 * i);
      if (byte < 0x80) return Number.isSafeInteger(v) ? v : undefined;
    }
    return undefined;
  };
  const records = varint();
  if (records === undefined) return undefined;
  let blocks = 0;
  let total = 0;
  for (let r = 0; r < records; r++) {
    const unpadded = varint();
    const size = varint();
    if (unpadded === undefined || size === undefined) return undefined;
    blocks += Math.ceil(unpadded / 4) * 4;
    total += size;
  }
  // Every byte between stream header and index must be a block the index lists.
  if (12 + blocks !== indexStart) return undefined;
  return total;
}

/** Content size of a single-frame .zst file, from its frame header; undefined when unsure. */
export function zstdContentSize(b: Uint8Array): number | undefined {
  const n = b.length;
  for (let i = 0; i < 4; i++) if (b[i] !== ZSTD_MAGIC[i]) return undefined;
  const fhd = b[4];
  if (fhd === undefined || fhd & 0x08) return undefined;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  if (fhd & 3) return undefined; // a dictionary the tool would not have
  if (fcsFlag === 0 && !single) return undefined; // size not recorded
  let p = 5 + (single ? 0 : 1);
  const fcsBytes = [single ? 1 : 0, 2, 4, 8][fcsFlag]!;
  if (p + fcsBytes > n) return undefined;
  let size = 0;
  for (let i = fcsBytes - 1; i >= 0; i--) size = size * 256 + b[p + i]!;
  if (fcsBytes === 2) size += 256;
  if (!Number.isSafeInteger(size)) return undefined;
  p += fcsBytes;
  for (;;) {
    if (p + 3 > n) return undefined;
    const h = b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16);
    const type = (h >> 1) & 3;
    if (type === 3) return undefined;
    p += 3 + (type === 1 ? 1 : h >>> 3);
    if (h & 1) break;
  }
  p += fhd & 0x04 ? 4 : 0;
  return p === n ? size : undefined;
}

interface Tool {
  size: (b: Uint8Array) => number | undefined;
  argv: readonly [string, readonly string[]];
}

const TOOLS: Tool[] = [
  { size: xzUncompressedSize, argv: XZ_DECOMPRESS_COMMAND },
  // A runtime with its own zstd decompresses in-process faster than through a pipe (decompress.ts).
  ...(nativeZstdDecompress === undefined ? [{ size: zstdContentSize, argv: ['zstd', ['--decompress', '--stdout', '--quiet', '--no-progress']] } satisfies Tool] : []),
];

/**
 * Decompressed images for the .xz and .zst inputs of a batch (same positions; undefined for inputs that
 * are not .xz, not eligible, or when the xz run failed). Inputs undefined are passed over.
 */
export function decompressBatch(inputs: ReadonlyArray<Uint8Array | undefined>, maxBytes = MAX_MODULE_BYTES): Array<Uint8Array | undefined> {
  const out: Array<Uint8Array | undefined> = new Array(inputs.length).fill(undefined);
  for (const tool of TOOLS) runTool(tool, inputs, maxBytes, out);
  return out;
}

function runTool(tool: Tool, inputs: ReadonlyArray<Uint8Array | undefined>, maxBytes: number, out: Array<Uint8Array | undefined>): void {
  const picked: number[] = [];
  const sizes: number[] = [];
  let total = 0;
  inputs.forEach((b, i) => {
    if (b === undefined) return;
    const size = tool.size(b);
    if (size === undefined || size > maxBytes) return;
    picked.push(i);
    sizes.push(size);
    total += size;
  });
  if (picked.length === 0) return;
  let result: Buffer;
  try {
    result = execFileSync(tool.argv[0], tool.argv[1], {
      input: Buffer.concat(picked.map((i) => inputs[i]!)),
      maxBuffer: total + 1,
      stdio: ['pipe', 'pipe', 'ignore'],
    });
  } catch {
    return;
  }
  if (result.length !== total) return;
  let o = 0;
  picked.forEach((i, k) => {
    out[i] = result.subarray(o, o + sizes[k]!);
    o += sizes[k]!;
  });
}
