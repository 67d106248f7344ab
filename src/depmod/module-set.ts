// The facts of one kernel's modules, compact: everything depmod takes from each module file (name,
// path, aliases, softdeps, weakdeps, exports and imports with CRCs), as typed-array columns over a
// byte heap and a symbol pool, plus the kernel's own symbols (Module.symvers / System.map). This is
// what the module cache stores (src/cache/format.ts maps the columns to the file as they are), so
// an update opens it without decoding and adds or drops a few modules in place; compute.ts derives
// the database from it with the same code whatever the history of the set.
//
// A module lives in a slot; dropping it only clears `alive` (its bytes stay until compact()).
// Pure: records in, columns out; no file system.
import type { ModuleRecord } from '../module/record.ts';
import { normalizeAlias } from './alias.ts';
import { ByteHeap, grow, scratchBytes } from './bytes.ts';
import { depmodError, depmodWarning, type DepmodMessage } from './diagnostic.ts';
import { refreshKeyOrder, type KeyOrder } from './key-order.ts';
import { hashSuperfast } from './kmod-hash.ts';
import { MODULES_BY_NAME_BUCKETS } from './kmod-hash.ts';
import { kmodModname } from './search.ts';
import { SymbolPool } from './symbol-pool.ts';

/** aliasKeyLen of an alias kmod skips ("Unmatched bracket in ..."). */
export const UNMATCHED_ALIAS = 0xffffffff;

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

const SOFTDEP = 'softdep';
const WEAKDEP = 'weakdep';

export class ModuleSet implements ModuleSetColumns {
  slots = 0;
  alive = new Uint8Array(256);
  pathOff = new Uint32Array(256);
  pathLen = new Uint32Array(256);
  nameOff = new Uint32Array(256);
  nameLen = new Uint32Array(256);
  bucket = new Uint16Array(256);
  sortIdx = new Int32Array(256);
  zstdUnsized = new Uint8Array(256);
  fp = new BigUint64Array(1024);
  aliasStart = new Uint32Array(256);
  aliasCount = new Uint32Array(256);
  softStart = new Uint32Array(256);
  softCount = new Uint32Array(256);
  weakStart = new Uint32Array(256);
  weakCount = new Uint32Array(256);
  expStart = new Uint32Array(256);
  expCount = new Uint32Array(256);
  impStart = new Uint32Array(256);
  impCount = new Uint32Array(256);
  aliases = 0;
  aliasSlot = new Uint32Array(1024);
  aliasRawOff = new Uint32Array(1024);
  aliasRawLen = new Uint32Array(1024);
  aliasKeyOff = new Uint32Array(1024);
  aliasKeyLen = new Uint32Array(1024);
  values = 0;
  valueOff = new Uint32Array(256);
  valueLen = new Uint32Array(256);
  exports = 0;
  expSym = new Uint32Array(1024);
  expCrc = new Float64Array(1024);
  imports = 0;
  impSym = new Uint32Array(8192);
  impCrc = new Float64Array(8192);
  impWeak = new Uint8Array(8192);
  heap = new ByteHeap(new Uint8Array(1 << 20));
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

