// The per-kernel module cache file: the kernel's ModuleSet (src/depmod/module-set.ts: every fact
// depmod takes from every module file, as typed-array columns) plus what the last merge saw of the
// tree, so an update only parses what changed and opens the cache at about the cost of reading it:
// the columns are used in place, not decoded. Pure encode/decode; src/cache/store.ts does the I/O.
//
// Layout (integers little-endian):
//   0    8  magic "DMTXCACH"
//   8    4  format version (CACHE_VERSION)
//   12   4  header length H
//   16   H  header: UTF-8 JSON (CacheHeader): kernel, module directory, input digests, kmod version,
//           directory mtimes, output fingerprints, KABI summary, the body's layout
//   16+H 4   headerSum of bytes 0 .. 16+H: the no-op path reads and trusts this much only
//            (not SHA-256: node:crypto would load Node's stream machinery for a header)
//   then zero padding to a multiple of 8, and the body: every column of the module set and symbol
//   pool at the 8-aligned offset the header names (element types are fixed by COLUMNS), and JSON
//   sections (directory listings, KABI findings); after the body its SHA-256.
// Any mismatch (magic, version, checksum, a column that does not fit) makes the cache unusable:
// the caller parses the tree again (it only costs time).
import { createRequire } from 'node:module';
import { ByteHeap, type Column } from '../depmod/bytes.ts';
import type { KabiBasis, KabiFinding, LoadFinding } from '../depmod/compute.ts';
import { ModuleSet, type KernelSymbolSource, type ModuleSetColumns } from '../depmod/module-set.ts';
import { SymbolPool } from '../depmod/symbol-pool.ts';
import { FormatError } from '../errors.ts';

export const CACHE_MAGIC = 'DMTXCACH';
// 3: the module set's columns (format 2 held one record per module, decoded on every update).
// 4: the header's checksum is headerSum. Any change to COLUMNS or the layout raises it.
// 5: loadErrOff/loadErrLen/byKmod (modules kmod cannot load, or reads per generation); the header's
//    `unreadable` findings.
export const CACHE_VERSION = 5;

/** Bytes of the header's checksum. */
const HEADER_SUM = 4;

/**
 * The header's checksum: FNV-1a over 32-bit words (then the tail bytes), with a final avalanche.
 * Not cryptographic; it catches a damaged or cut header, which is all it is for (a process that
 * can write root's state directory can write a matching sum anyway). A word at a time, because in
 * a process this short-lived the loop runs in V8's interpreter: a byte-wise CRC-32 of a 60 KB
 * header measured ~10 ms there, this ~2 ms.
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

export interface DirEntry {
  name: string;
  type: 'file' | 'dir' | 'link' | 'other';
}

/** What the database's KABI check found, as counts (the findings themselves are in the body). */
export interface KabiSummary {
  against: KabiBasis;
  unknown: number;
  mismatched: number;
}

export interface CacheHeader {
  kver: string;
  moddir: string;
  /** Digest of depmod.d files, modules.order, modules.builtin, modules.builtin.modinfo. */
  inputsDigest: string;
  /** Their paths and identities (size, mtime, inode): equal means unchanged, without reading them. */
  inputsIdentity: string;
  /** The kmod version whose format the outputs were written in. */
  kmodVersion: string;
  /** Directory mtimes (ns, decimal) by path relative to the module directory ('' is the directory itself). */
  dirs: Record<string, string>;
  /** Output files as last written: size:mtimeNs:ino, to detect outside edits. */
  outputs: Record<string, string>;
  /** What the KABI check compared with (src/merge/inputs.ts kabiInput key): the set's kernel symbols came from it. */
  kabiKey: string;
  kabi: KabiSummary;
  /** Modules in the database (reported by the no-op path). */
  modules: number;
  /** depmod's warnings of the last merge (the no-op path repeats them, as depmod would), each with its level (src/depmod/diagnostic.ts). */
  warnings: string[];
  /** How many of `warnings` depmod prints before its KABI findings (the rest while writing the files). */
  warningsBeforeKabi?: number;
  /** What depmod printed while writing the builtin indexes (repeated when they are reused). */
  builtinWarnings: string[];
  /** What depmod printed about modules.order (repeated while the inputs are unchanged). */
  orderWarnings?: string[];
  /** The database's KABI findings when there are few (else only in the body). */
  kabiFindings?: KabiFinding[];
  /** The modules kmod could not load, in array order (the no-op path repeats them, as it repeats `warnings`). */
  unreadable: LoadFinding[];
}

