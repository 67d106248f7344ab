// What kmod_file_open and the loaders behind it (libkmod-file.c, libkmod-file-xz.c,
// libkmod-file-zstd.c) make of one module file's bytes, per kmod generation: the ELF image to
// read, or the errno depmod prints with what libkmod logs. Decompression is chosen by the leading
// magic bytes, as kmod does (decompress.ts).
//   - A file shorter than 6 bytes: kmod_file_open reads the longest magic (6 bytes) first and
//     fails with EINVAL ("empty .ko" and "junk" are this).
//   - .xz: liblzma decodes the whole stream or fails, EINVAL; kmod 34 logs "xz: REASON" on each of
//     depmod's three calls (kmod 28-30 load before the context is set and log nothing).
//   - .zst: see zstd-kmod.ts.
//   - gzip: depmod-tx reads it (README: Debian's kmod is built without zlib); a broken one is EINVAL.
//   - Over the 256 MiB cap: EFBIG ("File too large"). kmod has no cap and would try; we refuse bombs.
// A decoder this system lacks is not the file's fault: DecoderUnavailableError propagates.
import { spawnSync } from 'node:child_process';
import { totalmem } from 'node:os';
import { CorruptXzError, decompressModule, DecompressedTooLargeError, detectCompression, MAX_MODULE_BYTES, nativeZstdDecompress, XZ_DECOMPRESS_COMMAND, type Compression, type DecompressOptions } from './decompress.ts';
import { zstdFrameSizeKnown } from './zstd-frames.ts';
import { loadZstd, type LoadedImage } from './zstd-kmod.ts';
import { FormatError } from '../errors.ts';

export type { LoadedImage } from './zstd-kmod.ts';

export interface ImageLoad {
  /** kmod 28 to 33. */
  kmod30: LoadedImage;
  /** kmod 34: the same object as kmod30 when both load the same image. */
  kmod34: LoadedImage;
  /** A .ko.zst kmod 34 cannot size (ModuleRecord.zstdUnsized). */
  zstdUnsized: boolean;
  /** How the file is compressed (by its magic), for messages. */
  compression: Compression;
}

/** kmod_file_open reads this many bytes to choose a loader and fails on a shorter file. */
const MAGIC_READ = 6;

/** libkmod-file-xz.c xz_uncompress_belch: kmod's words for liblzma's result, from xz(1)'s words for the same. */
export function kmodXzMessage(complaint: string): string {
  if (/Compressed data is corrupt|DATA_ERROR|corrupt/i.test(complaint)) return 'xz: File is corrupt';
  if (/Unexpected end of input|BUF_ERROR/i.test(complaint)) return 'xz: Unexpected end of input';
  if (/File format not recognized|FORMAT_ERROR/i.test(complaint)) return 'xz: File format not recognized';
  if (/Unsupported options|OPTIONS_ERROR/i.test(complaint)) return 'xz: Unsupported compression options';
  if (/Cannot allocate memory|MEM_ERROR/i.test(complaint)) return 'xz: Cannot allocate memory';
  return 'xz: Internal error (bug)';
}

/** glibc's BUFSIZ: libkmod-file-xz.c reads the file in chunks of this size. */
const XZ_READ = 8192;
/** liblzma's stream header: fewer bytes than this at the end of the file are an unexpected end. */
const XZ_HEADER = 12;
const AT_END = 'xz: Unexpected end of input';

/**
 * What kmod 34 logs on depmod's three calls for a broken .xz. The file stays open and each call
 * reads on from where the last one stopped (libkmod-file-xz.c reads with read(2), no lseek): the
 * first call stops at the end of the 8 KiB chunk in which liblzma failed; the next call starts a
 * new stream there, which liblzma does not recognise ("File format not recognized") unless too
 * little is left to hold a stream header ("Unexpected end of input"), and reads one chunk.
 * `failedAt`: how many bytes liblzma consumed when it failed (the whole file when unknown).
 */
function kmodXzMessages(first: string, size: number, failedAt: number): [string, string, string] {
  let pos = Math.min(size, Math.ceil(failedAt / XZ_READ) * XZ_READ);
  const next = (): string => {
    const left = size - pos;
    pos = Math.min(size, pos + XZ_READ);
    return left < XZ_HEADER ? AT_END : 'xz: File format not recognized';
  };
  const second = next();
  return [first, second, next()];
}

/**
 * How many leading bytes liblzma needs to fail on this stream the way it fails on the whole file:
 * the shortest prefix xz(1) does not call merely cut short (bisection: a prefix shorter than the
 * damage is only "unexpected end of input"). The whole file when xz(1) cannot say.
 */
