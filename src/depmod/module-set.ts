// The facts of one kernel's modules, compact: everything depmod takes from each module file (name,
// path, aliases, softdeps, weakdeps, exports and imports with CRCs), as typed-array columns over a
// byte heap and a symbol pool, plus the kernel's own symbols (Module.symvers / System.map). This is
// what the module cache stores (src/cache/format.ts maps the columns to the file as they are), so
// an update opens it without decoding and adds or drops a few modules in place; compute.ts derives
// the database from it with the same code whatever the history of the set.
//
// A module lives in a slot; dropping it only clears `alive` (its bytes stay until compact()).
// One encoder lays out a module's facts: addReading, from the parser's byte ranges (RawReading).
// A cold build runs it in each parse worker on a set of its own (a chunk: symbol ids local to the
// worker), sent back as transferable arrays (toChunk) and copied in here by appendChunk, which
// re-interns the names through this set's pool; add() of one record (the update path) is the same
// two steps in this thread, and compact() the same copy. Pure: readings in, columns out; no file system.
import { KmodAbortError } from '../errors.ts';
import { rawReadingOf, type ModuleRecord, type RawReading } from '../module/record.ts';
import { normalizeAlias } from './alias.ts';
import { ByteHeap, decodeBytes, grow, scratchBytes } from './bytes.ts';
import { depmodError, depmodWarning, type DepmodMessage } from './diagnostic.ts';
import { refreshKeyOrder, type KeyOrder } from './key-order.ts';
import { hashSuperfast, hashSuperfastRange, MODULES_BY_NAME_BUCKETS } from './kmod-hash.ts';
import { kmodModname } from './search.ts';
import { SymbolPool } from './symbol-pool.ts';

/** aliasKeyLen of an alias kmod skips ("Unmatched bracket in ..."). */
export const UNMATCHED_ALIAS = 0xffffffff;

/** Longest alias normalised byte for byte: within alias_normalize's PATH_MAX - 1 (alias.ts). */
const ALIAS_PLAIN_MAX = 4095;

/** A file's identity when it was parsed: size, mtime and ctime in ns, inode. */
export interface Fingerprint {
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
}

/** Where the kernel's own symbols came from: decides the KABI basis (build.ts KabiBasis). */
export type KernelSymbolSource = 'symvers' | 'system-map';

/** The columns, as the cache stores them (every array may be longer than its count). */
export interface ModuleSetColumns {
  slots: number;
  alive: Uint8Array;
  pathOff: Uint32Array;
  pathLen: Uint32Array;
  nameOff: Uint32Array;
  nameLen: Uint32Array;
  /** kmod's modules_by_name bucket (hash_superfast & 511): the module array's base order. */
  bucket: Uint16Array;
  /** modules.order position (orderPositions), 1 for a module the file does not list. */
  sortIdx: Int32Array;
  /** 1 for a .ko.zst kmod 34+ cannot load (ModuleRecord.zstdUnsized). */
  zstdUnsized: Uint8Array;
  /**
   * Why kmod failed to load the module (ModuleReading.loadError), as bytes in the heap (loadText):
   * length 0 when it loaded.
   */
  loadErrOff: Uint32Array;
  loadErrLen: Uint32Array;
  /** 1 when kmod 34 reads the file otherwise than older kmods (ModuleRecord.kmod34): the slot holds one kmod's reading. */
  byKmod: Uint8Array;
  /** 4 per slot: size, mtimeNs, ctimeNs, ino. */
  fp: BigUint64Array;
  aliasStart: Uint32Array;
  aliasCount: Uint32Array;
  softStart: Uint32Array;
  softCount: Uint32Array;
  weakStart: Uint32Array;
  weakCount: Uint32Array;
  expStart: Uint32Array;
  expCount: Uint32Array;
  impStart: Uint32Array;
  impCount: Uint32Array;
  aliases: number;
  /** The slot each alias belongs to. */
  aliasSlot: Uint32Array;
  aliasRawOff: Uint32Array;
  aliasRawLen: Uint32Array;
  aliasKeyOff: Uint32Array;
  aliasKeyLen: Uint32Array;
  values: number;
  valueOff: Uint32Array;
  valueLen: Uint32Array;
  exports: number;
  expSym: Uint32Array;
  expCrc: Float64Array;
  imports: number;
  impSym: Uint32Array;
  impCrc: Float64Array;
  impWeak: Uint8Array;
  heap: ByteHeap;
  pool: SymbolPool;
  /** Per symbol id: 1 when the kernel provides it, with kernelCrc (0 from System.map). */
  kernelHas: Uint8Array;
  kernelCrc: Float64Array;
  kernelSource: KernelSymbolSource | undefined;
  /**
   * Index keys in byte order, kept between merges (key-order.ts): alias ids by normalised alias,
   * slots by module name, symbol ids by name. Ids from *SortedThrough on are not in them yet.
   */
  aliasOrder: Uint32Array;
  aliasLcp: Uint32Array;
  aliasSortedThrough: number;
  nameOrder: Uint32Array;
  nameLcp: Uint32Array;
  nameSortedThrough: number;
  symbolOrder: Uint32Array;
  symbolLcp: Uint32Array;
  symbolSortedThrough: number;
}

