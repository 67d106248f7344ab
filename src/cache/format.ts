// The per-kernel module cache file: what a full rebuild learned from the tree, so an incremental
// merge only parses what changed. Pure encode/decode; src/cache/store.ts does the file I/O.
//
// Layout (all integers little-endian; varints are unsigned LEB128 up to 2^53):
//   0   8  magic "DMTXCACH"
//   8   4  format version (CACHE_VERSION)
//   12  4  header length H
//   16  H  header: UTF-8 JSON (CacheHeader): kernel, module directory, input digests, directories
//   ..  4  body length B
//   ..  B  body:
//          varint S, then S strings as one UTF-8 blob of NUL-terminated strings (module strings are
//          C strings, so they never contain NUL); every string below is an index into this table
//          varint N entries, each: path, size u64, mtimeNs u64, ctimeNs u64, ino u64 (fixed 8 bytes),
//          name, varint #modinfo (key, value)*, varint #exports (name, crc f64)*, varint #imports (name, crc f64, weak u8)*
//          (CRCs are f64 because the reader reports kmod's (uint64_t)-1 for unresolvable CRCs as 2^64)
//   ..  32 SHA-256 of every byte before it
// Interning matters: ~4,000 modules import ~300,000 symbol references drawn from ~15,000 names.
import { createHash } from 'node:crypto';
import { FormatError } from '../errors.ts';
import type { ImportedSymbol, ModuleRecord } from '../module/record.ts';

export const CACHE_MAGIC = 'DMTXCACH';
// 2: non-ASCII symbol names are decoded as UTF-8 (byte-wise before): older records may spell them otherwise.
export const CACHE_VERSION = 2;

export interface FileFingerprint {
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
}

export interface CacheEntry {
  /** Path relative to the module directory (or absolute for external directories). */
  path: string;
  fp: FileFingerprint;
  record: ModuleRecord;
}

export interface CachedDir {
  /** Directory mtime (ns, decimal string: JSON has no bigint). */
  mtimeNs: string;
  /** Entries in readdir order, as listDirInReaddirOrder returned them. */
  entries: Array<{ name: string; type: 'file' | 'dir' | 'link' | 'other' }>;
}

export interface CacheHeader {
  kver: string;
  moddir: string;
  /** Digest of depmod.d files, modules.order, modules.builtin, modules.builtin.modinfo: any change → full parse. */
  inputsDigest: string;
  /** Directory listings by path relative to the module directory ('' is the module directory). */
  dirs: Record<string, CachedDir>;
  /** Names of output files and their digests as last written, to detect outside edits. */
  outputs: Record<string, string>;
  /** The KABI verdict on the database last written (absent in caches of older versions: no no-op then). */
  kabi?: CachedKabi;
}

/**
 * The KABI findings of the database as last written (src/depmod's KabiFinding, stored as is), so a
 * merge that changes nothing still reports them, and --strict still fails on them.
 */
export interface CachedKabi {
  /** Which input they were checked against (src/merge/inputs.ts kabiInput key): another one → recompute. */
  key: string;
  findings: Array<{ kind: 'unknown' | 'crc-mismatch'; module: string; modulePath: string; symbol: string; expectedCrc: number; foundCrc?: number; provider?: string; message: string }>;
}

export interface CacheContents {
  header: CacheHeader;
  entries: CacheEntry[];
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: false });

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}


/**
 * Where a decoded entry's bytes are in the cache it came from. An update reuses almost every entry
 * as decoded, so the encoder copies those bytes instead of re-interning ~300,000 strings: it keeps
 * the old string table as the prefix of the new one (ids unchanged) and appends new strings.
 * The record and fingerprint objects are remembered too: an entry whose objects were replaced is
 * encoded afresh.
 */
interface DecodedTable {
  bytes: Uint8Array;
  strings: string[];
  blobStart: number;
  blobEnd: number;
}
interface EntryOrigin {
  table: DecodedTable;
  start: number;
  end: number;
  record: ModuleRecord;
  fp: FileFingerprint;
}
const origins = new WeakMap<CacheEntry, EntryOrigin>();