  static fromColumns(c: ModuleSetColumns): ModuleSet {
    return Object.assign(new ModuleSet(), c);
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

  fingerprint(slot: number): Fingerprint {
    const f = this.fp;
    return { size: f[4 * slot]!, mtimeNs: f[4 * slot + 1]!, ctimeNs: f[4 * slot + 2]!, ino: f[4 * slot + 3]! };
  }

  /**
   * Adds the module file `path` (modules.dep spelling: relative to the module directory, or
   * absolute) with its parsed record; returns its slot. `sortIdx` is its modules.order position.
   */
  add(path: string, fp: Fingerprint, record: ModuleRecord, sortIdx: number): number {
    const s = this.slots++;
    this.#growSlots(s + 1);
    this.alive[s] = 1;
    [this.pathOff[s], this.pathLen[s]] = this.heap.appendString(path);
    const nameBytes = scratchBytes(kmodModname(path));
    this.bucket[s] = hashSuperfast(nameBytes) & (MODULES_BY_NAME_BUCKETS - 1);
    this.nameOff[s] = this.heap.append(nameBytes);
    this.nameLen[s] = nameBytes.length;
    this.sortIdx[s] = sortIdx;
    this.zstdUnsized[s] = record.zstdUnsized === true ? 1 : 0;
    this.fp[4 * s] = fp.size;
    this.fp[4 * s + 1] = fp.mtimeNs;
    this.fp[4 * s + 2] = fp.ctimeNs;
    this.fp[4 * s + 3] = fp.ino;

    // .modinfo: aliases (raw for modules.alias, normalised for modules.alias.bin), softdeps, weakdeps.
    this.aliasStart[s] = this.aliases;
    const aliasFirst = this.aliases;
    const soft: string[] = [];
    const weak: string[] = [];
    for (const [key, value] of record.modinfo) {
      if (key === 'alias') this.#addAlias(s, value);
      else if (key === SOFTDEP) soft.push(value);
      else if (key === WEAKDEP) weak.push(value);
    }
    this.aliasCount[s] = this.aliases - aliasFirst;
    this.softStart[s] = this.values;
    for (const v of soft) this.#addValue(v);
    this.softCount[s] = soft.length;
    this.weakStart[s] = this.values;
    for (const v of weak) this.#addValue(v);
    this.weakCount[s] = weak.length;

    const ne = record.exports.length;
    this.expSym = grow(this.expSym, this.exports + ne);
    this.expCrc = grow(this.expCrc, this.exports + ne);
    this.expStart[s] = this.exports;
    this.expCount[s] = ne;
    for (const e of record.exports) {
      this.expSym[this.exports] = this.pool.internString(e.name);
      this.expCrc[this.exports++] = e.crc;
    }
    const ni = record.imports.length;
    this.impSym = grow(this.impSym, this.imports + ni);
    this.impCrc = grow(this.impCrc, this.imports + ni);
    this.impWeak = grow(this.impWeak, this.imports + ni);
    this.impStart[s] = this.imports;
    this.impCount[s] = ni;
    for (const i of record.imports) {
      this.impSym[this.imports] = this.pool.internString(i.name);
      this.impCrc[this.imports] = i.crc;
      this.impWeak[this.imports++] = i.weak ? 1 : 0;
    }
    this.#growSymbols();
    return s;
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

  #addAlias(slot: number, raw: string): void {
    const a = this.aliases++;
    if (a >= this.aliasRawOff.length) {
      this.aliasSlot = grow(this.aliasSlot, a + 1);
      this.aliasRawOff = grow(this.aliasRawOff, a + 1);
      this.aliasRawLen = grow(this.aliasRawLen, a + 1);
      this.aliasKeyOff = grow(this.aliasKeyOff, a + 1);
      this.aliasKeyLen = grow(this.aliasKeyLen, a + 1);
    }
    this.aliasSlot[a] = slot;
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

  #addValue(v: string): void {
    const i = this.values++;
    if (i >= this.valueOff.length) {
      this.valueOff = grow(this.valueOff, i + 1);
      this.valueLen = grow(this.valueLen, i + 1);
    }
    [this.valueOff[i], this.valueLen[i]] = this.heap.appendString(v);
  }

  #growSlots(n: number): void {
    if (n <= this.alive.length) return;
    this.alive = grow(this.alive, n);
    this.pathOff = grow(this.pathOff, n);
    this.pathLen = grow(this.pathLen, n);
    this.nameOff = grow(this.nameOff, n);
    this.nameLen = grow(this.nameLen, n);
    this.bucket = grow(this.bucket, n);
    this.sortIdx = grow(this.sortIdx, n);
    this.zstdUnsized = grow(this.zstdUnsized, n);
    // Four per slot of alive's new length: grow() may give alive more than n, and a set decoded
    // from a small cache starts with columns of exactly its count, so "alive has room" must mean fp has too.
    this.fp = grow(this.fp, 4 * this.alive.length);
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
    const out = new ModuleSet();
    out.pool = this.pool;
    out.symbolOrder = this.symbolOrder;
    out.symbolLcp = this.symbolLcp;
    out.symbolSortedThrough = this.symbolSortedThrough;
    out.kernelHas = this.kernelHas;
    out.kernelCrc = this.kernelCrc;
    out.kernelSource = this.kernelSource;
    const h = this.heap.bytes;
    const copy = (off: number, len: number): number => out.heap.append(h.subarray(off, off + len));
    for (let s = 0; s < this.slots; s++) {
      if (this.alive[s] !== 1) continue;
      const d = out.slots++;
      newSlot[s] = d;
      out.#growSlots(d + 1);
      out.alive[d] = 1;
      out.pathOff[d] = copy(this.pathOff[s]!, this.pathLen[s]!);
      out.pathLen[d] = this.pathLen[s]!;
      out.nameOff[d] = copy(this.nameOff[s]!, this.nameLen[s]!);
      out.nameLen[d] = this.nameLen[s]!;
      out.bucket[d] = this.bucket[s]!;
      out.sortIdx[d] = this.sortIdx[s]!;
      out.zstdUnsized[d] = this.zstdUnsized[s]!;
      for (let k = 0; k < 4; k++) out.fp[4 * d + k] = this.fp[4 * s + k]!;
      out.aliasStart[d] = out.aliases;
      out.aliasCount[d] = this.aliasCount[s]!;
      for (let a = this.aliasStart[s]!, e = a + this.aliasCount[s]!; a < e; a++) {
        const raw = this.aliasRawOff[a]!;
        const i = out.aliases++;
        newAlias[a] = i;
        if (i >= out.aliasRawOff.length) {
          out.aliasSlot = grow(out.aliasSlot, i + 1);
          out.aliasRawOff = grow(out.aliasRawOff, i + 1);
          out.aliasRawLen = grow(out.aliasRawLen, i + 1);
          out.aliasKeyOff = grow(out.aliasKeyOff, i + 1);
          out.aliasKeyLen = grow(out.aliasKeyLen, i + 1);
        }
        out.aliasSlot[i] = d;
        out.aliasRawOff[i] = copy(raw, this.aliasRawLen[a]!);
        out.aliasRawLen[i] = this.aliasRawLen[a]!;
        const kl = this.aliasKeyLen[a]!;
        out.aliasKeyLen[i] = kl;
        out.aliasKeyOff[i] = kl === UNMATCHED_ALIAS ? 0 : this.aliasKeyOff[a] === raw ? out.aliasRawOff[i]! : copy(this.aliasKeyOff[a]!, kl);
      }
      for (const [startCol, countCol] of [['softStart', 'softCount'], ['weakStart', 'weakCount']] as const) {
        out[startCol][d] = out.values;
        out[countCol][d] = this[countCol][s]!;
        for (let v = this[startCol][s]!, e = v + this[countCol][s]!; v < e; v++) {
          const i = out.values++;
          out.valueOff = grow(out.valueOff, i + 1);
          out.valueLen = grow(out.valueLen, i + 1);
          out.valueOff[i] = copy(this.valueOff[v]!, this.valueLen[v]!);
          out.valueLen[i] = this.valueLen[v]!;
        }
      }
      const es = this.expStart[s]!;
      const ec = this.expCount[s]!;
      out.expSym = grow(out.expSym, out.exports + ec);
      out.expCrc = grow(out.expCrc, out.exports + ec);
      out.expStart[d] = out.exports;
      out.expCount[d] = ec;
      out.expSym.set(this.expSym.subarray(es, es + ec), out.exports);
      out.expCrc.set(this.expCrc.subarray(es, es + ec), out.exports);
      out.exports += ec;
      const is = this.impStart[s]!;
      const ic = this.impCount[s]!;
      out.impSym = grow(out.impSym, out.imports + ic);
      out.impCrc = grow(out.impCrc, out.imports + ic);
      out.impWeak = grow(out.impWeak, out.imports + ic);
      out.impStart[d] = out.imports;
      out.impCount[d] = ic;
      out.impSym.set(this.impSym.subarray(is, is + ic), out.imports);
      out.impCrc.set(this.impCrc.subarray(is, is + ic), out.imports);
      out.impWeak.set(this.impWeak.subarray(is, is + ic), out.imports);
      out.imports += ic;
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