/** What a chunk leaves out of the set's columns: the set's own bookkeeping, and the heap and pool it narrows. */
type NotInChunk =
  | 'alive' | 'aliasSlot' | 'kernelHas' | 'kernelCrc' | 'kernelSource' | 'heap' | 'pool'
  | 'aliasOrder' | 'aliasLcp' | 'aliasSortedThrough' | 'nameOrder' | 'nameLcp' | 'nameSortedThrough' | 'symbolOrder' | 'symbolLcp' | 'symbolSortedThrough';

/**
 * The columns of some modules as a parse worker hands them to the set (ModuleSet.toChunk): each
 * array holds at least its count, names are ids into the chunk's own symbol pool, and strings are
 * ranges of its heap. A ModuleSet is one too (compact() and add() copy from sets).
 */
export interface ModuleChunk extends Omit<ModuleSetColumns, NotInChunk> {
  heap: { bytes: Uint8Array };
  pool: { count: number; heap: { bytes: Uint8Array }; off: Uint32Array; len: Uint32Array; hash: Uint32Array };
}

/** The arrays of a chunk, for postMessage's transfer list. */
export function chunkBuffers(c: ModuleChunk): ArrayBuffer[] {
  const arrays = [
    c.pathOff, c.pathLen, c.nameOff, c.nameLen, c.bucket, c.sortIdx, c.zstdUnsized, c.loadErrOff, c.loadErrLen, c.byKmod, c.fp, c.aliasStart, c.aliasCount,
    c.softStart, c.softCount, c.weakStart, c.weakCount, c.expStart, c.expCount, c.impStart, c.impCount, c.aliasRawOff, c.aliasRawLen, c.aliasKeyOff,
    c.aliasKeyLen, c.valueOff, c.valueLen, c.expSym, c.expCrc, c.impSym, c.impCrc, c.impWeak, c.heap.bytes, c.pool.heap.bytes, c.pool.off, c.pool.len, c.pool.hash,
  ];
  return [...new Set(arrays.map((a) => a.buffer as ArrayBuffer))];
}

const KEY_ALIAS = [0x61, 0x6c, 0x69, 0x61, 0x73]; // "alias"
const KEY_SOFTDEP = [0x73, 0x6f, 0x66, 0x74, 0x64, 0x65, 0x70];
const KEY_WEAKDEP = [0x77, 0x65, 0x61, 0x6b, 0x64, 0x65, 0x70];

function isKey(bytes: Uint8Array, start: number, end: number, key: readonly number[]): boolean {
  if (end - start !== key.length) return false;
  for (let i = 0; i < key.length; i++) if (bytes[start + i] !== key[i]) return false;
  return true;
}

function isAscii(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (bytes[i]! >= 0x80) return false;
  return true;
}

/** Where add() lays out a record before copying it in (the cold build's two steps, in one thread). */
let scratchSet: ModuleSet | undefined;

export class ModuleSet implements ModuleSetColumns, ModuleChunk {
  slots = 0;
  alive: Uint8Array;
  pathOff: Uint32Array;
  pathLen: Uint32Array;
  nameOff: Uint32Array;
  nameLen: Uint32Array;
  bucket: Uint16Array;
  sortIdx: Int32Array;
  zstdUnsized: Uint8Array;
  loadErrOff: Uint32Array;
  loadErrLen: Uint32Array;
  byKmod: Uint8Array;
  fp: BigUint64Array;
  aliasStart: Uint32Array;
  aliasCount: Uint32Array;
  softStart: Uint32Array;
  softCount: Uint32Array;
  weakStart: Uint32Array;
  weakCount: Uint32Array;
  expStart: Uint32Array;
  expCount: Uint32Array;
  impStart: Uint32Array;
  impCount: Uint32Array;
  aliases = 0;
  aliasSlot: Uint32Array;
  aliasRawOff: Uint32Array;
  aliasRawLen: Uint32Array;
  aliasKeyOff: Uint32Array;
  aliasKeyLen: Uint32Array;
  values = 0;
  valueOff: Uint32Array;
  valueLen: Uint32Array;
  exports = 0;
  expSym: Uint32Array;
  expCrc: Float64Array;
  imports = 0;
  impSym: Uint32Array;
  impCrc: Float64Array;
  impWeak: Uint8Array;
  heap: ByteHeap;
  pool = new SymbolPool();
  kernelHas = new Uint8Array(1024);
  kernelCrc = new Float64Array(1024);
  kernelSource: KernelSymbolSource | undefined = undefined;
  aliasOrder: Uint32Array = new Uint32Array(0);
  aliasLcp: Uint32Array = new Uint32Array(0);
  aliasSortedThrough = 0;
  nameOrder: Uint32Array = new Uint32Array(0);
  nameLcp: Uint32Array = new Uint32Array(0);
  nameSortedThrough = 0;
  symbolOrder: Uint32Array = new Uint32Array(0);
  symbolLcp: Uint32Array = new Uint32Array(0);
  symbolSortedThrough = 0;

