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
  // Typed arrays only: one element kind keeps the writer's loops monomorphic (a number[] here made
  // every load in them megamorphic, measured several times slower).
  off: Uint32Array;
  len: Uint32Array;
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
  priority: Uint32Array;
}

/** Strings up to this many bytes are copied by hand; longer ones natively (measured crossover). */
const COPY_BY_HAND = 12;

/** Entries already in key order (equal keys adjacent), with each key's common prefix length with the one before. */
export interface SortedEntries {
  perm: Uint32Array;
  lcp: Uint32Array;
}

/**
 * The index file's bytes. Sorts the entries (key bytes, then priority, then reverse insertion) unless
 * `sorted` gives them in key order already, builds the canonical trie, places its nodes (sizes and
 * offsets), then fills one Uint8Array. Throws FormatError when a byte >= 0x80 would have to become
 * an edge character (see edgeError).
 */
export function writeIndex(entries: IndexEntries, order: IndexNodeOrder, name: string, sorted?: SortedEntries): Uint8Array {
  return writeIndexWithLayout(entries, order, name, sorted).bytes;
}

/**
 * Where an index file's position-dependent words are: every non-zero child reference (a node
 * offset with flags: moves when bytes before its target move) and every value's priority (a module's
 * array position: changes when modules are added or dropped before it). Ascending byte positions.
 * What a patch (patch.ts) relocates, as a linker relocates an object file's address words.
 */
export interface IndexLayout {
  refPos: Uint32Array;
  prioPos: Uint32Array;
}

