// Module files' decompression (which paths are modules, and their names: suffixes.ts).
// Decompression (libkmod/libkmod-file.c: kmod_file_open) is chosen by the leading magic bytes,
// not by the suffix, as kmod does: zstd 28 b5 2f fd, xz fd '7zXZ' 00, gzip 1f 8b; anything else
// is read as is. Output is capped at MAX_MODULE_BYTES so a crafted file cannot exhaust memory.
// gzip (zlib) and zstd (Node's own or fzstd) decode in-process on every architecture; xz goes
// through xz(1) as a filter process (bytes in, bytes out, no file opened: the core stays free of
// I/O in the sense that matters) or the optional lzma-native addon, see "xz decoders" below.
import { spawn } from 'node:child_process';
import { Duplex } from 'node:stream';
import * as zlib from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import { DecoderUnavailableError, FormatError } from '../errors.ts';

export { isModulePath, modnameFromPath, MODULE_SUFFIXES, moduleSuffix, type ModuleSuffix } from './suffixes.ts';

/**
 * Largest decompressed module accepted: 256 MiB. The biggest Debian 6.1 amd64 module (amdgpu.ko) is ~19 MiB;
 * anything past the cap is a decompression bomb or not a module.
 */
export const MAX_MODULE_BYTES = 256 * 1024 * 1024;

export type Compression = 'none' | 'gzip' | 'xz' | 'zstd';

/** kmod_file_open's detection by magic. */
export function detectCompression(bytes: Uint8Array): Compression {
  const b0 = bytes[0];
  const b1 = bytes[1];
  if (b0 === 0x28 && b1 === 0xb5 && bytes[2] === 0x2f && bytes[3] === 0xfd) return 'zstd';
  if (b0 === 0xfd && b1 === 0x37 && bytes[2] === 0x7a && bytes[3] === 0x58 && bytes[4] === 0x5a && bytes[5] === 0x00) return 'xz';
  if (b0 === 0x1f && b1 === 0x8b) return 'gzip';
  return 'none';
}

export interface DecompressOptions {
  /** Output cap in bytes (default MAX_MODULE_BYTES); tests lower it. */
  maxBytes?: number;
  /** .xz decoders to try, in order (default XZ_DECODERS); tests pick one. */
  xzDecoders?: readonly XzDecoder[];
}

/**
 * The module's ELF image. Throws FormatError naming `file` for corrupt or oversized streams, and
 * DecoderUnavailableError naming it when it is .xz and this system has no xz decoder.
 */
export async function decompressModule(bytes: Uint8Array, file: string, opts: DecompressOptions = {}): Promise<Uint8Array> {
  const max = opts.maxBytes ?? MAX_MODULE_BYTES;
  switch (detectCompression(bytes)) {
    case 'none':
      if (bytes.byteLength > max) throw tooBig(file, max);
      return bytes;
    case 'gzip':
      return gunzipCapped(bytes, file, max);
    case 'xz':
      return unxzCapped(bytes, file, max, opts.xzDecoders ?? XZ_DECODERS);
    case 'zstd':
      return unzstdCapped(bytes, file, max);
  }
}

/** A stream that decompresses to more than the cap allows (a bomb, or not a module). */
export class DecompressedTooLargeError extends FormatError {}

/** An .xz stream the decoder refused; `complaint` is the decoder's own words (xz(1)'s message without its prefix). */
export class CorruptXzError extends FormatError {
  readonly complaint: string;
  constructor(file: string, complaint: string, options?: { cause?: unknown }) {
    super(file, `corrupt xz stream: ${complaint}`, undefined, options);
    this.complaint = complaint;
  }
}

function tooBig(file: string, max: number): FormatError {
  return new DecompressedTooLargeError(file, `decompressed module exceeds ${max} bytes (decompression bomb?)`);
}

function gunzipCapped(bytes: Uint8Array, file: string, max: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    zlib.gunzip(bytes, { maxOutputLength: max }, (err, out) => {
      if (err === null) return resolve(new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
      const code = (err as { code?: string }).code;
      if (code === 'ERR_BUFFER_TOO_LARGE') return reject(tooBig(file, max));
      reject(new FormatError(file, `corrupt gzip stream: ${err.message}`, undefined, { cause: err }));
    });
  });
}

