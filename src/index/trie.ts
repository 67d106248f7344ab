// Writer for kmod's binary trie index (layout in format.ts). Matches kmod v30 tools/depmod.c:
// index_insert + index_add_value (value order, duplicate report), index__checkstring (what
// happens to bytes >= 0x80), index_write / index_write__node (node placement).
//
// kmod splits nodes on every insert. The trie it ends up with is canonical for its key set:
// the root has an empty prefix, and every other node's prefix is the longest common prefix of
// the keys below it (a split only happens where two keys differ, so no node has one child and
// no values). So we collect keys and their value lists on insert and build that trie in one
// pass over the sorted keys when serializing: no splits, no per-node child arrays to grow.
// test/index/kmod-insert-model.ts follows kmod's incremental algorithm step by step; tests
// require both to give the same bytes.

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
  type IndexValue,
} from './format.ts';

export type { IndexValue } from './format.ts';
export { readIndex, diffIndexes } from './read.ts';

/** The trie as flat tables; nodes are numbered in post-order (children in edge order first). */
interface NodeTable {
  count: number;
  /** Prefix = keys[prefixKey].slice(prefixStart, prefixEnd); empty when start === end. */
  prefixKey: Int32Array;
  prefixStart: Int32Array;
  prefixEnd: Int32Array;
  /** Index into keys of the key whose values this node holds, or -1. */
  valuesKey: Int32Array;
  /** Edge range; childStart indexes `children` (last - first + 1 node ids, -1 for none). */
  first: Uint8Array;
  last: Uint8Array;
  childStart: Int32Array;
  hasChildren: Uint8Array;
  children: number[];
}

/**
 * Where each node goes in the file, as the list of node ids in file order. kmod 30 (Debian 12)
 * writes children, in edge order, before their parent, so the root is last: exactly our
 * numbering. kmod 34 writes the same nodes parent first (same size, different bytes); to support
 * it, add a row with a pre-order walk of the table and check it against a kmod 34 oracle.
 */
const LAYOUTS = {
  kmod30: (t: NodeTable): Int32Array => {
    const order = new Int32Array(t.count);
    for (let i = 0; i < t.count; i++) order[i] = i;
    return order;
  },
} satisfies Record<string, (t: NodeTable) => Int32Array>;

export type IndexLayout = keyof typeof LAYOUTS;

export class IndexTrie {
  // Most keys get one value, so a key's first value lives in flat arrays and a list is made
  // only for a second one: a real alias index then costs one Map entry per key, not three
  // objects (which showed up as garbage-collection time in a cold process).
  /** Byte-string key (see toByteString) → slot. */
  readonly #slots = new Map<string, number>();
  readonly #oneValue: string[] = [];
  readonly #onePriority: number[] = [];
  /** The values of a key with more than one, sorted by priority (index_add_value order). */
  readonly #lists: (IndexValue[] | undefined)[] = [];
  readonly #name: string;

  /** `name` (the output file, e.g. "modules.alias.bin") prefixes error messages. */
  constructor(name = 'index') {
    this.#name = name;
  }

