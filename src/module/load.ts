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
import { CorruptXzError, decompressModule, DecompressedTooLargeError, detectCompression, MAX_MODULE_BYTES, nativeZstdDecompress, type DecompressOptions } from './decompress.ts';
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

/**
 * What kmod 34 logs on depmod's three calls for a broken .xz: the file stays open and each call
 * reads on from where the last one stopped (libkmod-file-xz.c reads with read(2), no lseek), so
 * the second and third find the end of the file ("Unexpected end of input"). Exact when the first
 * call read the whole file: a cut stream, or a file within one read (BUFSIZ, 8 KiB); for a larger
 * file damaged early, kmod would find stream bytes there instead (not reproduced).
 */
function kmodXzMessages(first: string): [string, string, string] {
  return [first, 'xz: Unexpected end of input', 'xz: Unexpected end of input'];
}

const same = (image: LoadedImage): ImageLoad => ({ kmod30: image, kmod34: image, zstdUnsized: false });

/** The image each kmod loads from a module file's bytes. Throws only DecoderUnavailableError. */
export async function loadModuleImages(bytes: Uint8Array, file: string, opts: DecompressOptions = {}): Promise<ImageLoad> {
  const max = opts.maxBytes ?? MAX_MODULE_BYTES;
  if (bytes.byteLength < MAGIC_READ) return same({ errno: 'EINVAL', detail: bytes.byteLength === 0 ? 'empty file' : `file of ${bytes.byteLength} bytes is too short for a module` });
  const compression = detectCompression(bytes);
  if (compression === 'zstd') {
    const z = loadZstd(bytes, max, nativeZstdDecompress);
    return { kmod30: z.kmod30, kmod34: z.kmod34, zstdUnsized: z.sizeUnknown };
  }
  try {
    return same({ image: await decompressModule(bytes, file, opts) });
  } catch (err) {
    if (err instanceof DecompressedTooLargeError) return same({ errno: 'EFBIG', detail: err.reason });
    if (err instanceof CorruptXzError) {
      // kmod 28-33 log nothing (the file's context is set after loading), kmod 34 logs each time.
      const kmod30: LoadedImage = { errno: 'EINVAL', detail: err.reason };
      return { kmod30, kmod34: { ...kmod30, libkmod: kmodXzMessages(kmodXzMessage(err.complaint)) }, zstdUnsized: false };
    }
    if (err instanceof FormatError && compression === 'gzip') return same({ errno: 'EINVAL', detail: err.reason });
    throw err;
  }
}

/**
 * The images of a file whose stream was decompressed elsewhere in one piece (src/io/batch-decompress.ts
 * decodes only whole, single-stream files, which every kmod loads alike), but for kmod 34's size rule.
 */
export function wholeStreamLoad(raw: Uint8Array, image: Uint8Array): ImageLoad {
  const loaded: LoadedImage = { image };
  if (detectCompression(raw) !== 'zstd' || zstdFrameSizeKnown(raw)) return same(loaded);
  const unsized = 'zstd: Failed to determine decompression size';
  return { kmod30: loaded, kmod34: { errno: 'EINVAL', detail: 'the first zstd frame does not declare its size', libkmod: [unsized, unsized, unsized] }, zstdUnsized: true };
}