// xz decoders, in order (measurements in docs/packagers.md, "Architectures"):
//   1. xz(1) (xz-utils, a dependency of the packages): a filter process, image bytes in on stdin and
//      out on stdout, reading no file. Debian's liblzma 5.4 in it is faster than the addon's bundled
//      5.2 even for one file: e1000e.ko.xz 16 ms against 42 ms (15 of them loading the addon),
//      amdgpu.ko.xz 235 ms against 540 ms.
//   2. lzma-native, where it is installed and its prebuild loads (npm installs on linux-x64/arm64):
//      for a system without xz(1).
//   3. neither: DecoderUnavailableError naming the file. A missing or foreign addon never surfaces
//      as a module-loader message.
// The batch path (src/io/batch-decompress.ts) runs the same xz(1) command over many files at once.

/** The .xz decoders, in the order they are tried. */
export type XzDecoder = 'xz(1)' | 'lzma-native';
export const XZ_DECODERS: readonly XzDecoder[] = ['xz(1)', 'lzma-native'];

/** The xz(1) command line that decompresses one or more concatenated .xz streams to stdout. */
export const XZ_DECOMPRESS_COMMAND: readonly [string, readonly string[]] = ['xz', ['--decompress', '--stdout', '--format=xz', '--threads=1', '--quiet']];

type Lzma = typeof import('lzma-native');
let lzmaModule: Promise<Lzma | undefined> | undefined;
let lzmaLoadError: unknown;
/** Set once spawning xz(1) failed with ENOENT/EACCES: the rest of the run goes straight to the addon. */
let xzToolMissing = false;

function lzma(): Promise<Lzma | undefined> {
  // Loaded on first use: the native addon costs time to load and plain trees never need it. A
  // missing package and a prebuild that does not load here (another architecture) both mean "none".
  lzmaModule ??= import('lzma-native').then(
    (m) => ((m as { default?: Lzma }).default ?? m) as Lzma,
    (e: unknown) => {
      lzmaLoadError = e;
      return undefined;
    },
  );
  return lzmaModule;
}

function noXzDecoder(file: string): DecoderUnavailableError {
  return new DecoderUnavailableError(
    file,
    'cannot decompress xz: no xz decoder (xz(1) is not on PATH and the lzma-native addon is not installed or does not load on this architecture); install xz-utils',
    { cause: lzmaLoadError },
  );
}

function isMissingTool(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === 'ENOENT' || code === 'EACCES';
}

/** xz(1)'s complaint without its `xz: (stdin): ` prefix, for a FormatError reason: the error follows any warning. */
function xzComplaint(stderr: string, code: number | null, signal: NodeJS.Signals | null): string {
  const line = stderr.split('\n').filter((l) => l.trim() !== '').at(-1);
  if (line !== undefined) return line.replace(/^xz: \(stdin\): /, '').trim();
  return signal !== null ? `xz killed by ${signal}` : `xz exited with status ${code}`;
}

async function unxzCapped(bytes: Uint8Array, file: string, max: number, decoders: readonly XzDecoder[]): Promise<Uint8Array> {
  for (const decoder of decoders) {
    if (decoder === 'xz(1)') {
      const out = xzToolMissing ? undefined : await unxzWithTool(bytes, file, max);
      if (out !== undefined) return out;
    } else {
      const lib = await lzma();
      if (lib !== undefined) return unxzWithAddon(lib, bytes, file, max);
    }
  }
  throw noXzDecoder(file);
}

