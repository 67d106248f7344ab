// How kmod loads a .ko.zst, per generation (the image or the failure), from the stream's own
// structure (RFC 8878 §3.1: frames, skippable frames, blocks) and a decoder.
//   kmod 28-33  libkmod-file.c load_zstd: ZSTD_decompressStream over the whole file until EOF. Any
//               decoder error fails the load (EINVAL); the end of the file ends the image, so a
//               stream cut inside a frame loads what its complete blocks hold (a cut in the
//               checksum: everything). libzstd's streaming limits apply: a window above 2^27 + 1
//               bytes, a dictionary id, bytes after a frame that start no frame, a content size
//               or checksum that does not match all fail.
//   kmod 34     libkmod-file-zstd.c kmod_file_load_zstd: ZSTD_getFrameContentSize of the first
//               frame (absent, 0 or unreadable: "Failed to determine decompression size", see
//               zstd-frames.ts), then one ZSTD_decompress of the whole file into that many bytes:
//               a cut stream or trailing bytes ("Src size is incorrect"), a further data frame
//               ("Destination buffer is too small"), damage ("Data corruption detected",
//               "Restored data doesn't match checksum") fail it, and libkmod logs the reason.
// Decoders: Node's own zstd (libzstd, Node 22.15+) when the runtime has it, else fzstd, whose
// missing checksum check is made up here (xxh64.ts). Both are told the exact output size when the
// frame states it, so a frame never allocates its declared window. fzstd decodes some damaged
// blocks libzstd refuses: where no checksum can tell (a frame cut before its checksum, or one
// without), libzstd's own verdict is asked for when the caller can give it (LibzstdVerdict).
import { decompress as fzstdDecompress, Decompress as FzstdStream } from 'fzstd';
import { concat } from './decompress.ts';
import { xxh64 } from './xxh64.ts';
import { zstdFrameSizeKnown } from './zstd-frames.ts';

/** An image one kmod loads, or why it cannot: errno for strerror, our words, and what libkmod logs. */
/**
 * An image one kmod loads, or why it cannot: errno for strerror, our words, and what libkmod logs
 * on each of depmod's three calls (kmod 34 tries the load again on each).
 */
export type LoadedImage = { image: Uint8Array; note?: string } | { errno: string; detail: string; libkmod?: [string, string, string] };

export interface ZstdLoad {
  kmod30: LoadedImage;
  kmod34: LoadedImage;
  /** kmod 34 cannot learn the output size from the first frame (ModuleRecord.zstdUnsized). */
  sizeUnknown: boolean;
}

const ZSTD_MAGIC = 0xfd2fb528;
/** libzstd's ZSTD_WINDOWLOG_MAX (64-bit builds) and the streaming decoder's default window cap. */
const WINDOWLOG_MAX = 31;
const STREAM_WINDOW_MAX = 2 ** 27 + 1;
const BLOCK_MAX = 128 * 1024;

interface Frame {
  start: number;
  end: number;
  skippable: boolean;
  /** Declared content size (data frames). */
  fcs?: number;
  window: number;
  checksum: boolean;
  dictId: number;
  /** End of the last complete block (a truncated frame). */
  blocksEnd: number;
  /** Upper bound of what the frame's blocks (so far) regenerate: raw and RLE sizes, 128 KiB per compressed block. */
  regen: number;
}

interface Walk {
  /** Complete frames, in file order. */
  frames: Frame[];
  /** The end of the file cuts the stream (inside a frame, a frame header or a magic number). */
  truncated: boolean;
  /** The data frame the end of the file cuts after its header: its complete blocks still decode. */
  cut?: Frame;
  /** The cut falls in that frame's checksum: every block is there. */
  cutInChecksum?: boolean;
  /** Where libzstd's streaming decoder fails on the structure alone, and its error name. */
  error?: { at: number; name: string; detail: string };
}

const u32 = (b: Uint8Array, o: number): number => ((b[o] ?? 0) | ((b[o + 1] ?? 0) << 8) | ((b[o + 2] ?? 0) << 16) | ((b[o + 3] ?? 0) << 24)) >>> 0;

/** Whether the (possibly fewer than 4) bytes at p begin a zstd or a skippable frame's magic. */
function magicPrefix(b: Uint8Array, p: number): 'zstd' | 'skippable' | undefined {
  const n = Math.min(4, b.length - p);
  let isZstd = true;
  let isSkip = true;
  for (let i = 0; i < n; i++) {
    if (b[p + i] !== ((ZSTD_MAGIC >>> (8 * i)) & 0xff)) isZstd = false;
    if (i === 0 ? (b[p]! & 0xf0) !== 0x50 : b[p + i] !== [0, 0x2a, 0x4d, 0x18][i]) isSkip = false;
  }
  return isZstd ? 'zstd' : isSkip ? 'skippable' : undefined;
}