/** What a cache holds besides the header. */
export interface CacheBody {
  set: ModuleSet;
  /** Directory listings in readdir order, by the same keys as CacheHeader.dirs. */
  dirEntries: Record<string, DirEntry[]>;
  /** Every KABI finding of the database as last written (the no-op path reports them again). */
  kabi: KabiFinding[];
}

export interface CacheContents extends CacheBody {
  header: CacheHeader;
}

type Ctor = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): Column; BYTES_PER_ELEMENT: number };

/**
 * Every column of the module set: its name, element type, and which count gives its length.
 * Adding a column to ModuleSet means adding a row here and raising CACHE_VERSION.
 */
const COLUMNS: ReadonlyArray<readonly [name: string, type: Ctor, length: (c: Counts) => number]> = [
  ['alive', Uint8Array, (c) => c.slots],
  ['pathOff', Uint32Array, (c) => c.slots],
  ['pathLen', Uint32Array, (c) => c.slots],
  ['nameOff', Uint32Array, (c) => c.slots],
  ['nameLen', Uint32Array, (c) => c.slots],
  ['bucket', Uint16Array, (c) => c.slots],
  ['sortIdx', Int32Array, (c) => c.slots],
  ['zstdUnsized', Uint8Array, (c) => c.slots],
  ['loadErrOff', Uint32Array, (c) => c.slots],
  ['loadErrLen', Uint32Array, (c) => c.slots],
  ['byKmod', Uint8Array, (c) => c.slots],
  ['fp', BigUint64Array, (c) => 4 * c.slots],
  ['aliasStart', Uint32Array, (c) => c.slots],
  ['aliasCount', Uint32Array, (c) => c.slots],
  ['softStart', Uint32Array, (c) => c.slots],
  ['softCount', Uint32Array, (c) => c.slots],
  ['weakStart', Uint32Array, (c) => c.slots],
  ['weakCount', Uint32Array, (c) => c.slots],
  ['expStart', Uint32Array, (c) => c.slots],
  ['expCount', Uint32Array, (c) => c.slots],
  ['impStart', Uint32Array, (c) => c.slots],
  ['impCount', Uint32Array, (c) => c.slots],
  ['aliasSlot', Uint32Array, (c) => c.aliases],
  ['aliasRawOff', Uint32Array, (c) => c.aliases],
  ['aliasRawLen', Uint32Array, (c) => c.aliases],
  ['aliasKeyOff', Uint32Array, (c) => c.aliases],
  ['aliasKeyLen', Uint32Array, (c) => c.aliases],
  ['valueOff', Uint32Array, (c) => c.values],
  ['valueLen', Uint32Array, (c) => c.values],
  ['expSym', Uint32Array, (c) => c.exports],
  ['expCrc', Float64Array, (c) => c.exports],
  ['impSym', Uint32Array, (c) => c.imports],
  ['impCrc', Float64Array, (c) => c.imports],
  ['impWeak', Uint8Array, (c) => c.imports],
  ['heap', Uint8Array, (c) => c.heap],
  ['kernelHas', Uint8Array, (c) => c.symbols],
  ['kernelCrc', Float64Array, (c) => c.symbols],
  ['pool.heap', Uint8Array, (c) => c.poolHeap],
  ['pool.off', Uint32Array, (c) => c.symbols],
  ['pool.len', Uint32Array, (c) => c.symbols],
  ['pool.hash', Uint32Array, (c) => c.symbols],
  ['pool.table', Int32Array, (c) => c.table],
  ['aliasOrder', Uint32Array, (c) => c.aliasOrder],
  ['aliasLcp', Uint32Array, (c) => c.aliasOrder],
  ['nameOrder', Uint32Array, (c) => c.nameOrder],
  ['nameLcp', Uint32Array, (c) => c.nameOrder],
  ['symbolOrder', Uint32Array, (c) => c.symbolOrder],
  ['symbolLcp', Uint32Array, (c) => c.symbolOrder],
];