  /**
   * Adds `value` under `key` with kmod's index_insert semantics: values stay sorted by priority
   * and a new value goes before existing values of equal priority. Returns true when the key
   * already held an equal value (kmod reports a duplicate, depmod -w warns); it is stored again
   * either way. Keys and values are written as UTF-8 and must not contain NUL.
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
    const slot = this.#slots.get(k);
    if (slot === undefined) {
      this.#slots.set(k, this.#oneValue.length);
      this.#oneValue.push(v);
      this.#onePriority.push(priority);
      this.#lists.push(undefined);
      return false;
    }
    let values = this.#lists[slot];
    if (values === undefined) {
      values = [{ priority: this.#onePriority[slot]!, value: this.#oneValue[slot]! }];
      this.#lists[slot] = values;
    }
    let duplicate = false;
    for (const old of values) if (old.value === v) duplicate = true;
    // Scanning from the end finds kmod's place (before the first value of priority >= ours)
    // in O(1) for the usual case of values arriving in increasing priority.
    let at = values.length;
    while (at > 0 && values[at - 1]!.priority >= priority) at--;
    values.splice(at, 0, { priority, value: v });
    return duplicate;
  }

  /**
   * The index file's bytes: build the node table, place nodes (sizes and offsets), then fill one
   * Uint8Array. Throws FormatError when a byte >= 0x80 would have to become an edge character
   * (see edgeError).
   */
  serialize(layout: IndexLayout = 'kmod30'): Uint8Array {
    const keys = sortByteStrings([...this.#slots.keys()]);
    const table = buildTable(keys, this.#name);
    const order = LAYOUTS[layout](table);

    const slotOf = new Int32Array(keys.length);
    for (let i = 0; i < keys.length; i++) slotOf[i] = this.#slots.get(keys[i]!)!;
    const lists = this.#lists;
    const oneValue = this.#oneValue;
    const onePriority = this.#onePriority;
    // Node references (offset | flags) are known once every node is placed.
    const refs = new Uint32Array(table.count);
    let cursor = INDEX_HEADER_SIZE;
    for (let n = 0; n < order.length; n++) {
      const id = order[n]!;
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
        const slot = slotOf[vk]!;
        const list = lists[slot];
        if (list === undefined) cursor += 4 + 4 + oneValue[slot]!.length + 1;
        else {
          cursor += 4;
          for (const v of list) cursor += 4 + v.value.length + 1;
        }
        ref |= NODE_VALUES;
      }
      refs[id] = ref >>> 0;
    }
    if (cursor - 1 > NODE_OFFSET_MASK) {
      throw new FormatError(this.#name, `index of ${cursor} bytes does not fit 28-bit node offsets`);
    }

    const out = Buffer.alloc(cursor);
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    view.setUint32(0, INDEX_MAGIC);
    view.setUint32(4, INDEX_VERSION);
    view.setUint32(8, refs[table.count - 1]!);
    for (let n = 0; n < order.length; n++) {
      const id = order[n]!;
      let pos = refs[id]! & NODE_OFFSET_MASK;
      const pStart = table.prefixStart[id]!;
      const pEnd = table.prefixEnd[id]!;
      if (pEnd > pStart) {
        const src = keys[table.prefixKey[id]!]!;
        for (let i = pStart; i < pEnd; i++) out[pos++] = src.charCodeAt(i);
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
        const slot = slotOf[vk]!;
        const list = lists[slot];
        if (list === undefined) {
          view.setUint32(pos, 1);
          view.setUint32(pos + 4, onePriority[slot]!);
          pos = putByteString(out, pos + 8, oneValue[slot]!);
        } else {
          view.setUint32(pos, list.length);
          pos += 4;
          for (const v of list) {
            view.setUint32(pos, v.priority);
            pos = putByteString(out, pos + 4, v.value);
          }
        }
      }
    }
    // A plain Uint8Array view: callers get the same type whichever writer filled it.
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }
}

/**
 * Sorts distinct byte strings in byte order (kmod's edge order), in place. Multikey quicksort
 * (Bentley and Sedgewick): partition on one character position at a time, so the long prefixes
 * index keys share ("pci:v00008086d...", "symbol:...") are not compared again and again as
 * Array.prototype.sort's whole-string comparisons do; measured 2-3 times faster on the amd64 alias and
 * symbol keys. Small ranges use insertion sort on whole strings (UTF-16 unit order = byte order).
 */
export function sortByteStrings(a: string[]): string[] {
  // Ranges still to sort, as (lo, hi, depth) triples: all keys in [lo, hi) share their first depth characters.
  const stack: number[] = [0, a.length, 0];
  while (stack.length > 0) {
    const d = stack.pop()!;
    const hi = stack.pop()!;
    const lo = stack.pop()!;
    if (hi - lo < 12) {
      for (let i = lo + 1; i < hi; i++) {
        const x = a[i]!;
        let j = i;
        while (j > lo && a[j - 1]! > x) {
          a[j] = a[j - 1]!;
          j--;
        }
        a[j] = x;
      }
      continue;
    }
    const pivot = a[lo + ((hi - lo) >> 1)]!;
    // -1 stands for "the key ends here", which sorts before every character.
    const v = d < pivot.length ? pivot.charCodeAt(d) : -1;
    let lt = lo;
    let gt = hi - 1;
    let i = lo;
    while (i <= gt) {
      const s = a[i]!;
      const c = d < s.length ? s.charCodeAt(d) : -1;
      if (c < v) {
        a[i++] = a[lt]!;
        a[lt++] = s;
      } else if (c > v) {
        a[i] = a[gt]!;
        a[gt--] = s;
      } else i++;
    }
    stack.push(lo, lt, d);
    // Keys equal to the pivot up to d + 1 characters; keys are distinct, so at most one ended at d.
    if (v >= 0) stack.push(lt, gt + 1, d + 1);
    stack.push(gt + 1, hi, d);
  }
  return a;
}

/**
 * The canonical trie of sorted, distinct byte-string keys, numbered in post-order. A node for
 * keys[lo..hi) at depth d (all share keys[lo].slice(0, d)) takes as prefix their longest common
 * prefix beyond d, which for sorted keys is that of the first and the last; the root keeps an
 * empty prefix, as kmod's index_create makes it and no split ever changes it.
 */
function buildTable(keys: string[], name: string): NodeTable {
  const max = 2 * keys.length + 1;
  const t: NodeTable = {
    count: 0,
    prefixKey: new Int32Array(max),
    prefixStart: new Int32Array(max),
    prefixEnd: new Int32Array(max),
    valuesKey: new Int32Array(max),
    first: new Uint8Array(max),
    last: new Uint8Array(max),
    childStart: new Int32Array(max),
    hasChildren: new Uint8Array(max),
    children: [],
  };
  // Recursion depth is the trie depth, bounded by the longest key.
  const build = (lo: number, hi: number, d: number, root: boolean): number => {
    const head = keys[lo]!;
    let end = d;
    if (!root) {
      const tail = keys[hi - 1]!;
      const limit = Math.min(head.length, tail.length);
      while (end < limit && head.charCodeAt(end) === tail.charCodeAt(end)) end++;
    }
    let next = lo;
    let valuesKey = -1;
    if (next < hi && head.length === end) valuesKey = next++;

    // Sorted keys that share keys[lo].slice(0, end) have nondecreasing bytes at `end`: the
    // first and last key give the child range, and each child's keys are one run.
    let first = 0;
    let base = -1;
    if (next < hi) {
      first = keys[next]!.charCodeAt(end);
      const last = keys[hi - 1]!.charCodeAt(end);
      if (last >= INDEX_CHILDMAX) throw edgeError(name, keys[hi - 1]!, last);
      base = t.children.length;
      for (let c = first; c <= last; c++) t.children.push(-1);
    }
    while (next < hi) {
      const ch = keys[next]!.charCodeAt(end);
      let stop = next + 1;
      while (stop < hi && keys[stop]!.charCodeAt(end) === ch) stop++;
      t.children[base + ch - first] = build(next, stop, end + 1, false);
      next = stop;
    }

    const id = t.count++;
    t.prefixKey[id] = lo;
    t.prefixStart[id] = d;
    t.prefixEnd[id] = end;
    t.valuesKey[id] = valuesKey;
    if (base >= 0) {
      t.hasChildren[id] = 1;
      t.first[id] = first;
      t.last[id] = keys[hi - 1]!.charCodeAt(end);
      t.childStart[id] = base;
    }
    return id;
  };
  if (keys.length === 0) {
    // An empty index is a header and a root reference with no flags (kmod writes no bytes).
    t.count = 1;
    t.valuesKey[0] = -1;
    return t;
  }
  build(0, keys.length, 0, true);
  return t;
}

/**
 * Writes a byte string and its NUL terminator; returns the position after the NUL. Buffer's
 * latin1 writer copies in native code (index values add up to megabytes per rebuild).
 */
function putByteString(out: Buffer, pos: number, s: string): number {
  out.write(s, pos, s.length, "latin1");
  out[pos + s.length] = 0;
  return pos + s.length + 1;
}

/**
 * kmod 30's index__checkstring means to reject bytes >= 0x80, but it reads them through a signed
 * char on x86, so the check never fires: such bytes pass into prefixes and values unchanged (the
 * oracle writes them), and only when one must become an edge character does depmod index its
 * child array with a negative number (observed: segfault, no output file). We write what kmod
 * writes and turn its undefined case into an error.
 */
function edgeError(name: string, byteKey: string, ch: number): FormatError {
  const key = new TextDecoder().decode(Uint8Array.from(byteKey, (c) => c.charCodeAt(0)));
  return new FormatError(
    name,
    `key "${key}": byte 0x${ch.toString(16)} would become a trie edge; kmod only supports 7-bit ASCII there (depmod 30 crashes)`,
  );
}
