// Writer for kmod's binary trie index (layout in format.ts). Matches tools/depmod.c:
// index_insert + index_add_value (value order), index__checkstring (what happens to bytes >= 0x80),
// index_write / index_write__node (node placement: post-order up to kmod 33, pre-order from
// kmod 34, commit dada048).
//
// kmod splits nodes on every insert. The trie it ends up with is canonical for its key set: the
// root has an empty prefix, and every other node's prefix is the longest common prefix of the keys
// below it (a split only happens where two keys differ, so no node has one child and no values).
// So we sort the entries once and build that trie in one pass over the sorted keys: no splits, no
// per-node child arrays to grow. test/index/kmod-insert-model.ts follows kmod's incremental
// algorithm step by step; tests require both to give the same bytes in both node orders.
//
// One writer for every index: entries are byte ranges into caller-owned heaps (the database
// renderer hands in its typed arrays without making strings); IndexTrie is the string-keyed
// front end for everything else.

import { FormatError } from '../errors.ts';
import {
  INDEX_CHILDMAX,
  INDEX_HEADER_SIZE,
  INDEX_MAGIC,
  INDEX_VERSION,
  NODE_CHILDS,
  NODE_OFFSET_MASK,
  NODE_PREFIX,
  NODE_VALUES,
  toByteString,
} from './format.ts';

export type { IndexValue } from './format.ts';
export { readIndex, diffIndexes } from './read.ts';

/** Where the nodes go in the file: children before their parent (kmod <= 33) or after (kmod >= 34). */
export type IndexNodeOrder = 'post-order' | 'pre-order';

/** Byte strings as ranges of one heap. */
export interface ByteRanges {
  heap: Uint8Array;
  off: Uint32Array | readonly number[];
  len: Uint32Array | readonly number[];
}

/**
 * The entries of one index: entry i puts value i under key i with priority i. Keys may repeat
 * (several values under one key); entries are in kmod's insertion order, which decides the order
 * of values of equal priority (a later insert goes first, index_add_value).
 */
export interface IndexEntries {
  count: number;
  keys: ByteRanges;
  values: ByteRanges;
  priority: Uint32Array | readonly number[];
}

/**
 * The index file's bytes. Sorts the entries (key bytes, then priority, then reverse insertion),
 * builds the canonical trie, places its nodes (sizes and offsets), then fills one Uint8Array.
 * Throws FormatError when a byte >= 0x80 would have to become an edge character (see edgeError).
 */
export function writeIndex(entries: IndexEntries, order: IndexNodeOrder, name: string): Uint8Array {
  const { count, keys, values, priority } = entries;
  const perm = new Uint32Array(count);
  for (let i = 0; i < count; i++) perm[i] = i;
  sortByKey(perm, keys);
  orderValues(perm, keys, priority);

  // Distinct keys: distinctStart[k] .. distinctStart[k + 1] are the entries (in perm) of key k.
  const distinctStart: number[] = [];
  for (let i = 0; i < count; i++) if (i === 0 || !sameKey(keys, perm[i - 1]!, perm[i]!)) distinctStart.push(i);
  const distinct = distinctStart.length;
  distinctStart.push(count);
  const keyEntry = new Uint32Array(distinct);
  for (let k = 0; k < distinct; k++) keyEntry[k] = perm[distinctStart[k]!]!;

  const table = buildTable(keys, keyEntry, name);
  const placement = order === 'post-order' ? table.post : table.pre;

  // Node references (offset | flags) are known once every node is placed.
  const vOff = values.off;
  const vLen = values.len;
  const refs = new Uint32Array(table.count);
  let cursor = INDEX_HEADER_SIZE;
  for (let n = 0; n < table.count; n++) {
    const id = placement[n]!;
    let ref = cursor;
    const plen = table.prefixEnd[id]! - table.prefixStart[id]!;
    if (plen > 0) {
      cursor += plen + 1;
      ref |= NODE_PREFIX;
    }
    if (table.hasChildren[id]) {
      cursor += 2 + 4 * (table.last[id]! - table.first[id]! + 1);
      ref |= NODE_CHILDS;
    }
    const vk = table.valuesKey[id]!;
    if (vk >= 0) {
      cursor += 4;
      for (let i = distinctStart[vk]!; i < distinctStart[vk + 1]!; i++) cursor += 4 + vLen[perm[i]!]! + 1;
      ref |= NODE_VALUES;
    }
    refs[id] = ref >>> 0;
  }
  if (cursor - 1 > NODE_OFFSET_MASK) {
    throw new FormatError(name, `index of ${cursor} bytes does not fit 28-bit node offsets`);
  }

  const out = new Uint8Array(cursor);
  const view = new DataView(out.buffer);
  view.setUint32(0, INDEX_MAGIC);
  view.setUint32(4, INDEX_VERSION);
  view.setUint32(8, refs[table.root]!);
  const kHeap = keys.heap;
  const kOff = keys.off;
  const vHeap = values.heap;
  for (let n = 0; n < table.count; n++) {
    const id = placement[n]!;
    let pos = refs[id]! & NODE_OFFSET_MASK;
    const pStart = table.prefixStart[id]!;
    const pEnd = table.prefixEnd[id]!;
    if (pEnd > pStart) {
      const base = kOff[keyEntry[table.prefixKey[id]!]!]!;
      out.set(kHeap.subarray(base + pStart, base + pEnd), pos);
      pos += pEnd - pStart;
      out[pos++] = 0;
    }
    if (table.hasChildren[id]) {
      const first = table.first[id]!;
      const last = table.last[id]!;
      out[pos++] = first;
      out[pos++] = last;
      const base = table.childStart[id]!;
      for (let i = 0; i <= last - first; i++, pos += 4) {
        const child = table.children[base + i]!;
        view.setUint32(pos, child < 0 ? 0 : refs[child]!);
      }
    }
    const vk = table.valuesKey[id]!;
    if (vk >= 0) {
      const from = distinctStart[vk]!;
      const to = distinctStart[vk + 1]!;
      view.setUint32(pos, to - from);
      pos += 4;
      for (let i = from; i < to; i++) {
        const e = perm[i]!;
        view.setUint32(pos, priority[e]!);
        pos += 4;
        const o = vOff[e]!;
        const l = vLen[e]!;
        out.set(vHeap.subarray(o, o + l), pos);
        pos += l;
        out[pos++] = 0;
      }
    }
  }
  return out;
}