/**
 * The stream's frames as libzstd's streaming decoder meets them (ZSTD_getFrameHeader_advanced,
 * ZSTD_decompressStream): it waits for more input where the file ends, and fails on a header it
 * refuses. Block contents are left to the decoder.
 */
function walk(b: Uint8Array): Walk {
  const frames: Frame[] = [];
  let p = 0;
  const fail = (at: number, name: string, detail: string, cut?: Frame): Walk => ({ frames, truncated: false, error: { at, name, detail }, ...(cut ? { cut } : {}) });
  while (p < b.length) {
    const kind = magicPrefix(b, p);
    if (kind === undefined) return fail(p, 'Unknown frame descriptor', `bytes at offset ${p} start no zstd frame`);
    if (b.length - p < 4) return { frames, truncated: true };
    if (kind === 'skippable') {
      if (b.length - p < 8) return { frames, truncated: true };
      const end = p + 8 + u32(b, p + 4);
      if (end > b.length) return { frames, truncated: true };
      frames.push({ start: p, end, skippable: true, window: 0, checksum: false, dictId: 0, blocksEnd: end, regen: 0 });
      p = end;
      continue;
    }
    if (b.length - p < 5) return { frames, truncated: true };
    const fhd = b[p + 4]!;
    const single = (fhd >> 5) & 1;
    const dictBytes = [0, 1, 2, 4][fhd & 3]!;
    const fcsBytes = [single ? 1 : 0, 2, 4, 8][fhd >> 6]!;
    const headerEnd = p + 5 + (single ? 0 : 1) + dictBytes + fcsBytes;
    if (headerEnd > b.length) return { frames, truncated: true };
    if (fhd & 0x08) return fail(p, 'Unsupported frame parameter', `zstd frame header at offset ${p} sets the reserved bit`);
    let window = 0;
    if (!single) {
      const wd = b[p + 5]!;
      const log = 10 + (wd >> 3);
      if (log > WINDOWLOG_MAX) return fail(p, 'Frame requires too much memory for decoding', `zstd window log ${log} at offset ${p}`);
      window = 2 ** log + (2 ** log / 8) * (wd & 7);
    }
    let q = p + 5 + (single ? 0 : 1);
    let dictId = 0;
    for (let i = dictBytes - 1; i >= 0; i--) dictId = dictId * 256 + b[q + i]!;
    q += dictBytes;
    let fcs: number | undefined;
    if (fcsBytes > 0) {
      fcs = 0;
      for (let i = fcsBytes - 1; i >= 0; i--) fcs = fcs * 256 + b[q + i]!;
      if (fcsBytes === 2) fcs += 256;
    }
    if (single) window = fcs!;
    q = headerEnd;
    const frame: Frame = { start: p, end: -1, skippable: false, ...(fcs !== undefined ? { fcs } : {}), window, checksum: ((fhd >> 2) & 1) === 1, dictId, blocksEnd: q, regen: 0 };
    for (;;) {
      if (q + 3 > b.length) return { frames, truncated: true, cut: frame };
      const h = b[q]! | (b[q + 1]! << 8) | (b[q + 2]! << 16);
      const type = (h >> 1) & 3;
      const size = h >>> 3;
      if (type === 3) return fail(q, 'Data corruption detected', `zstd block at offset ${q} has the reserved type`, frame);
      // A stored or compressed block larger than the frame's block size: the streaming decoder has
      // no room to load it and fails at its header, whether or not its bytes follow (one-shot
      // decoding fails on it as a wrong source size).
      if (type !== 1 && size > Math.min(window, BLOCK_MAX)) return fail(q, 'Src size is incorrect', `zstd block at offset ${q} is larger than the frame's block size`, frame);
      const next = q + 3 + (type === 1 ? 1 : size);
      if (next > b.length) return { frames, truncated: true, cut: frame };
      frame.regen += type === 2 ? BLOCK_MAX : size;
      q = next;
      frame.blocksEnd = q;
      if (h & 1) break;
    }
    if (frame.checksum) {
      if (q + 4 > b.length) return { frames, truncated: true, cut: frame, cutInChecksum: true };
      q += 4;
    }
    frame.end = q;
    frames.push(frame);
    p = q;
  }
  return { frames, truncated: false };
}

type ZstdDecompressSync = (bytes: Uint8Array, opts: { maxOutputLength: number }) => Buffer;

