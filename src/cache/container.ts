// The on-disk container of depmod-tx's per-kernel cache files (format.ts says what goes in them):
// a checksummed JSON header, then typed-array sections at 8-aligned offsets that a reader uses as
// views of the file's bytes, without decoding them.
//
// Layout (integers little-endian):
//   0   8  magic (the file's kind: "DMTXBASE", "DMTXDLTA")
//   8   4  format version
//   12  4  header length H
//   16  8  generation: random, new for every file written
//   24  8  base generation: the base file a delta applies to (0 for a base)
//   32  8  the file's length (a reader of the header alone checks it against the file's size)
//   40  H  header: UTF-8 JSON (the caller's meta, and the section table)
//   40+H 4 headerSum of bytes 0 .. 40+H
//   then zero padding to a multiple of 8, the body (sections), and the trailer: the generation again
//   (8 bytes), the body's CRC-32 (4) and 1 when that CRC was computed (4).
// Files are written whole to a temporary name, fsync'ed and renamed into place, so a file is either
// complete or absent; the size and the trailing generation catch a cut or mixed file. The body's
// CRC-32 costs what it protects only where the runtime computes it natively (zlib.crc32: Node
// 20.15+, 22.2+; ~2 ms for a 10-MB base): there it is written and checked; Debian 12's nodejs 18 has
// none, and a byte-wise CRC in JavaScript would cost more than the merge it guards, so there the body
// is vouched for by size and generation alone (a cache written by one runtime and read by the other
// is checked as far as the reader can). Pure: bytes in, bytes out.
import { createRequire } from 'node:module';
import { FormatError } from '../errors.ts';

export type Section = Uint8Array | Uint16Array | Uint32Array | Int32Array | Float64Array | BigUint64Array;

const TYPES = { u8: Uint8Array, u16: Uint16Array, u32: Uint32Array, i32: Int32Array, f64: Float64Array, u64: BigUint64Array } as const;
type TypeCode = keyof typeof TYPES;

function typeCode(a: Section): TypeCode {
  if (a instanceof Uint8Array) return 'u8';
  if (a instanceof Uint16Array) return 'u16';
  if (a instanceof Uint32Array) return 'u32';
  if (a instanceof Int32Array) return 'i32';
  if (a instanceof Float64Array) return 'f64';
  return 'u64';
}

export const PREFIX_BYTES = 40;
const HEADER_SUM = 4;
const TRAILER = 16;

/** zlib.crc32 when the runtime has it (loaded on first use). */
let nativeCrc: ((b: Uint8Array) => number) | null | undefined;
function crc32Native(): ((b: Uint8Array) => number) | null {
  if (nativeCrc === undefined) {
    const z = createRequire(import.meta.url)('node:zlib') as { crc32?: (b: Uint8Array) => number };
    nativeCrc = typeof z.crc32 === 'function' ? z.crc32 : null;
  }
  return nativeCrc;
}

/**
 * The header's checksum: FNV-1a over 32-bit words (then the tail bytes), with a final avalanche.
 * Not cryptographic; it catches a damaged or cut header, which is all it is for. A word at a time,
 * because in a process this short-lived the loop runs in V8's interpreter.
 */
export function headerSum(bytes: Uint8Array): number {
  const words = bytes.length >>> 2;
  const aligned = bytes.byteOffset % 4 === 0 ? new Uint32Array(bytes.buffer, bytes.byteOffset, words) : new Uint32Array(bytes.slice(0, words * 4).buffer);
  let h = 0x811c9dc5 | 0;
  for (let i = 0; i < words; i++) h = Math.imul(h ^ aligned[i]!, 0x01000193);
  for (let i = words * 4; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const align8 = (n: number): number => (n + 7) & ~7;
const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

/**
 * A new generation (never 0, which marks "no base"): it only has to differ from the last one of the
 * same kernel, so the clock and Math.random do (Node 18 has no global crypto; node:crypto costs a load).
 */
export function newGeneration(): bigint {
  const hi = BigInt(Date.now() & 0x7fffffff) << 32n;
  const lo = BigInt(Math.floor(Math.random() * 0xffffffff) >>> 0);
  return (hi | lo) === 0n ? 1n : hi | lo;
}

interface Table {
  /** name → [type, offset from the body's start, element count]. */
  sections: Record<string, [TypeCode, number, number]>;
  bodyLength: number;
}

export interface ContainerInput<M> {
  magic: string;
  version: number;
  generation: bigint;
  baseGeneration: bigint;
  meta: M;
  sections: ReadonlyArray<readonly [name: string, data: Section]>;
}

export function encodeContainer<M extends object>(c: ContainerInput<M>): Uint8Array {
  const sections: Table['sections'] = {};
  let bodyLength = 0;
  for (const [name, data] of c.sections) {
    sections[name] = [typeCode(data), bodyLength, data.length];
    bodyLength = align8(bodyLength + data.byteLength);
  }
  const header = enc.encode(JSON.stringify({ meta: c.meta, table: { sections, bodyLength } satisfies Table }));
  const headerEnd = PREFIX_BYTES + header.length;
  const bodyStart = align8(headerEnd + HEADER_SUM);
  const out = new Uint8Array(bodyStart + bodyLength + TRAILER);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) out[i] = c.magic.charCodeAt(i);
  dv.setUint32(8, c.version, true);
  dv.setUint32(12, header.length, true);
  dv.setBigUint64(16, c.generation, true);
  dv.setBigUint64(24, c.baseGeneration, true);
  dv.setBigUint64(32, BigInt(out.length), true);
  out.set(header, PREFIX_BYTES);
  dv.setUint32(headerEnd, headerSum(out.subarray(0, headerEnd)), true);
  for (const [name, data] of c.sections) out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), bodyStart + sections[name]![1]);
  dv.setBigUint64(bodyStart + bodyLength, c.generation, true);
  const crc = crc32Native();
  if (crc !== null) {
    dv.setUint32(bodyStart + bodyLength + 8, crc(out.subarray(bodyStart, bodyStart + bodyLength)), true);
    dv.setUint32(bodyStart + bodyLength + 12, 1, true);
  }
  return out;
}