function originOf(e: CacheEntry): EntryOrigin | undefined {
  const o = origins.get(e);
  return o !== undefined && o.record === e.record && o.fp === e.fp ? o : undefined;
}

/** Where entries can be copied from: the table most came from, when that is at least half of them. */
interface Splice {
  table: DecodedTable;
  /** Per entry, its bytes in `table`, or undefined when it must be encoded afresh. */
  copied: Array<EntryOrigin | undefined>;
}

function spliceOf(entries: readonly CacheEntry[]): Splice | undefined {
  const origin = entries.map(originOf);
  const table = (origin[0] ?? origin[origin.length - 1])?.table;
  if (table === undefined) return undefined;
  const copied = origin.map((o) => (o?.table === table ? o : undefined));
  let same = 0;
  for (const o of copied) if (o !== undefined) same++;
  return same * 2 >= entries.length ? { table, copied } : undefined;
}

/** An entry's strings in the order the encoder writes their ids. */
function forEachString(e: CacheEntry, visit: (s: string) => void): void {
  const r = e.record;
  visit(e.path);
  visit(r.name);
  for (const [k, v] of r.modinfo) {
    visit(k);
    visit(v);
  }
  for (const x of r.exports) visit(x.name);
  for (const x of r.imports) visit(x.name);
}

/**
 * Ids in the old table of the strings the entries not copied from it use; -1 for strings it lacks.
 * A merge adds a few entries to thousands of copied ones: looking their strings up in the old table
 * costs one probe per old string, where a map of the whole old table cost one insertion each
 * (~18 ms of a 10-module update on the amd64 tree).
 */
function reusableIds(entries: readonly CacheEntry[], { table, copied }: Splice): Map<string, number> {
  const ids = new Map<string, number>();
  const want = (s: string): void => void ids.set(s, -1);
  for (let i = 0; i < entries.length; i++) if (copied[i] === undefined) forEachString(entries[i]!, want);
  if (ids.size === 0) return ids;
  const old = table.strings;
  // The first id of a string the old table holds more than once, as a map over it would keep.
  for (let i = 0; i < old.length; i++) if (ids.get(old[i]!) === -1) ids.set(old[i]!, i);
  return ids;
}