/**
 * What libzstd's streaming decoder says of a stream: it decodes to its end, stops at the end of
 * the input inside a frame, or finds it corrupt. Undefined: no libzstd to ask.
 */
export type LibzstdVerdict = (bytes: Uint8Array) => 'whole' | 'truncated' | 'corrupt' | undefined;

/** Decodes one complete data frame; throws on anything libzstd would refuse (content size, checksum). */
function decodeFrame(bytes: Uint8Array, frame: Frame, native: ZstdDecompressSync | undefined, max: number): Uint8Array {
  // Blocks that cannot regenerate the declared size fail the size check: no buffer of that size is made.
  if (frame.fcs !== undefined && frame.fcs > frame.regen) throw new ZstdError('Data corruption detected', `zstd frame declares ${frame.fcs} bytes, its blocks hold at most ${frame.regen}`);
  const src = bytes.subarray(frame.start, frame.end);
  let out: Uint8Array;
  if (native !== undefined) {
    out = native(src, { maxOutputLength: max });
  } else {
    out = frame.fcs !== undefined ? fzstdDecompress(src, new Uint8Array(frame.fcs)) : fzstdDecompress(src);
    if (frame.checksum) {
      const [, low] = xxh64(out);
      if (low !== u32(bytes, frame.end - 4)) throw new ZstdError("Restored data doesn't match checksum", 'the zstd frame checksum does not match its content');
    }
  }
  if (frame.fcs !== undefined && out.length !== frame.fcs) throw new ZstdError('Data corruption detected', `zstd frame declares ${frame.fcs} bytes, holds ${out.length}`);
  return out;
}

/** The complete blocks of a frame cut by the end of the file: what a streaming decoder has output at EOF. */
function decodeCutFrame(bytes: Uint8Array, frame: Frame): Uint8Array {
  const parts: Uint8Array[] = [];
  const s = new FzstdStream((chunk) => parts.push(chunk));
  s.push(bytes.subarray(frame.start, frame.blocksEnd), false);
  return concat(parts);
}

class ZstdError extends Error {
  readonly zstdName: string;
  constructor(zstdName: string, detail: string) {
    super(detail);
    this.zstdName = zstdName;
  }
}

// kmod 34 maps the file again on each call: the same complaint three times.
const einval = (detail: string, libkmod?: string): LoadedImage => ({ errno: 'EINVAL', detail, ...(libkmod !== undefined ? { libkmod: [`zstd: ${libkmod}`, `zstd: ${libkmod}`, `zstd: ${libkmod}`] } : {}) });
const tooLarge = (max: number): LoadedImage => ({ errno: 'EFBIG', detail: `decompressed module exceeds ${max} bytes (decompression bomb?)` });

/** What the error of a decoder (Node's, fzstd, ours) says, as a detail. */
function reasonOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * How kmod 28-33 and kmod 34 load this .ko.zst (see the file header); `max` caps every image (a
 * decompression bomb is EFBIG, where kmod would try); `mallocLimit` is the largest buffer kmod 34
 * could allocate for the declared size. Never throws for the bytes' content.
 */
