// Decompresses the .ko.xz / .ko.zst files of a parse batch with one run of the system's xz(1) /
// zstd(1), as a stream: the files' bytes go in back to back, and each file's image is handed to
// the parser as soon as the tool has vouched for it, then dropped (decompress → parse → next: one
// image alive at a time, however large the batch). lzma-native's prebuilt addon carries its own
// liblzma 5.2 build, which needed about twice the CPU time of Debian's liblzma 5.4 (xz-utils) on
// the amd64 tree: 300 modules took ~0.95 s of CPU in the addon and ~0.47 s through one `xz -dc`.
// fzstd (pure JavaScript) needed ~4 s of CPU for the amd64 .ko.zst tree where depmod with libzstd
// needs ~0.9 s. Whatever goes wrong here (no binary, a stream the tool refuses, sizes that do not
// add up) leaves the files not yet handed over to the caller, which decompresses them the usual way
// (src/module/decompress.ts: xz(1) per file, then the addon, else a typed error naming the file),
// which reports errors in the project's own terms.
//
// Both tools print the decompressed streams back to back, so each file's share is found from its
// uncompressed size, read from the file's own metadata without decompressing. A file's image is
// vouched for once the tool has gone on to the next file (it checks a stream's integrity, index and
// footer before it decodes the next one) or has exited cleanly after it.
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
// for every byte, a content size recorded, no dictionary) are streamed; anything else takes the
// usual path.
import { spawn } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { threadId } from 'node:worker_threads';
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

/** A decompressor run over many files in one stream. */
export interface StreamTool {
  /** The file's decompressed size when this tool may take it in a stream, else undefined. */
  size: (b: Uint8Array) => number | undefined;
  argv: readonly [string, readonly string[]];
  /** Exit statuses after which the whole output was written (xz: 2 is a warning, such as an unsupported check). */
  clean: readonly number[];
}

const XZ_TOOL: StreamTool = { size: xzUncompressedSize, argv: XZ_DECOMPRESS_COMMAND, clean: [0, 2] };
// A runtime with its own zstd decompresses in-process faster than through a pipe (decompress.ts).
const ZSTD_TOOL: StreamTool | undefined =
  nativeZstdDecompress === undefined ? { size: zstdContentSize, argv: ['zstd', ['--decompress', '--stdout', '--quiet', '--no-progress']], clean: [0] } : undefined;

/** The tool that takes `raw` in a stream, with its decompressed size; undefined for the usual path. */
export function streamToolFor(raw: Uint8Array, maxBytes = MAX_MODULE_BYTES): { tool: StreamTool; size: number } | undefined {
  for (const tool of [XZ_TOOL, ZSTD_TOOL]) {
    if (tool === undefined) continue;
    const size = tool.size(raw);
    // An empty image has no byte to show that the tool went past it.
    if (size !== undefined) return size > 0 && size <= maxBytes ? { tool, size } : undefined;
  }
  return undefined;
}

/**
 * The buffer images are written into, kept for the thread's next file: a fresh buffer per image
 * would stay resident until the next garbage collection, and a batch of them at once is what this
 * file exists to avoid. An image larger than KEEP_AT gets a buffer of its own, dropped with it, so
 * that the thread does not hold the largest module's size (amdgpu: 30 MB) to the end. A run started
 * while another holds it (merges of several kernels interleaved in one thread) makes its own.
 */
let imageBuffer = new Uint8Array(0);
let imageBufferHeld = false;
const KEEP_AT = 8 << 20;

function bufferFor(size: number, shared: boolean): Uint8Array {
  if (size > KEEP_AT || !shared) return Buffer.allocUnsafeSlow(size);
  if (imageBuffer.length < size) imageBuffer = Buffer.allocUnsafeSlow(Math.min(KEEP_AT, Math.max(size, 2 * imageBuffer.length, 1 << 20)));
  return imageBuffer.subarray(0, size);
}

/** Where the tool's output is read into (net.Socket's onread): one buffer, not a new one per read. */
let readBuffer: Buffer | undefined;
let channels = 0;

/**
 * A connected pair of Unix stream sockets (an abstract name: nothing on disk): the child writes
 * into `childEnd`, and `onData` sees its bytes in this thread's one read buffer. A pipe from spawn
 * makes a Buffer per read instead (xz writes 8 KiB at a time: ~60,000 per kernel), which stay
 * resident until the next garbage collection, tens of MB per thread. Undefined where no such
 * socket can be made: the caller reads a pipe then.
 */