function sameKey(keys: ByteRanges, a: number, b: number): boolean {
  const la = keys.len[a]!;
  if (la !== keys.len[b]!) return false;
  const h = keys.heap;
  const oa = keys.off[a]!;
  const ob = keys.off[b]!;
  for (let i = 0; i < la; i++) if (h[oa + i] !== h[ob + i]) return false;
  return true;
}

/**
 * Sorts entry ids by their key bytes, in place. Multikey quicksort (Bentley and Sedgewick):
 * partition on one byte position at a time, so the long prefixes index keys share
 * ("pci:v00008086d...", "symbol:...") are not compared again and again as whole-key comparisons
 * would. Equal keys end up adjacent in any order (orderValues settles them).
 */
export function sortByKey(perm: Uint32Array, keys: ByteRanges): void {
  const heap = keys.heap;
  const off = keys.off;
  const len = keys.len;
  // -1 stands for "the key ends here", which sorts before every byte.
  const at = (e: number, d: number): number => (d < len[e]! ? heap[off[e]! + d]! : -1);
  // Ranges still to sort, as (lo, hi, depth) triples: all keys in [lo, hi) share their first depth bytes.
  const stack: number[] = [0, perm.length, 0];
  while (stack.length > 0) {
    const d = stack.pop()!;
    const hi = stack.pop()!;
    const lo = stack.pop()!;
    if (hi - lo < 2) continue;
    if (hi - lo < 12) {
      for (let i = lo + 1; i < hi; i++) {
        const x = perm[i]!;
        let j = i;
        while (j > lo && compareFrom(keys, perm[j - 1]!, x, d) > 0) {
          perm[j] = perm[j - 1]!;
          j--;
        }
        perm[j] = x;
      }
      continue;
    }
    const v = at(perm[lo + ((hi - lo) >> 1)]!, d);
    let lt = lo;
    let gt = hi - 1;
    let i = lo;
    while (i <= gt) {
      const s = perm[i]!;
      const c = at(s, d);
      if (c < v) {
        perm[i++] = perm[lt]!;
        perm[lt++] = s;
      } else if (c > v) {
        perm[i] = perm[gt]!;
        perm[gt--] = s;
      } else i++;
    }
    stack.push(lo, lt, d);
    // Keys equal to the pivot through byte d; those that ended at d are all equal: done.
    if (v >= 0) stack.push(lt, gt + 1, d + 1);
    stack.push(gt + 1, hi, d);
  }
}

/** Byte order of two keys that share their first `d` bytes. */
function compareFrom(keys: ByteRanges, a: number, b: number, d: number): number {
  const h = keys.heap;
  const la = keys.len[a]!;
  const lb = keys.len[b]!;
  const oa = keys.off[a]!;
  const ob = keys.off[b]!;
  const n = Math.min(la, lb);
  for (let i = d; i < n; i++) {
    const x = h[oa + i]!;
    const y = h[ob + i]!;
    if (x !== y) return x - y;
  }
  return la - lb;
}