  /** `slotsHint`: how many modules to make room for (a whole kernel by default; a worker's chunk holds a few dozen). */
  constructor(slotsHint = 256) {
    const n = Math.max(1, slotsHint);
    this.alive = new Uint8Array(n);
    this.pathOff = new Uint32Array(n);
    this.pathLen = new Uint32Array(n);
    this.nameOff = new Uint32Array(n);
    this.nameLen = new Uint32Array(n);
    this.bucket = new Uint16Array(n);
    this.sortIdx = new Int32Array(n);
    this.zstdUnsized = new Uint8Array(n);
    this.loadErrOff = new Uint32Array(n);
    this.loadErrLen = new Uint32Array(n);
    this.byKmod = new Uint8Array(n);
    this.fp = new BigUint64Array(4 * n);
    this.aliasStart = new Uint32Array(n);
    this.aliasCount = new Uint32Array(n);
    this.softStart = new Uint32Array(n);
    this.softCount = new Uint32Array(n);
    this.weakStart = new Uint32Array(n);
    this.weakCount = new Uint32Array(n);
    this.expStart = new Uint32Array(n);
    this.expCount = new Uint32Array(n);
    this.impStart = new Uint32Array(n);
    this.impCount = new Uint32Array(n);
    // Per module on a Debian tree: ~7 aliases, ~4 exports, ~45 imports, ~500 heap bytes.
    this.aliasSlot = new Uint32Array(4 * n);
    this.aliasRawOff = new Uint32Array(4 * n);
    this.aliasRawLen = new Uint32Array(4 * n);
    this.aliasKeyOff = new Uint32Array(4 * n);
    this.aliasKeyLen = new Uint32Array(4 * n);
    this.valueOff = new Uint32Array(n);
    this.valueLen = new Uint32Array(n);
    this.expSym = new Uint32Array(4 * n);
    this.expCrc = new Float64Array(4 * n);
    this.impSym = new Uint32Array(32 * n);
    this.impCrc = new Float64Array(32 * n);
    this.impWeak = new Uint8Array(32 * n);
    this.heap = new ByteHeap(new Uint8Array(Math.max(1 << 12, 1024 * n)));
  }

  static fromColumns(c: ModuleSetColumns): ModuleSet {
    return Object.assign(new ModuleSet(1), c);
  }

  /** The live slots, in slot order. */
  liveSlots(): number[] {
    const out: number[] = [];
    for (let s = 0; s < this.slots; s++) if (this.alive[s] === 1) out.push(s);
    return out;
  }

  get liveCount(): number {
    let n = 0;
    for (let s = 0; s < this.slots; s++) n += this.alive[s]!;
    return n;
  }

  path(slot: number): string {
    return this.heap.text(this.pathOff[slot]!, this.pathLen[slot]!);
  }

  name(slot: number): string {
    return this.heap.text(this.nameOff[slot]!, this.nameLen[slot]!);
  }

  /** Why kmod could not load the module in `slot`, or undefined when it loaded it (see loadText). */
  loadFailure(slot: number): LoadFailure | undefined {
    const len = this.loadErrLen[slot]!;
    return len === 0 ? undefined : parseLoadText(this.heap.text(this.loadErrOff[slot]!, len));
  }

  fingerprint(slot: number): Fingerprint {
    const f = this.fp;
    return { size: f[4 * slot]!, mtimeNs: f[4 * slot + 1]!, ctimeNs: f[4 * slot + 2]!, ino: f[4 * slot + 3]! };
  }

  /**
   * Adds the module file `path` (modules.dep spelling: relative to the module directory, or
   * absolute) with its parsed record as the kmod being written for reads it (readingFor); returns
   * its slot. `sortIdx` is its modules.order position. A record kmod's depmod dies on cannot be
   * part of any database: KmodAbortError, the set unchanged. Laid out by the cold build's encoder
   * (addReading, on a scratch set) and copied in (appendChunk), as a worker's modules are.
   */
  add(path: string, fp: Fingerprint, record: ModuleRecord, sortIdx: number, byKmod = false): number {
    if (record.kmodAborts !== undefined) throw new KmodAbortError(path, record.kmodAborts, record.loadDetail);
    const scratch = (scratchSet ??= new ModuleSet(1));
    scratch.#clear();
    scratch.addReading(path, fp, rawReadingOf(record), record.zstdUnsized === true, sortIdx, byKmod);
    return this.appendChunk(scratch);
  }

