// Every symbol name a kernel's modules (and its Module.symvers) mention, interned as bytes: one id
// per distinct name. ~4,000 modules make ~190,000 symbol references to ~20,000 names; the database
// stores ids, compares ids, and keeps each name's kmod hash (hash_superfast, kmod-hash.ts), which
// decides the line order of modules.symbols. Lookups hash the name's bytes and probe an open-addressing
// table, so a cached pool is used as loaded, without making a string per name.
import { ByteHeap, grow, scratchBytes } from './bytes.ts';
import { hashSuperfast } from './kmod-hash.ts';

export class SymbolPool {
  readonly heap: ByteHeap;
  count: number;
  off: Uint32Array;
  len: Uint32Array;
  /** hash_superfast of each name (its bucket in depmod's 2,048-bucket symbol table is hash & 2047). */
  hash: Uint32Array;
  /** Open addressing: id + 1, 0 for an empty slot; length a power of two, at most half full. */
  table: Int32Array;

  constructor(init?: { heap: ByteHeap; count: number; off: Uint32Array; len: Uint32Array; hash: Uint32Array; table: Int32Array }) {
    if (init !== undefined) {
      this.heap = init.heap;
      this.count = init.count;
      this.off = init.off;
      this.len = init.len;
      this.hash = init.hash;
      this.table = init.table;
    } else {
      this.heap = new ByteHeap(new Uint8Array(1 << 18));
      this.count = 0;
      this.off = new Uint32Array(1024);
      this.len = new Uint32Array(1024);
      this.hash = new Uint32Array(1024);
      this.table = new Int32Array(2048);
    }
  }

  /** The id of `bytes` (a view that may be overwritten afterwards), interning it when new. */
  intern(bytes: Uint8Array): number {
    return this.internRange(bytes, 0, bytes.length, hashSuperfast(bytes));
  }

  /**
   * The id of bytes off..off+len of `src`, whose hashSuperfast is `h` (another pool's hash column
   * gives it: a worker's names are interned here without hashing them again).
   */
  internRange(src: Uint8Array, off: number, len: number, h: number): number {
    const mask = this.table.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const e = this.table[i]!;
      if (e === 0) break;
      if (this.hash[e - 1] === h && this.#equals(e - 1, src, off, len)) return e - 1;
    }
    const id = this.count++;
    if (id >= this.off.length) {
      this.off = grow(this.off, id + 1);
      this.len = grow(this.len, id + 1);
      this.hash = grow(this.hash, id + 1);
    }
    this.off[id] = this.heap.appendRange(src, off, len);
    this.len[id] = len;
    this.hash[id] = h;
    if (this.count * 2 > this.table.length) this.#rehash(this.table.length * 2);
    else this.#place(id);
    return id;
  }

  /** Forgets every name (a scratch pool used again). */
  clear(): void {
    this.count = 0;
    this.heap.used = 0;
    this.table.fill(0);
  }

  internString(s: string): number {
    return this.intern(scratchBytes(s));
  }

  /**
   * Takes over grown arrays whose first `this.count` entries are this pool's and whose rest are names
   * interned since (a cache delta's tail), placing the new ids in the table.
   */
  adoptTail(heapBytes: Uint8Array, heapUsed: number, off: Uint32Array, len: Uint32Array, hash: Uint32Array, count: number): void {
    const from = this.count;
    this.heap.bytes = heapBytes;
    this.heap.used = heapUsed;
    this.off = off;
    this.len = len;
    this.hash = hash;
    this.count = count;
    if (count * 2 > this.table.length) {
      let size = this.table.length;
      while (count * 2 > size) size *= 2;
      this.#rehash(size);
      return;
    }
    // The table may be a view of a cache file's bytes: placing ids writes into this process's copy only.
    for (let id = from; id < count; id++) this.#place(id);
  }

  /** The id of `s`, or -1 when the pool does not hold it. */
  find(s: string): number {
    const bytes = scratchBytes(s);
    const h = hashSuperfast(bytes);
    const mask = this.table.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const e = this.table[i]!;
      if (e === 0) return -1;
      if (this.hash[e - 1] === h && this.#equals(e - 1, bytes, 0, bytes.length)) return e - 1;
    }
  }

  name(id: number): string {
    return this.heap.text(this.off[id]!, this.len[id]!);
  }

  /** First byte of a name, or -1 for the empty name. */
  firstByte(id: number): number {
    return this.len[id]! > 0 ? this.heap.bytes[this.off[id]!]! : -1;
  }

  #equals(id: number, src: Uint8Array, off: number, len: number): boolean {
    if (this.len[id] !== len) return false;
    const h = this.heap.bytes;
    const o = this.off[id]!;
    for (let i = 0; i < len; i++) if (h[o + i] !== src[off + i]) return false;
    return true;
  }

  #place(id: number): void {
    const mask = this.table.length - 1;
    let i = this.hash[id]! & mask;
    while (this.table[i] !== 0) i = (i + 1) & mask;
    this.table[i] = id + 1;
  }

  #rehash(size: number): void {
    this.table = new Int32Array(size);
    for (let id = 0; id < this.count; id++) this.#place(id);
  }
}
