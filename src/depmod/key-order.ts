// Sorted orders the module set keeps between merges: the keys of modules.alias.bin (aliases),
// modules.dep.bin (module names) and modules.symbols.bin (symbol names), in byte order, each with
// the length of the prefix every key shares with the one before it (its LCP). A trie is built from
// exactly that (src/index/trie.ts), so keeping both makes writing an index mostly copying: sorting
// ~27,000 aliases and comparing their bytes cost more than the rest of an update together, in a
// process too short-lived for the JIT to help. A merge sorts only the keys it added and merges them
// in, dropping ids that are no longer live; the LCP of two keys that end up adjacent after dropped
// keys between them is the smallest LCP along the way, so only keys next to added ones are compared.
// Ids are numbered in the order they were added: "added since the order was last brought up to
// date" is the range [sortedThrough, total).
// Pure: typed arrays in and out.
import { sortByKey, type ByteRanges } from '../index/trie.ts';

export interface KeyOrder {
  ids: Uint32Array;
  /** lcp[i]: bytes key ids[i] shares with key ids[i - 1] (0 for the first). */
  lcp: Uint32Array;
}

/** Byte order of two ranges of one heap. */
export function compareRanges(h: Uint8Array, oa: number, la: number, ob: number, lb: number): number {
  const n = la < lb ? la : lb;
  for (let i = 0; i < n; i++) {
    const x = h[oa + i]!;
    const y = h[ob + i]!;
    if (x !== y) return x - y;
  }
  return la - lb;
}

function commonPrefix(h: Uint8Array, oa: number, la: number, ob: number, lb: number): number {
  const n = la < lb ? la : lb;
  let i = 0;
  while (i < n && h[oa + i] === h[ob + i]) i++;
  return i;
}

/**
 * `previous` (ids sorted by key, with LCPs) with the ids it does not hold yet, those from
 * `sortedThrough` to `total`, merged in; ids for which `live` says no are left out. Equal keys end
 * up adjacent.
 */
export function refreshKeyOrder(previous: KeyOrder, sortedThrough: number, total: number, live: (id: number) => boolean, keys: ByteRanges): KeyOrder {
  const fresh: number[] = [];
  for (let id = sortedThrough; id < total; id++) if (live(id)) fresh.push(id);
  const added = Uint32Array.from(fresh);
  sortByKey(added, keys);
  const prev = previous.ids;
  const prevLcp = previous.lcp;
  const ids = new Uint32Array(prev.length + added.length);
  const lcp = new Uint32Array(prev.length + added.length);
  const { heap, off, len } = keys;
  let n = 0;
  let j = 0;
  // While the last key emitted came from `previous`, the LCP to the next one from `previous` is the
  // smallest LCP since it (dropped keys in between included); -1 when a fresh key came last.
  let runMin = -1;
  const emitFresh = (id: number): void => {
    lcp[n] = n === 0 ? 0 : commonPrefix(heap, off[ids[n - 1]!]!, len[ids[n - 1]!]!, off[id]!, len[id]!);
    ids[n++] = id;
    runMin = -1;
  };
  for (let i = 0; i < prev.length; i++) {
    const id = prev[i]!;
    if (runMin >= 0 && prevLcp[i]! < runMin) runMin = prevLcp[i]!;
    if (!live(id)) continue;
    const o = off[id]!;
    const l = len[id]!;
    while (j < added.length && compareRanges(heap, off[added[j]!]!, len[added[j]!]!, o, l) < 0) emitFresh(added[j++]!);
    lcp[n] = n === 0 ? 0 : runMin >= 0 ? runMin : commonPrefix(heap, off[ids[n - 1]!]!, len[ids[n - 1]!]!, o, l);
    ids[n++] = id;
    runMin = 0x7fffffff;
  }
  while (j < added.length) emitFresh(added[j++]!);
  return { ids: ids.subarray(0, n), lcp: lcp.subarray(0, n) };
}

/**
 * The ids of `order` that `keep` accepts, with their LCPs (the smallest along the dropped ones), and
 * `extra` added to every LCP but the first: the keys of modules.symbols.bin are "symbol:" + name.
 */
export function filterKeyOrder(order: KeyOrder, keep: (id: number) => boolean, extra = 0): KeyOrder {
  const ids = new Uint32Array(order.ids.length);
  const lcp = new Uint32Array(order.ids.length);
  let n = 0;
  let runMin = 0x7fffffff;
  for (let i = 0; i < order.ids.length; i++) {
    const l = order.lcp[i]!;
    if (l < runMin) runMin = l;
    const id = order.ids[i]!;
    if (!keep(id)) continue;
    lcp[n] = n === 0 ? 0 : runMin + extra;
    ids[n++] = id;
    runMin = 0x7fffffff;
  }
  return { ids: ids.subarray(0, n), lcp: lcp.subarray(0, n) };
}