function xzFailureOffset(bytes: Uint8Array): number {
  const verdict = (n: number): 'cut' | 'other' | undefined => {
    const r = spawnSync(XZ_DECOMPRESS_COMMAND[0], XZ_DECOMPRESS_COMMAND[1], { input: bytes.subarray(0, n), stdio: ['pipe', 'ignore', 'pipe'], encoding: 'latin1' });
    if (r.error !== undefined) return undefined;
    return r.status === 1 && /Unexpected end of input/.test(r.stderr) ? 'cut' : 'other';
  };
  let lo = 1;
  let hi = bytes.length;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const v = verdict(mid);
    if (v === undefined) return bytes.length;
    if (v === 'cut') lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * libzstd's verdict through zstd(1), whose streaming decoder is kmod 28-33's: "premature end" is a
 * cut stream, any other failure damage. Asked only where fzstd's own decoding cannot be vouched for
 * (zstd-kmod.ts); undefined where zstd(1) is not installed.
 */
function libzstdVerdict(bytes: Uint8Array): 'whole' | 'truncated' | 'corrupt' | undefined {
  const r = spawnSync('zstd', ['--decompress', '--stdout'], { input: bytes, stdio: ['pipe', 'ignore', 'pipe'], encoding: 'latin1' });
  if (r.error !== undefined) return undefined;
  if (r.status === 0) return 'whole';
  return /premature end/.test(r.stderr) ? 'truncated' : 'corrupt';
}

const same = (image: LoadedImage, compression: Compression = 'none'): ImageLoad => ({ kmod30: image, kmod34: image, zstdUnsized: false, compression });

/** The image each kmod loads from a module file's bytes. Throws only DecoderUnavailableError. */
export async function loadModuleImages(bytes: Uint8Array, file: string, opts: DecompressOptions = {}): Promise<ImageLoad> {
  const max = opts.maxBytes ?? MAX_MODULE_BYTES;
  if (bytes.byteLength < MAGIC_READ) return same({ errno: 'EINVAL', detail: bytes.byteLength === 0 ? 'empty file' : `file of ${bytes.byteLength} bytes is too short for a module` });
  const compression = detectCompression(bytes);
  if (compression === 'zstd') {
    // Linux refuses an allocation larger than the machine's memory outright (overcommit heuristic).
    const z = loadZstd(bytes, max, nativeZstdDecompress, libzstdVerdict, totalmem());
    return { kmod30: z.kmod30, kmod34: z.kmod34, zstdUnsized: z.sizeUnknown, compression };
  }
  try {
    return same({ image: await decompressModule(bytes, file, opts) }, compression);
  } catch (err) {
    if (err instanceof DecompressedTooLargeError) return same({ errno: 'EFBIG', detail: err.reason }, compression);
    if (err instanceof CorruptXzError) {
      // kmod 28-33 log nothing (the file's context is set after loading), kmod 34 logs each time.
      const kmod30: LoadedImage = { errno: 'EINVAL', detail: err.reason };
      const first = kmodXzMessage(err.complaint);
      // Within one read, or cut short, the first call consumed the whole file: no need to look.
      const failedAt = bytes.length <= XZ_READ || first === AT_END ? bytes.length : xzFailureOffset(bytes);
      return { kmod30, kmod34: { ...kmod30, libkmod: kmodXzMessages(first, bytes.length, failedAt) }, zstdUnsized: false, compression };
    }
    if (err instanceof FormatError && compression === 'gzip') return same({ errno: 'EINVAL', detail: err.reason }, compression);
    throw err;
  }
}

/**
 * The images of a file whose stream is decompressed elsewhere in one piece (src/io/stream-decompress.ts
 * decodes only whole, single-stream files, which every kmod loads alike), but for kmod 34's size rule:
 * what it needs of the file's bytes taken now, the image given later (the bytes may be gone by then).
 */
export function streamedLoad(raw: Uint8Array): (image: Uint8Array) => ImageLoad {
  const compression = detectCompression(raw);
  const sized = compression !== 'zstd' || zstdFrameSizeKnown(raw);
  return (image) => {
    const loaded: LoadedImage = { image };
    if (sized) return same(loaded, compression);
    const unsized = 'zstd: Failed to determine decompression size';
    return { kmod30: loaded, kmod34: { errno: 'EINVAL', detail: 'the first zstd frame does not declare its size', libkmod: [unsized, unsized, unsized] }, zstdUnsized: true, compression };
  };
}