interface Counts {
  slots: number;
  aliases: number;
  values: number;
  exports: number;
  imports: number;
  heap: number;
  symbols: number;
  poolHeap: number;
  table: number;
  aliasOrder: number;
  nameOrder: number;
  symbolOrder: number;
  aliasSortedThrough: number;
  nameSortedThrough: number;
  symbolSortedThrough: number;
}

interface Layout {
  counts: Counts;
  kernelSource: KernelSymbolSource | null;
  /** name → [offset from the body's start, byte length]. */
  sections: Record<string, [number, number]>;
  length: number;
}

function countsOf(set: ModuleSet): Counts {
  return {
    slots: set.slots,
    aliases: set.aliases,
    values: set.values,
    exports: set.exports,
    imports: set.imports,
    heap: set.heap.used,
    symbols: set.pool.count,
    poolHeap: set.pool.heap.used,
    table: set.pool.table.length,
    aliasOrder: set.aliasOrder.length,
    nameOrder: set.nameOrder.length,
    symbolOrder: set.symbolOrder.length,
    aliasSortedThrough: set.aliasSortedThrough,
    nameSortedThrough: set.nameSortedThrough,
    symbolSortedThrough: set.symbolSortedThrough,
  };
}

function columnOf(set: ModuleSet, name: string): Column {
  switch (name) {
    case 'heap':
      return set.heap.bytes;
    case 'pool.heap':
      return set.pool.heap.bytes;
    case 'pool.off':
      return set.pool.off;
    case 'pool.len':
      return set.pool.len;
    case 'pool.hash':
      return set.pool.hash;
    case 'pool.table':
      return set.pool.table;
    default:
      return (set as unknown as Record<string, Column>)[name]!;
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** The body's checksum. node:crypto is loaded only here: a no-op never decodes the body. */
function sha256(bytes: Uint8Array): Uint8Array {
  const { createHash } = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
  return createHash('sha256').update(bytes).digest();
}

export function encodeCache(c: CacheContents): Uint8Array {
  // Saved orders must hold live ids only and be up to date: a loaded set trusts them as they are.
  c.set.sortedAliases();
  c.set.sortedNames();
  c.set.sortedSymbols();
  const counts = countsOf(c.set);
  const parts: Array<[name: string, bytes: Uint8Array]> = [];
  for (const [name, , length] of COLUMNS) {
    const col = columnOf(c.set, name);
    const n = length(counts);
    parts.push([name, new Uint8Array(col.buffer, col.byteOffset, n * (col as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT)]);
  }
  parts.push(['json.dirEntries', enc.encode(JSON.stringify(c.dirEntries))]);
  parts.push(['json.kabi', enc.encode(JSON.stringify(c.kabi))]);
  const sections: Record<string, [number, number]> = {};
  let bodyLength = 0;
  for (const [name, bytes] of parts) {
    sections[name] = [bodyLength, bytes.byteLength];
    bodyLength = align8(bodyLength + bytes.byteLength);
  }
  const layout: Layout = { counts, kernelSource: c.set.kernelSource ?? null, sections, length: bodyLength };
  const header = enc.encode(JSON.stringify({ ...c.header, layout }));
  const headerEnd = 16 + header.length;
  const bodyStart = align8(headerEnd + HEADER_SUM);
  const out = new Uint8Array(bodyStart + bodyLength + 32);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) out[i] = CACHE_MAGIC.charCodeAt(i);
  dv.setUint32(8, CACHE_VERSION, true);
  dv.setUint32(12, header.length, true);
  out.set(header, 16);
  dv.setUint32(headerEnd, headerSum(out.subarray(0, headerEnd)), true);
  for (const [name, bytes] of parts) out.set(bytes, bodyStart + sections[name]![0]);
  out.set(sha256(out.subarray(bodyStart, bodyStart + bodyLength)), bodyStart + bodyLength);
  return out;
}

/** A header whose checksum was verified, with what decodeCacheBody needs to find the body. */
export interface VerifiedHeader {
  header: CacheHeader;
  layout: Layout;
  bodyStart: number;
}

/** Bytes needed to verify the header: the fixed part, then 16 + H + 32. */
export const CACHE_PREFIX_BYTES = 16;

/** The header's length from the first 16 bytes (magic and version checked), for a partial read. */
export function headerSpan(prefix: Uint8Array, file: string): number {
  if (prefix.length < 16) throw new FormatError(file, 'module cache truncated');
  for (let i = 0; i < 8; i++) if (prefix[i] !== CACHE_MAGIC.charCodeAt(i)) throw new FormatError(file, 'not a depmod-tx module cache (bad magic)');
  const dv = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== CACHE_VERSION) throw new FormatError(file, `module cache version ${version}, expected ${CACHE_VERSION}`);
  return 16 + dv.getUint32(12, true) + HEADER_SUM;
}

export function decodeCacheHeader(bytes: Uint8Array, file: string): VerifiedHeader {
  const span = headerSpan(bytes, file);
  if (bytes.length < span) throw new FormatError(file, 'module cache truncated in its header');
  const headerEnd = span - HEADER_SUM;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(headerEnd, true) !== headerSum(bytes.subarray(0, headerEnd))) throw new FormatError(file, 'module cache header checksum mismatch');
  let parsed: CacheHeader & { layout: Layout };
  try {
    parsed = JSON.parse(dec.decode(bytes.subarray(16, headerEnd))) as CacheHeader & { layout: Layout };
  } catch (err) {
    throw new FormatError(file, `module cache header is not JSON: ${(err as Error).message}`);
  }
  const { layout, ...header } = parsed;
  if (typeof layout !== 'object' || layout === null || typeof layout.length !== 'number') throw new FormatError(file, 'module cache header has no body layout');
  return { header, layout, bodyStart: align8(span) };
}