/**
 * index_add_value's order among the entries of one key: by priority, and of equal priority the
 * later insert first. Runs of one key are short (a handful of modules share an alias), so an
 * insertion sort per run.
 */
function orderValues(perm: Uint32Array, keys: ByteRanges, priority: Uint32Array | readonly number[]): void {
  const before = (a: number, b: number): boolean => priority[a]! < priority[b]! || (priority[a] === priority[b] && a > b);
  let start = 0;
  for (let i = 1; i <= perm.length; i++) {
    if (i < perm.length && sameKey(keys, perm[start]!, perm[i]!)) continue;
    for (let j = start + 1; j < i; j++) {
      const x = perm[j]!;
      let k = j;
      while (k > start && before(x, perm[k - 1]!)) {
        perm[k] = perm[k - 1]!;
        k--;
      }
      perm[k] = x;
    }
    start = i;
  }
}

/** The trie as flat tables, with both placements of its nodes. */
interface NodeTable {
  count: number;
  root: number;
  /** Prefix = bytes prefixStart..prefixEnd of distinct key prefixKey; empty when start === end. */
  prefixKey: Int32Array;
  prefixStart: Int32Array;
  prefixEnd: Int32Array;
  /** The distinct key whose values this node holds, or -1. */
  valuesKey: Int32Array;
  /** Edge range; childStart indexes `children` (last - first + 1 node ids, -1 for none). */
  first: Uint8Array;
  last: Uint8Array;
  childStart: Int32Array;
  hasChildren: Uint8Array;
  children: number[];
  /** Node ids in file order for each placement. */
  pre: Int32Array;
  post: Int32Array;
}

/**
 * The canonical trie of the sorted distinct keys (keyEntry[k] is the entry holding key k). A node
 * for keys lo..hi at depth d (all share their first d bytes) takes as prefix their longest common
 * prefix beyond d, which for sorted keys is that of the first and the last; the root keeps an
 * empty prefix, as kmod's index_create makes it and no split ever changes it. Node ids are given
 * on entry (pre-order); the post-order list is recorded on exit.
 */
function buildTable(keys: ByteRanges, keyEntry: Uint32Array, name: string): NodeTable {
  const n = keyEntry.length;
  const max = 2 * n + 1;
  const t: NodeTable = {
    count: 0,
    root: 0,
    prefixKey: new Int32Array(max),
    prefixStart: new Int32Array(max),
    prefixEnd: new Int32Array(max),
    valuesKey: new Int32Array(max).fill(-1),
    first: new Uint8Array(max),
    last: new Uint8Array(max),
    childStart: new Int32Array(max),
    hasChildren: new Uint8Array(max),
    children: [],
    pre: new Int32Array(max),
    post: new Int32Array(max),
  };
  const heap = keys.heap;
  const off = keys.off;
  const len = keys.len;
  const byteAt = (k: number, d: number): number => heap[off[keyEntry[k]!]! + d]!;
  const lengthOf = (k: number): number => len[keyEntry[k]!]!;
  let postCount = 0;
  // Recursion depth is the trie depth, bounded by the longest key.
  const build = (lo: number, hi: number, d: number, root: boolean): number => {
    const id = t.count++;
    t.pre[id] = id;
    let end = d;
    if (!root) {
      const limit = Math.min(lengthOf(lo), lengthOf(hi - 1));
      while (end < limit && byteAt(lo, end) === byteAt(hi - 1, end)) end++;
    }
    t.prefixKey[id] = lo;
    t.prefixStart[id] = d;
    t.prefixEnd[id] = end;
    let next = lo;
    if (next < hi && lengthOf(lo) === end) t.valuesKey[id] = next++;

    // Sorted keys that share their first `end` bytes have nondecreasing bytes at `end`: the
    // first and last key give the child range, and each child's keys are one run.
    if (next < hi) {
      const first = byteAt(next, end);
      const last = byteAt(hi - 1, end);
      if (last >= INDEX_CHILDMAX) throw edgeError(name, keys, keyEntry[hi - 1]!, last);
      const base = t.children.length;
      for (let c = first; c <= last; c++) t.children.push(-1);
      t.hasChildren[id] = 1;
      t.first[id] = first;
      t.last[id] = last;
      t.childStart[id] = base;
      while (next < hi) {
        const ch = byteAt(next, end);
        let stop = next + 1;
        while (stop < hi && byteAt(stop, end) === ch) stop++;
        t.children[base + ch - first] = build(next, stop, end + 1, false);
        next = stop;
      }
    }
    t.post[postCount++] = id;
    return id;
  };
  if (n === 0) {
    // An empty index is a header and a root reference with no flags (kmod writes no bytes).
    t.count = 1;
    t.post[0] = 0;
    return t;
  }
  t.root = build(0, n, 0, true);
  return t;
}