/** Decodes with xz(1); undefined when xz(1) cannot be started here. */
function unxzWithTool(bytes: Uint8Array, file: string, max: number): Promise<Uint8Array | undefined> {
  return new Promise((resolve, reject) => {
    const child = spawn(XZ_DECOMPRESS_COMMAND[0], XZ_DECOMPRESS_COMMAND[1], { stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks: Uint8Array[] = [];
    let total = 0;
    let stderr = '';
    let done = false;
    const finish = (f: () => void) => {
      if (done) return;
      done = true;
      f();
    };
    child.on('error', (e) => {
      if (isMissingTool(e)) xzToolMissing = true;
      finish(() => (isMissingTool(e) ? resolve(undefined) : reject(new FormatError(file, `cannot run xz: ${e.message}`, undefined, { cause: e }))));
    });
    child.stdout.on('data', (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total > max) {
        child.kill();
        finish(() => reject(tooBig(file, max)));
        return;
      }
      if (!done) chunks.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString('utf8');
    });
    child.on('close', (code, signal) => {
      // Status 2 is a warning with the whole output written ("Unsupported type of integrity
      // check; not verifying file integrity"): liblzma in kmod decodes such a stream silently.
      if (code !== 0 && code !== 2) return finish(() => reject(new CorruptXzError(file, xzComplaint(stderr, code, signal))));
      finish(() => resolve(concat(chunks, total)));
    });
    // xz stops reading a stream it refuses; its exit status and stderr, not EPIPE, say why.
    child.stdin.on('error', () => {});
    child.stdin.end(bytes);
  });
}

/**
 * A stream decoding one .xz byte stream too large to hold whole (a .deb's data.tar.xz), from the same
 * decoders in the same order as single files; DecoderUnavailableError naming `file` when there is none.
 */
export async function xzDecompressStream(file: string, decoders: readonly XzDecoder[] = XZ_DECODERS): Promise<Duplex> {
  for (const decoder of decoders) {
    if (decoder === 'xz(1)') {
      const tool = xzToolMissing ? undefined : await xzToolStream();
      if (tool !== undefined) return tool;
    } else {
      const lib = await lzma();
      if (lib !== undefined) return lib.createStream('autoDecoder');
    }
  }
  throw noXzDecoder(file);
}

function xzToolStream(): Promise<Duplex | undefined> {
  return new Promise((resolve, reject) => {
    const child = spawn(XZ_DECOMPRESS_COMMAND[0], XZ_DECOMPRESS_COMMAND[1], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString('utf8');
    });
    child.once('error', (e) => {
      if (!isMissingTool(e)) return reject(e);
      xzToolMissing = true;
      resolve(undefined);
    });
    child.once('spawn', () => {
      const stream = new Duplex({
        write(chunk: Buffer, _enc, cb) {
          if (child.stdin.write(chunk)) cb();
          else child.stdin.once('drain', () => cb());
        },
        final(cb) {
          child.stdin.end();
          cb();
        },
        read() {
          child.stdout.resume();
        },
        destroy(err, cb) {
          if (child.exitCode === null && child.signalCode === null) child.kill();
          cb(err);
        },
      });
      child.stdout.on('data', (chunk: Buffer) => {
        if (!stream.push(chunk)) child.stdout.pause();
      });
      // The end of the output only counts once xz's exit status says the stream was whole.
      child.on('close', (code, signal) => {
        if (code === 0) stream.push(null);
        else stream.destroy(new Error(`corrupt xz stream: ${xzComplaint(stderr, code, signal)}`));
      });
      child.stdin.on('error', () => {});
      resolve(stream);
    });
  });
}

/** The chunks (of `total` bytes in all) as one array; a single chunk is returned as it is. */
export function concat(chunks: readonly Uint8Array[], total = chunks.reduce((n, c) => n + c.byteLength, 0)): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}

function unxzWithAddon(lib: Lzma, bytes: Uint8Array, file: string, max: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const stream = lib.createStream('streamDecoder', { synchronous: false });
    const chunks: Uint8Array[] = [];
    let total = 0;
    let done = false;
    stream.on('data', (chunk: Uint8Array) => {
      if (done) return;
      total += chunk.byteLength;
      if (total > max) {
        done = true;
        stream.destroy();
        reject(tooBig(file, max));
        return;
      }
      chunks.push(chunk);
    });
    stream.on('error', (e: Error) => {
      if (done) return;
      done = true;
      reject(new CorruptXzError(file, e.message, { cause: e }));
    });
    stream.on('end', () => {
      if (done) return;
      done = true;
      resolve(concat(chunks, total));
    });
    stream.end(bytes);
  });
}

/**
 * Upper bound of a zstd stream's output, read from its frame and block headers without
 * decompressing (RFC 8878 §3.1): a frame's declared content size when present, else 128 KiB per
 * block (the format's block maximum); a window larger than the cap is refused as well. fzstd
 * allocates whole frames at once, so the cap must be checked before it runs.
 */
