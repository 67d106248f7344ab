// Decompresses a batch of .ko.xz images with one run of the system's xz(1). lzma-native's prebuilt
// addon carries its own liblzma 5.2 build, which needed about twice the CPU time of Debian's
// liblzma 5.4 (xz-utils) on the amd64 tree: 300 modules took ~0.95 s of CPU in the addon and
// ~0.47 s through one `xz -dc`. Whatever goes wrong here (no xz binary, a stream xz refuses, sizes
// that do not add up) returns undefined for the files concerned, and the caller decompresses
// them the usual way, which reports errors in the project's own terms.
//
// xz prints the decompressed streams back to back, so each file's share is found from its
// uncompressed size, read from the stream's own index without decompressing (The .xz File
// Format 1.0.4, sections 2.1.2 and 4):
//   stream header 12 bytes (magic FD 37 7A 58 5A 00) ... blocks ... index ... stream footer 12 bytes:
//   CRC32 (4), Backward Size (4, LE; index size = (value + 1) * 4), Stream Flags (2), magic "YZ".
//   Index: indicator 0x00, varint record count, per record varint unpadded size and varint
//   uncompressed size, padding to 4, CRC32. Varints: 7 bits per byte, low first, at most 9 bytes.
// Only files holding exactly one stream (header at 0, footer at the end, the index accounting for
// every byte in between) are batched; anything else takes the usual path.
import { execFileSync } from 'node:child_process';
import { MAX_MODULE_BYTES } from '../module/decompress.ts';

const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] as const;

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

/**
 * Decompressed images for the .xz inputs of a batch (same positions; undefined for inputs that
 * are not .xz, not eligible, or when the xz run failed). Inputs undefined are passed over.
 */
export function unxzBatch(inputs: ReadonlyArray<Uint8Array | undefined>, maxBytes = MAX_MODULE_BYTES): Array<Uint8Array | undefined> {
  const out: Array<Uint8Array | undefined> = new Array(inputs.length).fill(undefined);
  const picked: number[] = [];
  const sizes: number[] = [];
  let total = 0;
  inputs.forEach((b, i) => {
    if (b === undefined) return;
    const size = xzUncompressedSize(b);
    if (size === undefined || size > maxBytes) return;
    picked.push(i);
    sizes.push(size);
    total += size;
  });
  if (picked.length === 0) return out;
  let result: Buffer;
  try {
    result = execFileSync('xz', ['--decompress', '--stdout', '--format=xz', '--threads=1', '--quiet'], {
      input: Buffer.concat(picked.map((i) => inputs[i]!)),
      maxBuffer: total + 1,
      stdio: ['pipe', 'pipe', 'ignore'],
    });
  } catch {
    return out;
  }
  if (result.length !== total) return out;
  let o = 0;
  picked.forEach((i, k) => {
    out[i] = result.subarray(o, o + sizes[k]!);
    o += sizes[k]!;
  });
  return out;
}