export function encodeCache(c: CacheContents): Uint8Array {
  const splice = spliceOf(c.entries);
  const base = splice?.table;
  const copied = splice?.copied ?? [];
  // Pass 1: intern strings and size everything. Old strings keep their ids (duplicates included),
  // so copied entries stay valid; new strings are appended after them.
  const baseCount = base?.strings.length ?? 0;
  const ids = splice !== undefined ? reusableIds(c.entries, splice) : new Map<string, number>();
  /** Strings the old table lacks, in id order after it. */
  const fresh: string[] = [];
  // String ids in the order pass 2 writes them: one hash lookup per string, not two.
  const refs: number[] = [];
  let bodyVar = varintSize(c.entries.length);
  const ref = (s: string): void => {
    let id = ids.get(s);
    if (id === undefined || id < 0) {
      id = baseCount + fresh.length;
      ids.set(s, id);
      fresh.push(s);
    }
    refs.push(id);
    bodyVar += varintSize(id);
  };
  for (let i = 0; i < c.entries.length; i++) {
    const from = copied[i];
    if (from !== undefined) {
      bodyVar += from.end - from.start;
      continue;
    }
    const e = c.entries[i]!;
    const r = e.record;
    forEachString(e, ref);
    bodyVar += 32 + varintSize(r.modinfo.length) + varintSize(r.exports.length) + 8 * r.exports.length;
    bodyVar += varintSize(r.imports.length) + 9 * r.imports.length;
  }
  for (const str of fresh) if (str.includes('\0')) throw new RangeError('cache: string contains NUL');
  const freshBlob = enc.encode(fresh.length ? fresh.join('\0') + '\0' : '');
  const baseBlob = base !== undefined ? base.bytes.subarray(base.blobStart, base.blobEnd) : new Uint8Array(0);
  const blobLength = baseBlob.length + freshBlob.length;
  const header = enc.encode(JSON.stringify(c.header));
  const stringCount = baseCount + fresh.length;
  const bodyLen = varintSize(stringCount) + varintSize(blobLength) + blobLength + bodyVar;
  const total = 16 + header.length + 4 + bodyLen + 32;

  // Pass 2: fill one buffer.
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  let o = 0;
  for (let i = 0; i < 8; i++) out[o++] = CACHE_MAGIC.charCodeAt(i);
  dv.setUint32(o, CACHE_VERSION, true);
  dv.setUint32(o + 4, header.length, true);
  o += 8;
  out.set(header, o);
  o += header.length;
  dv.setUint32(o, bodyLen, true);
  o += 4;
  const putVar = (n: number): void => {
    while (n >= 0x80) {
      out[o++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    out[o++] = n;
  };
  putVar(stringCount);
  putVar(blobLength);
  out.set(baseBlob, o);
  o += baseBlob.length;
  out.set(freshBlob, o);
  o += freshBlob.length;
  putVar(c.entries.length);
  let ri = 0;
  for (let i = 0; i < c.entries.length; i++) {
    const from = copied[i];
    if (from !== undefined) {
      out.set(from.table.bytes.subarray(from.start, from.end), o);
      o += from.end - from.start;
      continue;
    }
    const e = c.entries[i]!;
    const r = e.record;
    putVar(refs[ri++]!);
    dv.setBigUint64(o, e.fp.size, true);
    dv.setBigUint64(o + 8, e.fp.mtimeNs, true);
    dv.setBigUint64(o + 16, e.fp.ctimeNs, true);
    dv.setBigUint64(o + 24, e.fp.ino, true);
    o += 32;
    putVar(refs[ri++]!);
    putVar(r.modinfo.length);
    for (let j = 0; j < r.modinfo.length; j++) {
      putVar(refs[ri++]!);
      putVar(refs[ri++]!);
    }
    putVar(r.exports.length);
    for (const x of r.exports) {
      putVar(refs[ri++]!);
      dv.setFloat64(o, x.crc, true);
      o += 8;
    }
    putVar(r.imports.length);
    for (const x of r.imports) {
      putVar(refs[ri++]!);
      dv.setFloat64(o, x.crc, true);
      o += 8;
      out[o++] = x.weak ? 1 : 0;
    }
  }
  const digest = createHash('sha256').update(out.subarray(0, o)).digest();
  out.set(digest, o);
  o += 32;
  if (o !== total) throw new Error(`cache encoder size mismatch: ${o} != ${total}`);
  return out;
}

/** Bounds-checked reader over the cache body; any inconsistency is a FormatError (the caller rebuilds). */
class Reader {
  o: number;
  constructor(
    readonly b: Uint8Array,
    readonly dv: DataView,
    readonly file: string,
    start: number,
    readonly end: number,
  ) {
    this.o = start;
  }
  fail(why: string): never {
    throw new FormatError(this.file, `corrupt module cache: ${why}`, this.o);
  }
  varint(): number {
    let n = 0;
    let mul = 1;
    for (;;) {
      if (this.o >= this.end) this.fail('truncated number');
      const byte = this.b[this.o++]!;
      n += (byte & 0x7f) * mul;
      if (byte < 0x80) return n;
      mul *= 128;
      if (mul > 2 ** 56) this.fail('number too long');
    }
  }
  u64(): bigint {
    if (this.o + 8 > this.end) this.fail('truncated fingerprint');
    const v = this.dv.getBigUint64(this.o, true);
    this.o += 8;
    return v;
  }
  /** A length prefix: never more items than bytes left, so a forged count cannot allocate wildly. */
  count(): number {
    const n = this.varint();
    if (n > this.end - this.o) this.fail('count larger than the data');
    return n;
  }
  f64(): number {
    if (this.o + 8 > this.end) this.fail('truncated CRC');
    const v = this.dv.getFloat64(this.o, true);
    this.o += 8;
    return v;
  }
  byte(): number {
    if (this.o >= this.end) this.fail('truncated flag');
    return this.b[this.o++]!;
  }
}

/** A header whose file passed the checksum, and where the body lies. */
export interface VerifiedHeader {
  header: CacheHeader;
  bodyStart: number;
  bodyEnd: number;
}

/** Reads only the header (cheap): enough to decide that nothing changed. Verifies the checksum first. */
export function decodeCacheHeader(bytes: Uint8Array, file: string): VerifiedHeader {
  if (bytes.length < 16 + 4 + 32) throw new FormatError(file, 'module cache too short');
  for (let i = 0; i < 8; i++) if (bytes[i] !== CACHE_MAGIC.charCodeAt(i)) throw new FormatError(file, 'not a depmod-tx module cache (bad magic)');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== CACHE_VERSION) throw new FormatError(file, `module cache version ${version}, expected ${CACHE_VERSION}`);
  const payloadEnd = bytes.length - 32;
  const digest = createHash('sha256').update(bytes.subarray(0, payloadEnd)).digest();
  if (Buffer.compare(digest, bytes.subarray(payloadEnd)) !== 0) throw new FormatError(file, 'module cache checksum mismatch (tampered or truncated)');
  const hlen = dv.getUint32(12, true);
  if (16 + hlen + 4 > payloadEnd) throw new FormatError(file, 'corrupt module cache: header length out of range', 12);
  let header: CacheHeader;
  try {
    header = JSON.parse(dec.decode(bytes.subarray(16, 16 + hlen))) as CacheHeader;
  } catch {
    throw new FormatError(file, 'corrupt module cache: header is not JSON', 16);
  }
  if (typeof header !== 'object' || header === null || typeof header.kver !== 'string' || typeof header.dirs !== 'object') {
    throw new FormatError(file, 'corrupt module cache: header fields missing', 16);
  }
  const blen = dv.getUint32(16 + hlen, true);
  const bodyStart = 16 + hlen + 4;
  if (bodyStart + blen !== payloadEnd) throw new FormatError(file, 'corrupt module cache: body length mismatch', 16 + hlen);
  return { header, bodyStart, bodyEnd: payloadEnd };
}

/** `verified`: what decodeCacheHeader returned for these bytes (the checksum is not computed twice). */
export function decodeCache(bytes: Uint8Array, file: string, verified: VerifiedHeader = decodeCacheHeader(bytes, file)): CacheContents {
  const { header, bodyStart, bodyEnd } = verified;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new Reader(bytes, dv, file, bodyStart, bodyEnd);
  const nStrings = r.varint();
  const blobLen = r.varint();
  if (r.o + blobLen > bodyEnd) r.fail('string table out of range');
  const strings = blobLen ? dec.decode(bytes.subarray(r.o, r.o + blobLen - 1)).split('\0') : [];
  const table: DecodedTable = { bytes, strings, blobStart: r.o, blobEnd: r.o + blobLen };
  r.o += blobLen;
  if (strings.length !== nStrings) r.fail('string count mismatch');
  const str = (): string => {
    const id = r.varint();
    const s = strings[id];
    return s !== undefined ? s : r.fail(`string index ${id} out of range`);
  };
  const count = (): number => r.count();
  // ~190,000 imports name ~15,000 symbols, nearly always with the kernel's one CRC: modules share
  // one (never mutated) object per name and CRC instead of each getting its own. The objects all
  // live to the end of the merge, so every one not made is one the garbage collector need not copy.
  const importMemo: Array<ImportedSymbol | undefined> = new Array(strings.length);
  const symbol = (): ImportedSymbol => {
    const id = r.varint();
    const name = strings[id] ?? r.fail(`string index ${id} out of range`);
    const crc = r.f64();
    const weak = r.byte() === 1;
    const seen = importMemo[id];
    if (seen !== undefined && seen.crc === crc && seen.weak === weak) return seen;
    const made = { name, crc, weak };
    importMemo[id] = made;
    return made;
  };
  const n = count();
  const entries: CacheEntry[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const start = r.o;
    const path = str();
    const fp = { size: r.u64(), mtimeNs: r.u64(), ctimeNs: r.u64(), ino: r.u64() };
    const name = str();
    const modinfo: Array<[string, string]> = new Array(count());
    for (let j = 0; j < modinfo.length; j++) modinfo[j] = [str(), str()];
    const exports = new Array(count());
    for (let j = 0; j < exports.length; j++) exports[j] = { name: str(), crc: r.f64() };
    const imports: ImportedSymbol[] = new Array(count());
    for (let j = 0; j < imports.length; j++) imports[j] = symbol();
    const record = { name, modinfo, exports, imports };
    const entry = { path, fp, record };
    entries[i] = entry;
    origins.set(entry, { table, start, end: r.o, record, fp });
  }
  if (r.o !== bodyEnd) r.fail('trailing bytes after the last entry');
  return { header, entries };
}

export interface CachedExports {
  path: string;
  name: string;
  exports: Array<{ name: string; crc: number }>;
}

/**
 * Only what a symbol lookup needs (module name and exports), for `depmod-tx check`: modinfo and
 * imports are skipped without building their strings, and only the strings used are decoded.
 * Several times faster than decodeCache on a 4,000-module cache; same checks on the bytes.
 */
export function decodeCacheExports(
  bytes: Uint8Array,
  file: string,
  verified: VerifiedHeader = decodeCacheHeader(bytes, file),
): { header: CacheHeader; modules: CachedExports[] } {
  const { header, bodyStart, bodyEnd } = verified;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new Reader(bytes, dv, file, bodyStart, bodyEnd);
  const nStrings = r.varint();
  const blobLen = r.varint();
  if (r.o + blobLen > bodyEnd) r.fail('string table out of range');
  const blobStart = r.o;
  const starts = new Int32Array(nStrings + 1);
  let k = 0;
  starts[0] = blobStart;
  for (let i = blobStart, end = blobStart + blobLen; i < end; i++) {
    if (bytes[i] === 0) {
      if (k >= nStrings) r.fail('string count mismatch');
      starts[++k] = i + 1;
    }
  }
  if (k !== nStrings) r.fail('string count mismatch');
  r.o += blobLen;
  const memo: Array<string | undefined> = new Array(nStrings);
  const str = (): string => {
    const id = r.varint();
    if (id >= nStrings) r.fail(`string index ${id} out of range`);
    let s = memo[id];
    if (s === undefined) {
      s = dec.decode(bytes.subarray(starts[id]!, starts[id + 1]! - 1));
      memo[id] = s;
    }
    return s;
  };
  const skipStr = (): void => {
    if (r.varint() >= nStrings) r.fail('string index out of range');
  };
  const count = (): number => r.count();
  const n = count();
  const modules: CachedExports[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const path = str();
    if (r.o + 32 > bodyEnd) r.fail('truncated fingerprint');
    r.o += 32;
    const name = str();
    for (let j = count(); j > 0; j--) {
      skipStr();
      skipStr();
    }
    const exports = new Array<{ name: string; crc: number }>(count());
    for (let j = 0; j < exports.length; j++) exports[j] = { name: str(), crc: r.f64() };
    for (let j = count(); j > 0; j--) {
      skipStr();
      if (r.o + 9 > bodyEnd) r.fail('truncated CRC');
      r.o += 9;
    }
    modules[i] = { path, name, exports };
  }
  if (r.o !== bodyEnd) r.fail('trailing bytes after the last entry');
  return { header, modules };
}