  /**
   * The encoder: lays out the facts of the module file `path` as read (`r`, the reading the kmod
   * being written for takes: readingForKmod) in a new slot; returns it. A name with bytes past
   * ASCII is stored as its UTF-8 decoding encodes (what a record's string holds), so that a
   * record and the image it was read from give the same set.
   */
  addReading(path: string, fp: Fingerprint, r: RawReading, zstdUnsized: boolean, sortIdx: number, byKmod: boolean): number {
    const s = this.slots++;
    this.#growSlots(s + 1);
    this.alive[s] = 1;
    [this.pathOff[s], this.pathLen[s]] = this.heap.appendString(path);
    const nameBytes = scratchBytes(kmodModname(path));
    this.bucket[s] = hashSuperfast(nameBytes) & (MODULES_BY_NAME_BUCKETS - 1);
    this.nameOff[s] = this.heap.append(nameBytes);
    this.nameLen[s] = nameBytes.length;
    this.sortIdx[s] = sortIdx;
    this.zstdUnsized[s] = zstdUnsized ? 1 : 0;
    this.byKmod[s] = byKmod ? 1 : 0;
    if (r.loadError !== undefined) [this.loadErrOff[s], this.loadErrLen[s]] = this.heap.appendString(loadText(r));
    else [this.loadErrOff[s], this.loadErrLen[s]] = [0, 0];
    this.fp[4 * s] = fp.size;
    this.fp[4 * s + 1] = fp.mtimeNs;
    this.fp[4 * s + 2] = fp.ctimeNs;
    this.fp[4 * s + 3] = fp.ino;

    // .modinfo: aliases (raw for modules.alias, normalised for modules.alias.bin), softdeps, weakdeps.
    const b = r.bytes;
    const mi = r.modinfo;
    this.aliasStart[s] = this.aliases;
    const aliasFirst = this.aliases;
    for (let i = 0; i < mi.length; i += 4) if (isKey(b, mi[i]!, mi[i + 1]!, KEY_ALIAS)) this.#addAlias(s, b, mi[i + 2]!, mi[i + 3]!);
    this.aliasCount[s] = this.aliases - aliasFirst;
    this.softStart[s] = this.values;
    for (let i = 0; i < mi.length; i += 4) if (isKey(b, mi[i]!, mi[i + 1]!, KEY_SOFTDEP)) this.#addValue(b, mi[i + 2]!, mi[i + 3]!);
    this.softCount[s] = this.values - this.softStart[s]!;
    this.weakStart[s] = this.values;
    for (let i = 0; i < mi.length; i += 4) if (isKey(b, mi[i]!, mi[i + 1]!, KEY_WEAKDEP)) this.#addValue(b, mi[i + 2]!, mi[i + 3]!);
    this.weakCount[s] = this.values - this.weakStart[s]!;

    const ne = r.exportCrcs.length;
    this.expSym = grow(this.expSym, this.exports + ne);
    this.expCrc = grow(this.expCrc, this.exports + ne);
    this.expStart[s] = this.exports;
    this.expCount[s] = ne;
    for (let k = 0; k < ne; k++) {
      this.expSym[this.exports] = this.#internName(b, r.exports[2 * k]!, r.exports[2 * k + 1]!);
      this.expCrc[this.exports++] = r.exportCrcs[k]!;
    }
    const ni = r.importCrcs.length;
    this.impSym = grow(this.impSym, this.imports + ni);
    this.impCrc = grow(this.impCrc, this.imports + ni);
    this.impWeak = grow(this.impWeak, this.imports + ni);
    this.impStart[s] = this.imports;
    this.impCount[s] = ni;
    for (let k = 0; k < ni; k++) {
      this.impSym[this.imports] = this.#internName(b, r.imports[3 * k]!, r.imports[3 * k + 1]!);
      this.impCrc[this.imports] = r.importCrcs[k]!;
      this.impWeak[this.imports++] = r.imports[3 * k + 2]!;
    }
    this.#growSymbols();
    return s;
  }