/** writeIndex that also returns the file's layout (for the next patch of it). */
export function writeIndexWithLayout(entries: IndexEntries, order: IndexNodeOrder, name: string, sorted?: SortedEntries): { bytes: Uint8Array; layout: IndexLayout } {
  const { count, keys, values, priority } = entries;
  let perm: Uint32Array;
  let given: Uint32Array | undefined;
  if (sorted !== undefined) {
    perm = sorted.perm;
    given = sorted.lcp;
  } else {
    perm = new Uint32Array(count);
    for (let i = 0; i < count; i++) perm[i] = i;
    sortByKey(perm, keys);
  }
  orderValues(perm, keys, priority, given);

  // Distinct keys in order (key k starts at entry distinctStart[k] of perm) and the common prefix
  // length of each with the one before it: all the trie's shape needs.
  const kHeap = keys.heap;
  const kOff = keys.off;
  const kLen = keys.len;
  const distinctStart = new Uint32Array(count + 1);
  const dOff = new Uint32Array(count);
  const dLen = new Uint32Array(count);
  const lcp = new Uint32Array(count);
  let distinct = 0;
  for (let i = 0; i < count; i++) {
    const e = perm[i]!;
    const o = kOff[e]!;
    const l = kLen[e]!;
    if (distinct > 0) {
      const pl = dLen[distinct - 1]!;
      let c: number;
      if (given !== undefined) c = given[i]!;
      else {
        const po = dOff[distinct - 1]!;
        const m = pl < l ? pl : l;
        c = 0;
        while (c < m && kHeap[po + c] === kHeap[o + c]) c++;
      }
      if (c === l && c === pl) continue; // the same key again: one more value
      lcp[distinct] = c;
    }
    distinctStart[distinct] = i;
    dOff[distinct] = o;
    dLen[distinct] = l;
    distinct++;
  }
  distinctStart[distinct] = count;

  const t = buildTable(kHeap, dOff, dLen, lcp, distinct);
  const placement = order === 'post-order' ? t.post : t.pre;
  const nodes = t.count;
  const { depth, parentDepth, rep, valuesKey, firstChild, nextSibling, lastChild } = t;

  // Sizes and references (offset | flags), in file order. Locals, not property loads: this runs once
  // per index in a short-lived process, mostly in V8's interpreter.
  const vOff = values.off;
  const vLen = values.len;
  const refs = new Uint32Array(nodes);
  const edge = (x: number): number => kHeap[dOff[rep[x]!]! + parentDepth[x]!]!;
  let cursor = INDEX_HEADER_SIZE;
  for (let n = 0; n < nodes; n++) {
    const id = placement[n]!;
    let ref = cursor;
    const plen = id === t.root ? 0 : depth[id]! - parentDepth[id]! - 1;
    if (plen > 0) {
      cursor += plen + 1;
      ref |= NODE_PREFIX;
    }
    const fc = firstChild[id]!;
    if (fc >= 0) {
      const first = edge(fc);
      const last = edge(lastChild[id]!);
      if (last >= INDEX_CHILDMAX) throw edgeError(name, kHeap, dOff[rep[lastChild[id]!]!]!, dLen[rep[lastChild[id]!]!]!, last);
      cursor += 2 + 4 * (last - first + 1);
      ref |= NODE_CHILDS;
    }
    const vk = valuesKey[id]!;
    if (vk >= 0) {
      cursor += 4;
      for (let i = distinctStart[vk]!, end = distinctStart[vk + 1]!; i < end; i++) cursor += 5 + vLen[perm[i]!]!;
      ref |= NODE_VALUES;
    }
    refs[id] = ref >>> 0;
  }
  if (cursor - 1 > NODE_OFFSET_MASK) {
    throw new FormatError(name, `index of ${cursor} bytes does not fit 28-bit node offsets`);
  }

  // One zero-filled buffer: child slots without a child are already the 0 reference.
  const out = new Uint8Array(cursor);
  const root = refs[t.root]!;
  out[0] = INDEX_MAGIC >>> 24;
  out[1] = (INDEX_MAGIC >>> 16) & 0xff;
  out[2] = (INDEX_MAGIC >>> 8) & 0xff;
  out[3] = INDEX_MAGIC & 0xff;
  out[4] = INDEX_VERSION >>> 24;
  out[5] = (INDEX_VERSION >>> 16) & 0xff;
  out[6] = (INDEX_VERSION >>> 8) & 0xff;
  out[7] = INDEX_VERSION & 0xff;
  out[8] = root >>> 24;
  out[9] = (root >>> 16) & 0xff;
  out[10] = (root >>> 8) & 0xff;
  out[11] = root & 0xff;
  const vHeap = values.heap;
  // Longer strings go through Buffer#copy (native, no view allocated); short ones byte by byte.
  const outBuf = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  const keyBuf = Buffer.from(kHeap.buffer, kHeap.byteOffset, kHeap.byteLength);
  const valueBuf = Buffer.from(vHeap.buffer, vHeap.byteOffset, vHeap.byteLength);
  const refPos = new Uint32Array(nodes - 1);
  const prioPos = new Uint32Array(count);
  let nRef = 0;
  let nPrio = 0;
  for (let n = 0; n < nodes; n++) {
    const id = placement[n]!;
    let pos = refs[id]! & NODE_OFFSET_MASK;
    if (id !== t.root && depth[id]! - parentDepth[id]! > 1) {
      const base = dOff[rep[id]!]!;
      const from = base + parentDepth[id]! + 1;
      const end = base + depth[id]!;
      if (end - from > COPY_BY_HAND) pos += keyBuf.copy(outBuf, pos, from, end);
      else for (let i = from; i < end; i++) out[pos++] = kHeap[i]!;
      out[pos++] = 0;
    }
    let c = firstChild[id]!;
    if (c >= 0) {
      const first = edge(c);
      out[pos] = first;
      out[pos + 1] = edge(lastChild[id]!);
      const table = pos + 2;
      pos = table + 4 * (out[pos + 1]! - first + 1);
      for (; c >= 0; c = nextSibling[c]!) {
        const at = table + 4 * (edge(c) - first);
        refPos[nRef++] = at;
        const r = refs[c]!;
        out[at] = r >>> 24;
        out[at + 1] = (r >>> 16) & 0xff;
        out[at + 2] = (r >>> 8) & 0xff;
        out[at + 3] = r & 0xff;
      }
    }
    const vk = valuesKey[id]!;
    if (vk >= 0) {
      const from = distinctStart[vk]!;
      const to = distinctStart[vk + 1]!;
      const count = to - from;
      out[pos] = count >>> 24;
      out[pos + 1] = (count >>> 16) & 0xff;
      out[pos + 2] = (count >>> 8) & 0xff;
      out[pos + 3] = count & 0xff;
      pos += 4;
      for (let i = from; i < to; i++) {
        const e = perm[i]!;
        const p = priority[e]!;
        prioPos[nPrio++] = pos;
        out[pos] = p >>> 24;
        out[pos + 1] = (p >>> 16) & 0xff;
        out[pos + 2] = (p >>> 8) & 0xff;
        out[pos + 3] = p & 0xff;
        pos += 4;
        const from = vOff[e]!;
        const end = from + vLen[e]!;
        if (end - from > COPY_BY_HAND) pos += valueBuf.copy(outBuf, pos, from, end);
        else for (let j = from; j < end; j++) out[pos++] = vHeap[j]!;
        out[pos++] = 0;
      }
    }
  }
  return { bytes: out, layout: { refPos, prioPos } };
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
function orderValues(perm: Uint32Array, keys: ByteRanges, priority: Uint32Array, lcp: Uint32Array | undefined): void {
  const before = (a: number, b: number): boolean => priority[a]! < priority[b]! || (priority[a] === priority[b] && a > b);
  const len = keys.len;
  // With LCPs given, entry i repeats the key before it when it shares all of both keys' bytes.
  const same = (i: number): boolean =>
    lcp !== undefined ? lcp[i] === len[perm[i]!] && len[perm[i]!] === len[perm[i - 1]!] : sameKey(keys, perm[i - 1]!, perm[i]!);
  let start = 0;
  for (let i = 1; i <= perm.length; i++) {
    if (i < perm.length && same(i)) continue;
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

/**
 * The trie as flat tables: per node its string depth (bytes from the root through its prefix), its
 * parent's depth, a key below it (whose bytes spell its edge character and prefix), the key whose
 * values it holds (or -1), and its children as a sibling list in edge order; with both placements.
 */
interface NodeTable {
  count: number;
  root: number;
  depth: Int32Array;
  /** -1 for the root. Edge character = key rep's byte at parentDepth; prefix = its bytes parentDepth + 1 .. depth. */
  parentDepth: Int32Array;
  rep: Int32Array;
  valuesKey: Int32Array;
  firstChild: Int32Array;
  lastChild: Int32Array;
  nextSibling: Int32Array;
  /** Node ids in file order for each placement. */
  pre: Int32Array;
  post: Int32Array;
}

/**
 * The canonical trie of n sorted distinct keys (key k: bytes dOff[k] .. + dLen[k] of heap; lcp[k]:
 * its common prefix length with key k - 1), built in one pass with a stack of open nodes: a key
 * closes every open node deeper than its LCP with the key before, opens a branching node at that
 * depth when none ends there, and opens its own leaf. Nodes close in post-order; pre-order is a walk
 * of the result. The root keeps an empty prefix, as kmod's index_create makes it and no split ever
 * changes it; every other node's prefix runs to the longest common prefix of the keys below it.
 */
function buildTable(heap: Uint8Array, dOff: Uint32Array, dLen: Uint32Array, lcp: Uint32Array, n: number): NodeTable {
  const max = 2 * n + 1;
  const depth = new Int32Array(max);
  const parentDepth = new Int32Array(max);
  const rep = new Int32Array(max);
  const valuesKey = new Int32Array(max).fill(-1);
  const firstChild = new Int32Array(max).fill(-1);
  const lastChild = new Int32Array(max).fill(-1);
  const nextSibling = new Int32Array(max).fill(-1);
  const prevSibling = new Int32Array(max).fill(-1);
  const post = new Int32Array(max);
  const stack = new Int32Array(max);
  let count = 1;
  let posts = 0;
  let top = 0;
  parentDepth[0] = -1;
  stack[0] = 0;
  const append = (parent: number, child: number): void => {
    const last = lastChild[parent]!;
    if (last < 0) firstChild[parent] = child;
    else {
      nextSibling[last] = child;
      prevSibling[child] = last;
    }
    lastChild[parent] = child;
  };
  for (let i = 0; i < n; i++) {
    const l = i === 0 ? 0 : lcp[i]!;
    let closed = -1;
    while (depth[stack[top]!]! > l) {
      closed = stack[top--]!;
      post[posts++] = closed;
    }
    let at = stack[top]!;
    if (depth[at]! < l) {
      // The keys so far below `closed` and key i part at depth l: a branching node takes closed's place.
      const b = count++;
      depth[b] = l;
      parentDepth[b] = depth[at]!;
      rep[b] = rep[closed]!;
      const prev = prevSibling[closed]!;
      prevSibling[b] = prev;
      if (prev < 0) firstChild[at] = b;
      else nextSibling[prev] = b;
      lastChild[at] = b;
      prevSibling[closed] = -1;
      nextSibling[closed] = -1;
      parentDepth[closed] = l;
      firstChild[b] = closed;
      lastChild[b] = closed;
      stack[++top] = b;
      at = b;
    }
    if (dLen[i] === l) valuesKey[at] = i; // the empty key, on the root
    else {
      const leaf = count++;
      depth[leaf] = dLen[i]!;
      parentDepth[leaf] = depth[at]!;
      rep[leaf] = i;
      valuesKey[leaf] = i;
      append(at, leaf);
      stack[++top] = leaf;
    }
  }
  while (top >= 0) post[posts++] = stack[top--]!;
  // Pre-order: a node, then its children's subtrees in edge order.
  const pre = new Int32Array(count);
  let pres = 0;
  top = 0;
  stack[0] = 0;
  while (top >= 0) {
    const x = stack[top--]!;
    pre[pres++] = x;
    for (let c = lastChild[x]!; c >= 0; c = prevSibling[c]!) stack[++top] = c;
  }
  return { count, root: 0, depth, parentDepth, rep, valuesKey, firstChild, lastChild, nextSibling, pre, post: post.subarray(0, posts) };
}

/**
 * kmod 30's index__checkstring means to reject bytes >= 0x80, but it reads them through a signed
 * char on x86, so the check never fires: such bytes pass into prefixes and values unchanged (the
 * oracle writes them), and only when one must become an edge character does depmod index its
 * child array with a negative number (observed: segfault, no output file). kmod 34 checks them
 * and stops. We write what kmod 30 writes and turn the undefined case into an error.
 */
function edgeError(name: string, heap: Uint8Array, off: number, len: number, ch: number): FormatError {
  const key = new TextDecoder().decode(heap.subarray(off, off + len));
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
        keys: { heap, off: Uint32Array.from(this.#keyOff), len: Uint32Array.from(this.#keyLen) },
        values: { heap, off: Uint32Array.from(this.#valueOff), len: Uint32Array.from(this.#valueLen) },
        priority: Uint32Array.from(this.#priority),
      },
      order,
      this.#name,
    );
  }
}

/** Sorts distinct byte strings in byte order (kmod's edge order), in place (tests compare it with a plain sort). */
export function sortByteStrings(a: string[]): string[] {
  const heap = new Uint8Array(a.reduce((n, s) => n + s.length, 0));
  const off = new Uint32Array(a.length);
  const len = new Uint32Array(a.length);
  let p = 0;
  a.forEach((s, k) => {
    off[k] = p;
    len[k] = s.length;
    for (let i = 0; i < s.length; i++) heap[p++] = s.charCodeAt(i);
  });
  const perm = new Uint32Array(a.length);
  for (let i = 0; i < a.length; i++) perm[i] = i;
  sortByKey(perm, { heap, off, len });
  const sorted = Array.from(perm, (i) => a[i]!);
  for (let i = 0; i < a.length; i++) a[i] = sorted[i]!;
  return a;
}