/**
 * The body, verified and mapped: columns are views of `bytes` (copied once when the buffer is not
 * 8-aligned). The module set it returns may be changed in place; `bytes` must not be reused.
 */
export function decodeCacheBody(bytes: Uint8Array, file: string, v: VerifiedHeader): CacheBody {
  const { layout, bodyStart } = v;
  const end = bodyStart + layout.length;
  if (bytes.length !== end + 32) throw new FormatError(file, 'module cache truncated (body size differs from its header)');
  const want = sha256(bytes.subarray(bodyStart, end));
  for (let i = 0; i < 32; i++) if (bytes[end + i] !== want[i]) throw new FormatError(file, 'module cache body checksum mismatch');
  let buf = bytes;
  if ((bytes.byteOffset + bodyStart) % 8 !== 0) buf = bytes.slice();
  const section = (name: string): [number, number] => {
    const s = layout.sections[name];
    if (s === undefined || s[0] % 8 !== 0 || s[0] + s[1] > layout.length) throw new FormatError(file, `module cache section ${name} missing or out of bounds`);
    return s;
  };
  const cols: Record<string, Column> = {};
  for (const [name, Type, length] of COLUMNS) {
    const [off, size] = section(name);
    const n = length(layout.counts);
    if (n * Type.BYTES_PER_ELEMENT !== size) throw new FormatError(file, `module cache column ${name} has ${size} bytes, expected ${n * Type.BYTES_PER_ELEMENT}`);
    cols[name] = new Type(buf.buffer, buf.byteOffset + bodyStart + off, n);
  }
  const json = <T>(name: string): T => {
    const [off, size] = section(name);
    try {
      return JSON.parse(dec.decode(buf.subarray(bodyStart + off, bodyStart + off + size))) as T;
    } catch (err) {
      throw new FormatError(file, `module cache section ${name} is not JSON: ${(err as Error).message}`);
    }
  };
  const c = layout.counts;
  const pool = new SymbolPool({
    heap: new ByteHeap(cols['pool.heap'] as Uint8Array, c.poolHeap),
    count: c.symbols,
    off: cols['pool.off'] as Uint32Array,
    len: cols['pool.len'] as Uint32Array,
    hash: cols['pool.hash'] as Uint32Array,
    table: cols['pool.table'] as Int32Array,
  });
  if (pool.table.length === 0 || (pool.table.length & (pool.table.length - 1)) !== 0 || pool.table.length < 2 * pool.count) {
    throw new FormatError(file, 'module cache symbol table has a bad size');
  }
  checkRanges(file, c, cols);
  // Every COLUMNS row not under "pool." or "heap" is a ModuleSet column of the same name.
  const fields: Record<string, unknown> = {};
  for (const [name] of COLUMNS) if (!name.startsWith('pool.') && name !== 'heap') fields[name] = cols[name];
  const set = ModuleSet.fromColumns({
    ...fields,
    slots: c.slots,
    aliases: c.aliases,
    values: c.values,
    exports: c.exports,
    imports: c.imports,
    heap: new ByteHeap(cols.heap as Uint8Array, c.heap),
    pool,
    kernelSource: layout.kernelSource ?? undefined,
    aliasSortedThrough: c.aliasSortedThrough,
    nameSortedThrough: c.nameSortedThrough,
    symbolSortedThrough: c.symbolSortedThrough,
  } as ModuleSetColumns);
  return { set, dirEntries: json('json.dirEntries'), kabi: json('json.kabi') };
}