export function loadZstd(bytes: Uint8Array, max: number, native: ZstdDecompressSync | undefined, libzstd?: LibzstdVerdict, mallocLimit = Infinity): ZstdLoad {
  const w = walk(bytes);
  // The first frame starts at 0 (the magic chose zstd); a header kmod cannot read leaves it out of w.frames and w.cut.
  const first = w.frames[0]?.start === 0 ? w.frames[0] : w.cut?.start === 0 ? w.cut : undefined;
  const sizeUnknown = first === undefined || !zstdFrameSizeKnown(bytes);
  const decodeOrError = (f: Frame, src: Uint8Array): Uint8Array | ZstdError => {
    try {
      if (f.dictId !== 0) throw new ZstdError('Dictionary mismatch', `zstd frame at offset ${f.start} needs dictionary ${f.dictId}`);
      return decodeFrame(src, f, native, max);
    } catch (e) {
      return e instanceof ZstdError ? e : new ZstdError('Data corruption detected', reasonOf(e));
    }
  };

  // kmod 28-33: stream to the end of the file.
  let kmod30: LoadedImage;
  let decodedFirst: Uint8Array | ZstdError | undefined;
  const dataFrames = w.frames.filter((f) => !f.skippable);
  if (w.error !== undefined && w.cut === undefined) kmod30 = einval(`corrupt zstd stream: ${w.error.detail}`);
  else if ([...dataFrames, ...(w.cut ? [w.cut] : [])].reduce((n, f) => n + Math.min(f.fcs ?? Infinity, f.regen), 0) > max) kmod30 = tooLarge(max);
  else {
    const parts: Uint8Array[] = [];
    let failed: string | undefined;
    for (const f of dataFrames) {
      const out = f.window > STREAM_WINDOW_MAX ? new ZstdError('Frame requires too much memory for decoding', `zstd window of ${f.window} bytes`) : decodeOrError(f, bytes);
      if (f === first) decodedFirst = out;
      if (out instanceof ZstdError) {
        failed = out.message;
        break;
      }
      parts.push(out);
    }
    if (failed === undefined && w.error !== undefined) failed = w.error.detail;
    // fzstd's blocks without a checksum to vouch for them: libzstd has the last word.
    const unchecked = w.cut !== undefined || dataFrames.some((f) => !f.checksum);
    if (failed === undefined && native === undefined && unchecked && libzstd?.(bytes) === 'corrupt') failed = 'libzstd finds the stream corrupt';
    else if (failed === undefined && w.cut !== undefined) {
      const c = w.cut;
      if (c.dictId !== 0) failed = `zstd frame at offset ${c.start} needs dictionary ${c.dictId}`;
      else if (c.window > STREAM_WINDOW_MAX) failed = `zstd window of ${c.window} bytes`;
      else {
        try {
          parts.push(decodeCutFrame(bytes, c));
        } catch (e) {
          failed = reasonOf(e);
        }
      }
    }
    kmod30 = failed !== undefined ? einval(`corrupt zstd stream: ${failed}`) : { image: concat(parts), ...(w.cut !== undefined ? { note: 'zstd stream cut short (what its complete blocks hold)' } : {}) };
  }

  // kmod 34: one call into the size the first frame declares.
  let kmod34: LoadedImage;
  if (sizeUnknown) kmod34 = einval('the first zstd frame does not declare its size', 'Failed to determine decompression size');
  // kmod allocates the declared size before decompressing: a size no allocation can give is ENOMEM, logged by no one.
  else if (first.fcs! > mallocLimit) kmod34 = { errno: 'ENOMEM', detail: `the first zstd frame declares ${first.fcs} bytes` };
  else if (first === w.cut) {
    // ZSTD_decompressFrame: fewer than 4 bytes left for the checksum fail as a wrong checksum.
    if (w.error !== undefined) kmod34 = einval(`corrupt zstd stream: ${w.error.detail}`, w.error.name);
    else kmod34 = w.cutInChecksum === true ? einval('zstd stream cut in its checksum', "Restored data doesn't match checksum") : einval('zstd stream cut short', 'Src size is incorrect');
  }
  else if (first.fcs! > first.regen) kmod34 = einval(`zstd frame declares ${first.fcs} bytes, its blocks hold at most ${first.regen}`, 'Data corruption detected');
  else if (first.fcs! > max) kmod34 = tooLarge(max);
  else {
    if (decodedFirst === undefined || (decodedFirst instanceof ZstdError && decodedFirst.zstdName === 'Frame requires too much memory for decoding')) {
      // One-shot decoding has no window cap: decode a copy that claims the largest window the
      // decoders accept (the content fits the declared size, so no match reaches further back).
      const src = first.window > STREAM_WINDOW_MAX && ((bytes[4]! >> 5) & 1) === 0 ? patchedWindow(bytes) : bytes;
      decodedFirst = decodeOrError(first, src);
    }
    if (decodedFirst instanceof ZstdError) kmod34 = einval(`corrupt zstd stream: ${decodedFirst.message}`, decodedFirst.zstdName);
    else {
      kmod34 = { image: decodedFirst };
      for (const f of [...w.frames.slice(1), ...(w.cut !== undefined ? [w.cut] : [])]) {
        if (!f.skippable && f.regen > 0) {
          kmod34 = einval('more than one zstd data frame', 'Destination buffer is too small');
          break;
        }
      }
      if ('image' in kmod34 && (w.truncated || w.error !== undefined)) kmod34 = einval('zstd stream cut short or followed by other bytes', 'Src size is incorrect');
    }
  }
  // One object when both load the same image, so that one ELF reading serves both.
  if ('image' in kmod30 && 'image' in kmod34 && kmod30.image === kmod34.image) kmod34 = kmod30;
  return { kmod30, kmod34, sizeUnknown };
}

/** The stream with the first frame's window descriptor set to 2^27, the largest the decoders accept. */
function patchedWindow(bytes: Uint8Array): Uint8Array {
  const copy = bytes.slice();
  copy[5] = (27 - 10) << 3;
  return copy;
}