  #internName(b: Uint8Array, start: number, end: number): number {
    if (isAscii(b, start, end)) return this.pool.internRange(b, start, end - start, hashSuperfastRange(b, start, end));
    return this.pool.internString(decodeBytes(b, start, end));
  }

  /**
   * Copies the modules of `chunk` in (in `order`, by default the chunk's), their names interned in
   * this set's pool in the order the modules mention them, as add() of each would; returns the
   * first new slot (the rest follow it).
   */
  appendChunk(chunk: ModuleChunk, order?: ArrayLike<number>): number {
    const first = this.slots;
    const ids = new Int32Array(chunk.pool.count).fill(-1);
    const n = order === undefined ? chunk.slots : order.length;
    for (let k = 0; k < n; k++) this.#appendSlot(chunk, order === undefined ? k : order[k]!, ids);
    this.#growSymbols();
    return first;
  }

  /**
   * The one copy of a module's columns: slot `s` of `from` into a new slot here. `ids` maps the
   * source pool's ids to this pool's, filled as names come (-1: not yet); undefined when both sets
   * share the pool (compact()).
   */
  #appendSlot(from: ModuleChunk, s: number, ids: Int32Array | undefined): number {
    const d = this.slots++;
    this.#growSlots(d + 1);
    const h = from.heap.bytes;
    const heap = this.heap;
    this.alive[d] = 1;
    this.pathOff[d] = heap.appendRange(h, from.pathOff[s]!, from.pathLen[s]!);
    this.pathLen[d] = from.pathLen[s]!;
    this.nameOff[d] = heap.appendRange(h, from.nameOff[s]!, from.nameLen[s]!);
    this.nameLen[d] = from.nameLen[s]!;
    this.bucket[d] = from.bucket[s]!;
    this.sortIdx[d] = from.sortIdx[s]!;
    this.zstdUnsized[d] = from.zstdUnsized[s]!;
    this.byKmod[d] = from.byKmod[s]!;
    const el = from.loadErrLen[s]!;
    this.loadErrLen[d] = el;
    this.loadErrOff[d] = el === 0 ? 0 : heap.appendRange(h, from.loadErrOff[s]!, el);
    for (let k = 0; k < 4; k++) this.fp[4 * d + k] = from.fp[4 * s + k]!;

    const ac = from.aliasCount[s]!;
    this.aliasStart[d] = this.aliases;
    this.aliasCount[d] = ac;
    this.#growAliases(this.aliases + ac);
    for (let a = from.aliasStart[s]!, e = a + ac; a < e; a++) {
      const i = this.aliases++;
      const raw = from.aliasRawOff[a]!;
      this.aliasSlot[i] = d;
      this.aliasRawOff[i] = heap.appendRange(h, raw, from.aliasRawLen[a]!);
      this.aliasRawLen[i] = from.aliasRawLen[a]!;
      const kl = from.aliasKeyLen[a]!;
      this.aliasKeyLen[i] = kl;
      this.aliasKeyOff[i] = kl === UNMATCHED_ALIAS ? 0 : from.aliasKeyOff[a] === raw ? this.aliasRawOff[i]! : heap.appendRange(h, from.aliasKeyOff[a]!, kl);
    }
    this.softStart[d] = this.#copyValues(from, from.softStart[s]!, from.softCount[s]!);
    this.softCount[d] = from.softCount[s]!;
    this.weakStart[d] = this.#copyValues(from, from.weakStart[s]!, from.weakCount[s]!);
    this.weakCount[d] = from.weakCount[s]!;

    const es = from.expStart[s]!;
    const ec = from.expCount[s]!;
    this.expSym = grow(this.expSym, this.exports + ec);
    this.expCrc = grow(this.expCrc, this.exports + ec);
    this.expStart[d] = this.exports;
    this.expCount[d] = ec;
    this.#copySymbols(from, from.expSym, es, ec, this.expSym, this.exports, ids);
    this.expCrc.set(from.expCrc.subarray(es, es + ec), this.exports);
    this.exports += ec;
    const is = from.impStart[s]!;
    const ic = from.impCount[s]!;
    this.impSym = grow(this.impSym, this.imports + ic);
    this.impCrc = grow(this.impCrc, this.imports + ic);
    this.impWeak = grow(this.impWeak, this.imports + ic);
    this.impStart[d] = this.imports;
    this.impCount[d] = ic;
    this.#copySymbols(from, from.impSym, is, ic, this.impSym, this.imports, ids);
    this.impCrc.set(from.impCrc.subarray(is, is + ic), this.imports);
    this.impWeak.set(from.impWeak.subarray(is, is + ic), this.imports);
    this.imports += ic;
    return d;
  }

  #copyValues(from: ModuleChunk, start: number, count: number): number {
    const first = this.values;
    this.valueOff = grow(this.valueOff, first + count);
    this.valueLen = grow(this.valueLen, first + count);
    for (let v = start; v < start + count; v++) {
      const i = this.values++;
      this.valueOff[i] = this.heap.appendRange(from.heap.bytes, from.valueOff[v]!, from.valueLen[v]!);
      this.valueLen[i] = from.valueLen[v]!;
    }
    return first;
  }

  #copySymbols(from: ModuleChunk, src: Uint32Array, start: number, count: number, dst: Uint32Array, at: number, ids: Int32Array | undefined): void {
    if (ids === undefined) {
      dst.set(src.subarray(start, start + count), at);
      return;
    }
    const p = from.pool;
    for (let k = 0; k < count; k++) {
      const local = src[start + k]!;
      let id = ids[local]!;
      if (id < 0) id = ids[local] = this.pool.internRange(p.heap.bytes, p.off[local]!, p.len[local]!, p.hash[local]!);
      dst[at + k] = id;
    }
  }

  /**
   * The modules laid out so far, every array cut to its count (copies), for a worker to transfer
   * (chunkBuffers) to the thread that appends them.
   */
  toChunk(): ModuleChunk {
    const n = this.slots;
    const p = this.pool;
    return {
      slots: n,
      pathOff: this.pathOff.slice(0, n),
      pathLen: this.pathLen.slice(0, n),
      nameOff: this.nameOff.slice(0, n),
      nameLen: this.nameLen.slice(0, n),
      bucket: this.bucket.slice(0, n),
      sortIdx: this.sortIdx.slice(0, n),
      zstdUnsized: this.zstdUnsized.slice(0, n),
      loadErrOff: this.loadErrOff.slice(0, n),
      loadErrLen: this.loadErrLen.slice(0, n),
      byKmod: this.byKmod.slice(0, n),
      fp: this.fp.slice(0, 4 * n),
      aliasStart: this.aliasStart.slice(0, n),
      aliasCount: this.aliasCount.slice(0, n),
      softStart: this.softStart.slice(0, n),
      softCount: this.softCount.slice(0, n),
      weakStart: this.weakStart.slice(0, n),
      weakCount: this.weakCount.slice(0, n),
      expStart: this.expStart.slice(0, n),
      expCount: this.expCount.slice(0, n),
      impStart: this.impStart.slice(0, n),
      impCount: this.impCount.slice(0, n),
      aliases: this.aliases,
      aliasRawOff: this.aliasRawOff.slice(0, this.aliases),
      aliasRawLen: this.aliasRawLen.slice(0, this.aliases),
      aliasKeyOff: this.aliasKeyOff.slice(0, this.aliases),
      aliasKeyLen: this.aliasKeyLen.slice(0, this.aliases),
      values: this.values,
      valueOff: this.valueOff.slice(0, this.values),
      valueLen: this.valueLen.slice(0, this.values),
      exports: this.exports,
      expSym: this.expSym.slice(0, this.exports),
      expCrc: this.expCrc.slice(0, this.exports),
      imports: this.imports,
      impSym: this.impSym.slice(0, this.imports),
      impCrc: this.impCrc.slice(0, this.imports),
      impWeak: this.impWeak.slice(0, this.imports),
      heap: { bytes: this.heap.bytes.slice(0, this.heap.used) },
      pool: { count: p.count, heap: { bytes: p.heap.bytes.slice(0, p.heap.used) }, off: p.off.slice(0, p.count), len: p.len.slice(0, p.count), hash: p.hash.slice(0, p.count) },
    };
  }

  /** Empties a scratch set (no modules, no names) for the next record. */
  #clear(): void {
    this.slots = this.aliases = this.values = this.exports = this.imports = 0;
    this.heap.used = 0;
    this.pool.clear();
  }

  drop(slot: number): void {
    this.alive[slot] = 0;
    this.#aliasOrderHasDropped = true;
    this.#nameOrderHasDropped = true;
  }

  /**
   * A module was dropped since that key order was last brought up to date (it may hold its ids).
   * Not saved: the cache is written with its orders up to date (encodeCache refreshes them).
   */
  #aliasOrderHasDropped = false;
  #nameOrderHasDropped = false;

  /** The kernel's symbols (Module.symvers or System.map, name → CRC), replacing any earlier set. */
  setKernelSymbols(source: KernelSymbolSource | undefined, symbols: ReadonlyMap<string, number>): void {
    this.kernelHas.fill(0);
    this.kernelSource = source;
    for (const [name, crc] of symbols) {
      const id = this.pool.internString(name);
      this.#growSymbols();
      this.kernelHas[id] = 1;
      this.kernelCrc[id] = crc;
    }
  }

  /** Makes room for per-symbol columns after the pool grew. */
  #growSymbols(): void {
    const n = this.pool.count;
    if (n > this.kernelHas.length) {
      this.kernelHas = grow(this.kernelHas, n);
      this.kernelCrc = grow(this.kernelCrc, n);
    }
  }

  #growAliases(n: number): void {
    if (n <= this.aliasRawOff.length) return;
    this.aliasSlot = grow(this.aliasSlot, n);
    this.aliasRawOff = grow(this.aliasRawOff, n);
    this.aliasRawLen = grow(this.aliasRawLen, n);
    this.aliasKeyOff = grow(this.aliasKeyOff, n);
    this.aliasKeyLen = grow(this.aliasKeyLen, n);
  }

  /** An alias, bytes start..end of `b`: as written (modules.alias) and normalised (modules.alias.bin). */
  #addAlias(slot: number, b: Uint8Array, start: number, end: number): void {
    const a = this.aliases++;
    this.#growAliases(a + 1);
    this.aliasSlot[a] = slot;
    // The common alias (ASCII, no bracket, short) normalises byte for byte: '-' becomes '_'.
    let plain = end - start <= ALIAS_PLAIN_MAX;
    let dashes = false;
    for (let i = start; plain && i < end; i++) {
      const c = b[i]!;
      if (c >= 0x80 || c === 0x5b || c === 0x5d || c === 0) plain = false;
      else if (c === 0x2d) dashes = true;
    }
    if (plain) {
      const off = this.heap.appendRange(b, start, end - start);
      this.aliasRawOff[a] = off;
      this.aliasRawLen[a] = end - start;
      this.aliasKeyLen[a] = end - start;
      if (!dashes) this.aliasKeyOff[a] = off;
      else {
        const k = (this.aliasKeyOff[a] = this.heap.appendRange(b, start, end - start));
        const hb = this.heap.bytes;
        for (let i = k; i < k + (end - start); i++) if (hb[i] === 0x2d) hb[i] = 0x5f;
      }
      return;
    }
    const raw = decodeBytes(b, start, end);
    [this.aliasRawOff[a], this.aliasRawLen[a]] = this.heap.appendString(raw);
    const key = normalizeAlias(raw);
    if (key === null) {
      this.aliasKeyOff[a] = 0;
      this.aliasKeyLen[a] = UNMATCHED_ALIAS;
    } else if (key === raw) {
      this.aliasKeyOff[a] = this.aliasRawOff[a]!;
      this.aliasKeyLen[a] = this.aliasRawLen[a]!;
    } else {
      [this.aliasKeyOff[a], this.aliasKeyLen[a]] = this.heap.appendString(key);
    }
  }

  /** A softdep or weakdep value, bytes start..end of `b`, as a record's string holds it. */
  #addValue(b: Uint8Array, start: number, end: number): void {
    const i = this.values++;
    if (i >= this.valueOff.length) {
      this.valueOff = grow(this.valueOff, i + 1);
      this.valueLen = grow(this.valueLen, i + 1);
    }
    if (isAscii(b, start, end)) [this.valueOff[i], this.valueLen[i]] = [this.heap.appendRange(b, start, end - start), end - start];
    else [this.valueOff[i], this.valueLen[i]] = this.heap.appendString(decodeBytes(b, start, end));
  }

  #growSlots(n: number): void {
    // Columns loaded from a cache may have different room: the fingerprint's too (four words a slot).
    if (n <= this.alive.length && 4 * n <= this.fp.length) return;
    this.alive = grow(this.alive, n);
    this.pathOff = grow(this.pathOff, n);
    this.pathLen = grow(this.pathLen, n);
    this.nameOff = grow(this.nameOff, n);
    this.nameLen = grow(this.nameLen, n);
    this.bucket = grow(this.bucket, n);
    this.sortIdx = grow(this.sortIdx, n);
    this.zstdUnsized = grow(this.zstdUnsized, n);
    this.loadErrOff = grow(this.loadErrOff, n);
    this.loadErrLen = grow(this.loadErrLen, n);
    this.byKmod = grow(this.byKmod, n);
    this.fp = grow(this.fp, 4 * n);
    this.aliasStart = grow(this.aliasStart, n);
    this.aliasCount = grow(this.aliasCount, n);
    this.softStart = grow(this.softStart, n);
    this.softCount = grow(this.softCount, n);
    this.weakStart = grow(this.weakStart, n);
    this.weakCount = grow(this.weakCount, n);
    this.expStart = grow(this.expStart, n);
    this.expCount = grow(this.expCount, n);
    this.impStart = grow(this.impStart, n);
    this.impCount = grow(this.impCount, n);
  }

  /** Live alias ids that go into modules.alias.bin, by normalised alias (key-order.ts). */
  sortedAliases(): KeyOrder {
    if (this.aliasSortedThrough === this.aliases && !this.#aliasOrderHasDropped) return { ids: this.aliasOrder, lcp: this.aliasLcp };
    this.#aliasOrderHasDropped = false;
    const { alive, aliasSlot, aliasKeyLen } = this;
    const o = refreshKeyOrder(
      { ids: this.aliasOrder, lcp: this.aliasLcp },
      this.aliasSortedThrough,
      this.aliases,
      (a) => alive[aliasSlot[a]!] === 1 && aliasKeyLen[a] !== UNMATCHED_ALIAS,
      { heap: this.heap.bytes, off: this.aliasKeyOff, len: this.aliasKeyLen },
    );
    [this.aliasOrder, this.aliasLcp, this.aliasSortedThrough] = [o.ids, o.lcp, this.aliases];
    return o;
  }

  /** Live slots by module name. */
  sortedNames(): KeyOrder {
    if (this.nameSortedThrough === this.slots && !this.#nameOrderHasDropped) return { ids: this.nameOrder, lcp: this.nameLcp };
    this.#nameOrderHasDropped = false;
    const alive = this.alive;
    const o = refreshKeyOrder({ ids: this.nameOrder, lcp: this.nameLcp }, this.nameSortedThrough, this.slots, (s) => alive[s] === 1, {
      heap: this.heap.bytes,
      off: this.nameOff,
      len: this.nameLen,
    });
    [this.nameOrder, this.nameLcp, this.nameSortedThrough] = [o.ids, o.lcp, this.slots];
    return o;
  }

  /** Every symbol id by name. */
  sortedSymbols(): KeyOrder {
    const p = this.pool;
    if (this.symbolSortedThrough === p.count) return { ids: this.symbolOrder, lcp: this.symbolLcp };
    const o = refreshKeyOrder({ ids: this.symbolOrder, lcp: this.symbolLcp }, this.symbolSortedThrough, p.count, () => true, { heap: p.heap.bytes, off: p.off, len: p.len });
    [this.symbolOrder, this.symbolLcp, this.symbolSortedThrough] = [o.ids, o.lcp, p.count];
    return o;
  }

  /** Bytes and entries that dropped modules still hold, against the total (for compaction). */
  garbageRatio(): number {
    let dead = 0;
    let total = 0;
    for (let s = 0; s < this.slots; s++) {
      const w = this.impCount[s]! + this.aliasCount[s]! * 4 + 8;
      total += w;
      if (this.alive[s] === 0) dead += w;
    }
    return total === 0 ? 0 : dead / total;
  }

  /**
   * A copy holding only the live modules, in slot order, with the same symbol pool and kernel
   * symbols: what the cache saves once dropped modules take up a noticeable share.
   */
  compact(): ModuleSet {
    const aliasOrder = this.sortedAliases();
    const nameOrder = this.sortedNames();
    const newSlot = new Int32Array(this.slots).fill(-1);
    const newAlias = new Int32Array(this.aliases).fill(-1);
    const out = new ModuleSet(this.liveCount);
    out.pool = this.pool;
    out.symbolOrder = this.symbolOrder;
    out.symbolLcp = this.symbolLcp;
    out.symbolSortedThrough = this.symbolSortedThrough;
    out.kernelHas = this.kernelHas;
    out.kernelCrc = this.kernelCrc;
    out.kernelSource = this.kernelSource;
    for (let s = 0; s < this.slots; s++) {
      if (this.alive[s] !== 1) continue;
      const d = out.#appendSlot(this, s, undefined);
      newSlot[s] = d;
      for (let k = 0; k < this.aliasCount[s]!; k++) newAlias[this.aliasStart[s]! + k] = out.aliasStart[d]! + k;
    }
    // The orders hold live ids only (just refreshed): renumbered, they stay sorted.
    out.aliasOrder = aliasOrder.ids.map((a) => newAlias[a]!);
    out.aliasLcp = aliasOrder.lcp;
    out.aliasSortedThrough = out.aliases;
    out.nameOrder = nameOrder.ids.map((s) => newSlot[s]!);
    out.nameLcp = nameOrder.lcp;
    out.nameSortedThrough = out.slots;
    return out;
  }
}

/**
 * depmod_modules_sort's positions from modules.order (mod_cmp): a listed module sorts at
 * line - (lines + 1), every other at 1. A module named on several lines takes its last line up
 * to kmod 33 and its first from kmod 34 (19c0df1). When the file is missing, or a line lacks its
 * '\n' (kmod: "corrupted line"), no module is sorted: every position is 1. depmod warns about both.
 */
export interface OrderPositions {
  /** uncompressed relative path ("kernel/fs/ext4/ext4.ko") → sort position. */
  positions: ReadonlyMap<string, number>;
  warnings: DepmodMessage[];
}

export function orderPositions(orderText: string | undefined, firstLineWins: boolean, dirname: string): OrderPositions {
  const positions = new Map<string, number>();
  const warnings: DepmodMessage[] = [];
  if (orderText === undefined) return { positions, warnings: [depmodWarning(`could not open modules.order at ${dirname}: No such file or directory`)] };
  const lines = orderText.split('\n');
  const last = lines.pop();
  if (last !== undefined && last !== '') {
    warnings.push(depmodError(`${dirname}/modules.order:${lines.length + 1} corrupted line misses '\\n'`));
    return { positions, warnings };
  }
  const total = lines.length + 1;
  for (let i = 0; i < lines.length; i++) {
    if (firstLineWins && positions.has(lines[i]!)) continue;
    positions.set(lines[i]!, i + 1 - total);
  }
  return { positions, warnings };
}

/**
 * depmod_module_add's uncrelpath: the relative path cut after the directory, as many bytes as the
 * modname has, and ".ko" — built from the real file name, so "a-b.ko.xz" gives "dir/a-b.ko" (dashes
 * kept) and modules.order lines match it. Null for modules outside the module directory.
 */
export function uncompressedRelpath(path: string, modname: string): string | null {
  if (path.startsWith('/')) return null;
  const slash = path.lastIndexOf('/');
  return path.slice(0, slash + 1 + modname.length + 3);
}

/** A module's sort position for modules.order (1 when not listed). */
export function sortIdxOf(order: OrderPositions, path: string): number {
  const uncrel = uncompressedRelpath(path, kmodModname(path));
  return (uncrel !== null ? order.positions.get(uncrel) : undefined) ?? 1;
}

/** Why kmod could not load a module: what depmod prints, and what we found. */
export interface LoadFailure {
  /** strerror() text after "failed to load symbols from PATH: ". */
  error: string;
  /** What is wrong with the file, in our words. */
  detail: string;
  /** What libkmod logs on each of depmod's three calls, in order (kmod 34), without "depmod: ERROR: "; empty when nothing. */
  libkmod: string[];
}

/**
 * A record's load failure as one heap string: lines of error, detail, then the libkmod messages
 * (none of them holds a newline: strerror texts, our own words, libkmod's fixed messages).
 */
function loadText(r: Pick<RawReading, 'loadError' | 'loadDetail' | 'libkmodErrors'>): string {
  const oneLine = (t: string): string => t.replace(/\n/g, ' ');
  return [r.loadError ?? '', r.loadDetail ?? '', ...(r.libkmodErrors ?? [])].map(oneLine).join('\n');
}

function parseLoadText(text: string): LoadFailure {
  const [error = '', detail = '', ...libkmod] = text.split('\n');
  return { error, detail, libkmod };
}