/**
 * Every offset and count the columns hold must point inside the arrays they index: the checksum
 * vouches for what we wrote, this for what we wrote being consistent (a bug must not become an
 * out-of-bounds read later).
 */
function checkRanges(file: string, c: Counts, cols: Record<string, Column>): void {
  const u32 = (n: string): Uint32Array => cols[n] as Uint32Array;
  const bad = (what: string): never => {
    throw new FormatError(file, `module cache column ${what} points outside its table`);
  };
  const within = (startCol: string, countCol: string, limit: number): void => {
    const st = u32(startCol);
    const ct = u32(countCol);
    for (let s = 0; s < c.slots; s++) if (st[s]! + ct[s]! > limit) bad(startCol);
  };
  const bytesWithin = (offCol: string, lenCol: string, n: number, limit: number, skip?: number): void => {
    const o = u32(offCol);
    const l = u32(lenCol);
    for (let i = 0; i < n; i++) if (l[i] !== skip && o[i]! + l[i]! > limit) bad(offCol);
  };
  within('aliasStart', 'aliasCount', c.aliases);
  within('softStart', 'softCount', c.values);
  within('weakStart', 'weakCount', c.values);
  within('expStart', 'expCount', c.exports);
  within('impStart', 'impCount', c.imports);
  bytesWithin('pathOff', 'pathLen', c.slots, c.heap);
  bytesWithin('nameOff', 'nameLen', c.slots, c.heap);
  bytesWithin('aliasRawOff', 'aliasRawLen', c.aliases, c.heap);
  bytesWithin('aliasKeyOff', 'aliasKeyLen', c.aliases, c.heap, 0xffffffff);
  bytesWithin('valueOff', 'valueLen', c.values, c.heap);
  bytesWithin('loadErrOff', 'loadErrLen', c.slots, c.heap);
  bytesWithin('pool.off', 'pool.len', c.symbols, c.poolHeap);
  // Per slot only: the per-import and per-alias columns (~200,000 entries) are vouched for by the
  // checksum, and checking each one cost more than a no-change update's whole computation.
  if (c.aliasSortedThrough > c.aliases || c.nameSortedThrough > c.slots || c.symbolSortedThrough > c.symbols) bad('sorted orders');
}

export function decodeCache(bytes: Uint8Array, file: string): CacheContents {
  const v = decodeCacheHeader(bytes, file);
  return { header: v.header, ...decodeCacheBody(bytes, file, v) };
}