function zstdOutputBound(b: Uint8Array, file: string, max: number): number {
  let p = 0;
  let total = 0;
  const u32 = (o: number): number => ((b[o] ?? 0) | ((b[o + 1] ?? 0) << 8) | ((b[o + 2] ?? 0) << 16) | ((b[o + 3] ?? 0) << 24)) >>> 0;
  const corrupt = (why: string): FormatError => new FormatError(file, `corrupt zstd stream: ${why}`, p);
  while (p < b.length) {
    if (p + 4 > b.length) throw corrupt('truncated frame');
    const magic = u32(p);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      // skippable frame: 4-byte size follows
      if (p + 8 > b.length) throw corrupt('truncated skippable frame');
      p += 8 + u32(p + 4);
      continue;
    }
    if (magic !== 0xfd2fb528) throw corrupt('bad frame magic');
    const fhd = b[p + 4];
    if (fhd === undefined) throw corrupt('truncated frame header');
    const fcsFlag = fhd >> 6;
    const single = (fhd >> 5) & 1;
    const checksum = (fhd >> 2) & 1;
    const dictFlag = fhd & 3;
    if (!single) {
      // fzstd allocates the window up front when no content size is given: bound it too.
      const wd = b[p + 5];
      if (wd === undefined) throw corrupt('truncated frame header');
      const base = 2 ** (10 + (wd >> 3));
      if (base + (base / 8) * (wd & 7) > max) throw tooBig(file, max);
    }
    let q = p + 5 + (single ? 0 : 1) + [0, 1, 2, 4][dictFlag]!;
    const fcsBytes = [single ? 1 : 0, 2, 4, 8][fcsFlag]!;
    if (q + fcsBytes > b.length) throw corrupt('truncated frame header');
    let fcs: number | undefined;
    if (fcsBytes === 1) fcs = b[q]!;
    else if (fcsBytes === 2) fcs = ((b[q]! | (b[q + 1]! << 8)) + 256);
    else if (fcsBytes === 4) fcs = u32(q);
    else if (fcsBytes === 8) fcs = u32(q + 4) * 0x1_0000_0000 + u32(q);
    q += fcsBytes;
    let blocks = 0;
    for (;;) {
      if (q + 3 > b.length) throw corrupt('truncated block');
      const h = b[q]! | (b[q + 1]! << 8) | (b[q + 2]! << 16);
      const type = (h >> 1) & 3;
      const size = h >>> 3;
      q += 3 + (type === 1 ? 1 : size); // RLE blocks store one byte
      // Node's zstdDecompressSync returns what it decoded of a cut stream without an error.
      if (q > b.length) throw corrupt('truncated block');
      blocks++;
      if (h & 1) break;
    }
    q += checksum ? 4 : 0;
    if (q > b.length) throw corrupt('truncated frame checksum');
    total += fcs ?? blocks * 128 * 1024;
    p = q;
  }
  return total;
}

type ZstdDecompressSync = (bytes: Uint8Array, opts: { maxOutputLength: number }) => Buffer;

/**
 * The runtime's own zstd (zlib.zstdDecompressSync, Node 22.15+ and 23.8+): libzstd in-process,
 * about 4x faster than fzstd (pure JavaScript) and with no pipe to a zstd(1) process. Undefined on
 * older runtimes (Debian 12's nodejs 18), which use the zstd(1) batches and fzstd.
 */
export const nativeZstdDecompress: ZstdDecompressSync | undefined = (zlib as unknown as { zstdDecompressSync?: ZstdDecompressSync })
  .zstdDecompressSync;

function unzstdCapped(bytes: Uint8Array, file: string, max: number): Uint8Array {
  // Also for the native decoder: refuses bombs and huge windows from the headers, before any allocation.
  if (zstdOutputBound(bytes, file, max) > max) throw tooBig(file, max);
  let out: Uint8Array;
  try {
    out = nativeZstdDecompress !== undefined ? nativeZstdDecompress(bytes, { maxOutputLength: max }) : zstdDecompress(bytes);
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw tooBig(file, max);
    throw new FormatError(file, `corrupt zstd stream: ${(e as Error).message}`, undefined, { cause: e });
  }
  if (out.byteLength > max) throw tooBig(file, max);
  return out;
}