async function outputChannel(onData: (bytes: Uint8Array) => void): Promise<{ childEnd: Socket; ours: Socket } | undefined> {
  const name = `\0depmod-tx-${process.pid}-${threadId}-${channels++}`;
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(name, resolve);
    });
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const buffer = (readBuffer ??= Buffer.allocUnsafeSlow(256 * 1024));
    const callback = (n: number): boolean => {
      onData(buffer.subarray(0, n));
      return true;
    };
    const ours = connect({ path: name, onread: { buffer, callback } });
    await new Promise<void>((resolve, reject) => {
      ours.once('error', reject);
      ours.once('connect', resolve);
    });
    const childEnd = await accepted;
    return { childEnd, ours };
  } catch {
    return undefined;
  } finally {
    server.close();
  }
}

/** A run of a stream tool, files added one at a time (startStream). */
export interface StreamRun {
  /**
   * The next file: its compressed bytes, and its decompressed size (StreamTool.size). The bytes are
   * the caller's again once this resolves: the tool has them (nothing is held here per file).
   */
  add(raw: Uint8Array, size: number): Promise<void>;
  /**
   * No more files. Resolves with true when the tool vouched for every image (a clean exit, every
   * size met); false when the caller must redo every file one by one (the tool is missing, refused
   * a stream, wrote more or less than the sizes say), a redone file's result replacing what `take`
   * made of it. Nothing short of a clean exit vouches for an image: a stream whose index
   * understates its data is refused only after its data was written, and those bytes would pass
   * for the next file's. Rejects only when `take` threw.
   */
  end(): Promise<boolean>;
}

/**
 * Starts `tool` on a stream of files: `take(k, image)` is called for the k-th file added as soon as
 * its image is complete; the image is only valid during the call (the next file's bytes overwrite
 * it), so `take` parses it and keeps nothing of it.
 */
export async function startStream(tool: StreamTool, take: (k: number, image: Uint8Array) => void): Promise<StreamRun> {
  const sizes: number[] = [];
  let k = 0; // the file whose bytes come next
  let image: Uint8Array | undefined; // file k's, once its first byte came
  let filled = 0;
  let failure: { err: unknown } | undefined; // take threw
  let broken = false;
  let stop = (): void => {};
  const sharedBuffer = !imageBufferHeld;
  imageBufferHeld = true;
  const onData = (chunk: Uint8Array): void => {
    if (broken) return;
    try {
      for (let p = 0; p < chunk.length; ) {
        if (k >= sizes.length) {
          broken = true; // more output than the sizes say
          stop();
          return;
        }
        image ??= bufferFor(sizes[k]!, sharedBuffer);
        const n = Math.min(chunk.length - p, image.length - filled);
        image.set(chunk.subarray(p, p + n), filled);
        filled += n;
        p += n;
        if (filled === image.length) {
          const complete = image;
          image = undefined;
          filled = 0;
          take(k++, complete);
        }
      }
    } catch (err) {
      broken = true;
      failure = { err };
      stop();
    }
  };

  const channel = await outputChannel(onData);
  const child = spawn(tool.argv[0], tool.argv[1], { stdio: ['pipe', channel?.childEnd ?? 'pipe', 'ignore'] });
  stop = () => child.kill();
  // The child holds its own copy of the socket: ours must go for the reader to see the end of its output.
  channel?.childEnd.destroy();
  const outputEnded = new Promise<void>((resolve) => {
    const stream = channel?.ours ?? child.stdout!;
    if (channel === undefined) stream.on('data', onData);
    stream.on('end', resolve);
    stream.on('error', () => resolve());
    stream.on('close', () => resolve());
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', () => resolve(null));
    child.on('exit', (code) => resolve(code));
  });
  // The tool stops reading a stream it refuses; its exit status, not EPIPE, says why.
  child.stdin!.on('error', () => {});
  return {
    add: (raw, size) => {
      sizes.push(size);
      return new Promise((resolve) => child.stdin!.write(raw, () => resolve()));
    },
    end: async () => {
      child.stdin!.end();
      const code = await exited;
      if (code !== null) await outputEnded;
      channel?.ours.destroy();
      if (sharedBuffer) imageBufferHeld = false;
      if (failure !== undefined) throw failure.err;
      return !broken && code !== null && tool.clean.includes(code) && k === sizes.length && image === undefined;
    },
  };
}

/** startStream over `files` at once (what each file's bytes are: `raw`; its decompressed size: `size`). */
export async function decompressStreamed(tool: StreamTool, files: ReadonlyArray<{ raw: Uint8Array; size: number }>, take: (k: number, image: Uint8Array) => void): Promise<boolean> {
  const run = await startStream(tool, take);
  for (const f of files) await run.add(f.raw, f.size);
  return run.end();
}