/**
 * kmod 30's index__checkstring means to reject bytes >= 0x80, but it reads them through a signed
 * char on x86, so the check never fires: such bytes pass into prefixes and values unchanged (the
 * oracle writes them), and only when one must become an edge character does depmod index its
 * child array with a negative number (observed: segfault, no output file). kmod 34 checks them
 * and stops. We write what kmod 30 writes and turn the undefined case into an error.
 */
function edgeError(name: string, keys: ByteRanges, entry: number, ch: number): FormatError {
  const o = keys.off[entry]!;
  const key = new TextDecoder().decode(keys.heap.subarray(o, o + keys.len[entry]!));
  return new FormatError(
    name,
    `key "${key}": byte 0x${ch.toString(16)} would become a trie edge; kmod only supports 7-bit ASCII there (depmod 30 crashes)`,
  );
}

/**
 * String-keyed front end of writeIndex for indexes built from text (builtin indexes, tests):
 * collects entries in insertion order and writes them in one call.
 */
export class IndexTrie {
  readonly #name: string;
  #heap = new Uint8Array(4096);
  #used = 0;
  readonly #keyOff: number[] = [];
  readonly #keyLen: number[] = [];
  readonly #valueOff: number[] = [];
  readonly #valueLen: number[] = [];
  readonly #priority: number[] = [];
  /** key → values seen, for insert's duplicate report. */
  readonly #seen = new Map<string, string[]>();

  /** `name` (the output file, e.g. "modules.alias.bin") prefixes error messages. */
  constructor(name = 'index') {
    this.#name = name;
  }

  /**
   * Adds `value` under `key` with kmod's index_insert semantics (values sorted by priority, a new
   * value before existing values of equal priority). Returns true when the key already held an
   * equal value (kmod reports a duplicate, depmod -w warns); it is stored again either way. Keys
   * and values are written as UTF-8 and must not contain NUL.
   */
  insert(key: string, value: string, priority: number): boolean {
    if (!Number.isInteger(priority) || priority < 0 || priority > 0xffffffff) {
      throw new FormatError(this.#name, `priority ${priority} of key "${key}" is not a 32-bit unsigned integer`);
    }
    const k = toByteString(key);
    const v = toByteString(value);
    if (k === undefined || v === undefined) {
      throw new FormatError(this.#name, `key "${key}" or its value contains a NUL character`);
    }
    this.#keyOff.push(this.#put(k));
    this.#keyLen.push(k.length);
    this.#valueOff.push(this.#put(v));
    this.#valueLen.push(v.length);
    this.#priority.push(priority);
    const seen = this.#seen.get(k);
    if (seen === undefined) {
      this.#seen.set(k, [v]);
      return false;
    }
    const duplicate = seen.includes(v);
    seen.push(v);
    return duplicate;
  }

  #put(s: string): number {
    if (this.#used + s.length > this.#heap.length) {
      const bigger = new Uint8Array(Math.max(this.#heap.length * 2, this.#used + s.length));
      bigger.set(this.#heap.subarray(0, this.#used));
      this.#heap = bigger;
    }
    const at = this.#used;
    for (let i = 0; i < s.length; i++) this.#heap[at + i] = s.charCodeAt(i);
    this.#used += s.length;
    return at;
  }

  serialize(order: IndexNodeOrder = 'post-order'): Uint8Array {
    const heap = this.#heap.subarray(0, this.#used);
    return writeIndex(
      {
        count: this.#priority.length,
        keys: { heap, off: this.#keyOff, len: this.#keyLen },
        values: { heap, off: this.#valueOff, len: this.#valueLen },
        priority: this.#priority,
      },
      order,
      this.#name,
    );
  }
}

/** Sorts distinct byte strings in byte order (kmod's edge order), in place (tests compare it with a plain sort). */
export function sortByteStrings(a: string[]): string[] {
  const heap = new Uint8Array(a.reduce((n, s) => n + s.length, 0));
  const off: number[] = [];
  const len: number[] = [];
  let p = 0;
  for (const s of a) {
    off.push(p);
    len.push(s.length);
    for (let i = 0; i < s.length; i++) heap[p++] = s.charCodeAt(i);
  }
  const perm = new Uint32Array(a.length);
  for (let i = 0; i < a.length; i++) perm[i] = i;
  sortByKey(perm, { heap, off, len });
  const sorted = Array.from(perm, (i) => a[i]!);
  for (let i = 0; i < a.length; i++) a[i] = sorted[i]!;
  return a;
}