/** The fixed prefix of a container: what it is and how long its header is. */
export interface ContainerPrefix {
  version: number;
  generation: bigint;
  baseGeneration: bigint;
  /** Bytes through the header's checksum (what decodeHeader needs). */
  headerSpan: number;
  /** The whole file's length as written. */
  fileLength: number;
}

export function decodePrefix(bytes: Uint8Array, magic: string, file: string): ContainerPrefix {
  if (bytes.length < PREFIX_BYTES) throw new FormatError(file, 'cache file truncated');
  for (let i = 0; i < 8; i++) if (bytes[i] !== magic.charCodeAt(i)) throw new FormatError(file, `not a depmod-tx cache file of kind ${magic} (bad magic)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    version: dv.getUint32(8, true),
    generation: dv.getBigUint64(16, true),
    baseGeneration: dv.getBigUint64(24, true),
    headerSpan: PREFIX_BYTES + dv.getUint32(12, true) + HEADER_SUM,
    fileLength: Number(dv.getBigUint64(32, true)),
  };
}

export interface ContainerHeader<M> extends ContainerPrefix {
  meta: M;
  table: Table;
  bodyStart: number;
}

/** The prefix and the header, checksum verified (the file's first headerSpan bytes suffice). */
export function decodeHeader<M>(bytes: Uint8Array, magic: string, version: number, file: string): ContainerHeader<M> {
  const p = decodePrefix(bytes, magic, file);
  if (p.version !== version) throw new FormatError(file, `cache format version ${p.version}, expected ${version}`);
  if (bytes.length < p.headerSpan) throw new FormatError(file, 'cache file truncated in its header');
  const headerEnd = p.headerSpan - HEADER_SUM;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(headerEnd, true) !== headerSum(bytes.subarray(0, headerEnd))) throw new FormatError(file, 'cache header checksum mismatch');
  let parsed: { meta: M; table: Table };
  try {
    parsed = JSON.parse(dec.decode(bytes.subarray(PREFIX_BYTES, headerEnd))) as { meta: M; table: Table };
  } catch (err) {
    throw new FormatError(file, `cache header is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed?.table?.bodyLength !== 'number' || typeof parsed.table.sections !== 'object') throw new FormatError(file, 'cache header has no section table');
  return { ...p, meta: parsed.meta, table: parsed.table, bodyStart: align8(p.headerSpan) };
}

/** Typed-array views of a whole container's sections (the bytes must stay untouched). */
export class ContainerBody {
  /** The body's CRC-32 was checked (else only its size and generation vouch for it). */
  readonly checksummed: boolean;
  readonly #bytes: Uint8Array;
  readonly #h: ContainerHeader<unknown>;
  readonly #file: string;

  constructor(bytes: Uint8Array, h: ContainerHeader<unknown>, file: string) {
    if (bytes.length !== h.bodyStart + h.table.bodyLength + TRAILER) throw new FormatError(file, 'cache file truncated (size differs from its header)');
    const trailer = new DataView(bytes.buffer, bytes.byteOffset + bytes.length - TRAILER, TRAILER);
    if (trailer.getBigUint64(0, true) !== h.generation) throw new FormatError(file, 'cache file torn (its end is of another generation)');
    const crc = trailer.getUint32(12, true) === 1 ? crc32Native() : null;
    if (crc !== null && crc(bytes.subarray(h.bodyStart, h.bodyStart + h.table.bodyLength)) !== trailer.getUint32(8, true)) {
      throw new FormatError(file, 'cache body checksum mismatch');
    }
    this.checksummed = crc !== null;
    // Views need aligned offsets: copy once when the buffer itself is not 8-aligned.
    this.#bytes = (bytes.byteOffset + h.bodyStart) % 8 === 0 ? bytes : bytes.slice();
    this.#h = h;
    this.#file = file;
  }

  has(name: string): boolean {
    return this.#h.table.sections[name] !== undefined;
  }

  get<T extends TypeCode>(name: string, type: T): InstanceType<(typeof TYPES)[T]> {
    const s = this.#h.table.sections[name];
    if (s === undefined) throw new FormatError(this.#file, `cache section ${name} missing`);
    const [code, off, count] = s;
    const Ctor = TYPES[code];
    if (code !== type) throw new FormatError(this.#file, `cache section ${name} is ${code}, expected ${type}`);
    if (off % 8 !== 0 || off + count * Ctor.BYTES_PER_ELEMENT > this.#h.table.bodyLength) throw new FormatError(this.#file, `cache section ${name} out of bounds`);
    return new (Ctor as unknown as new (b: ArrayBufferLike, o: number, n: number) => Section)(this.#bytes.buffer, this.#bytes.byteOffset + this.#h.bodyStart + off, count) as InstanceType<(typeof TYPES)[T]>;
  }

  json<T>(name: string): T {
    const b = this.get(name, 'u8');
    try {
      return JSON.parse(dec.decode(b)) as T;
    } catch (err) {
      throw new FormatError(this.#file, `cache section ${name} is not JSON: ${(err as Error).message}`);
    }
  }
}

/** A JSON value as a byte section. */
export function jsonSection(v: unknown): Uint8Array {
  return enc.encode(JSON.stringify(v));
}
