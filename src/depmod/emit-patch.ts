// Every file depmod writes, patched from the previous files instead of written anew (emit.ts writes
// them whole; its per-module and per-symbol renderers are used here for the records that change).
//   text files      records in module array order (modules.dep, .alias, .softdep, .weakdep,
//                   .devname) or symbol hash order (modules.symbols) are spliced: runs of unchanged
//                   records are copied as one range of the old file, changed and new ones rendered;
//   index files     patchIndex (src/index/patch.ts) with the keys whose values changed and the
//                   remap of every module's array position;
//   builtin indexes made from their inputs alone, never touched by a module change.
// What each needs comes from the state update (db-state.ts): the new order, the lines that changed,
// the symbols whose owner changed. Pure: the set, states and old bytes + layouts in, new bytes out.
import { patchIndex, type KeyChange, type PatchValue } from '../index/patch.ts';
import type { IndexLayout } from '../index/trie.ts';
import { ByteSink } from './bytes.ts';
import { listOf, type DbState, type StateDelta } from './db-state.ts';
import { depmodWarning, type DepmodMessage } from './diagnostic.ts';
import {
  ALIAS_LINES,
  depLine,
  DEVNAME_HEADER,
  devnameBlock,
  SOFTDEP_LINES,
  symbolLine,
  valueBlock,
  WEAKDEP_LINES,
  type DatabaseLayout,
  type TextLayout,
  type ValueList,
} from './emit.ts';
import { SYMBOLS_BUCKETS } from './kmod-hash.ts';
import type { KmodBehaviour } from './kmod-version.ts';
import { UNMATCHED_ALIAS, type ModuleSet } from './module-set.ts';
import { lowerBound } from './lower-bound.ts';

export interface PatchDatabaseInput {
  set: ModuleSet;
  prev: DbState;
  next: DbState;
  delta: StateDelta;
  added: readonly number[];
  dropped: readonly number[];
  behaviour: KmodBehaviour;
  /** The files as the previous merge left them, and their layout. */
  old: ReadonlyMap<string, Uint8Array>;
  layout: DatabaseLayout;
  /** Told when each file is done (DEPMOD_TX_TRACE: the merge's phase tracer). */
  trace?: (phase: string) => void;
}

/** Per file: records (or index nodes) written anew, and bytes copied from the old file. */
export interface PatchStats {
  rendered: number;
  copied: number;
}

export interface PatchDatabaseResult {
  files: Map<string, Uint8Array>;
  layout: DatabaseLayout;
  stats: Map<string, PatchStats>;
}

/** A file the patch needs is missing from `old` or `layout`: the caller writes the database whole. */
export class PatchUnavailable extends Error {}

function need<T>(m: ReadonlyMap<string, T>, name: string, what: string): T {
  const v = m.get(name);
  if (v === undefined) throw new PatchUnavailable(`${name}: no ${what} to patch`);
  return v;
}

/**
 * A text file's records spliced: `skip` (ascending) are the old records not kept as they are, `at`
 * (ascending) the new positions whose record is rendered (render(k) for the k-th of them); every
 * other new record is the next kept old one. Runs of kept records are copied as one range and their
 * offsets shifted in one pass, so the work is proportional to the changes, not to the records.
 * `src` holds the old records at srcOff (what lies before srcOff[0] is copied as the header).
 */
function spliceRecords(
  src: Uint8Array,
  srcOff: Uint32Array,
  skip: readonly number[],
  at: readonly number[],
  total: number,
  render: (sink: ByteSink, k: number) => void,
  stats: PatchStats,
  name: string,
): { bytes: Uint8Array; off: Uint32Array; from: Int32Array } {
  const oldCount = srcOff.length - 1;
  const sink = new ByteSink(src.length + 4096);
  sink.range(src, 0, srcOff[0]!);
  const off = new Uint32Array(total + 1);
  // For each new record, the old record it copies (-1: rendered): what the caller needs to carry
  // per-record data (modules.symbols' ids) along.
  const from = new Int32Array(total);
  let i = 0;
  let j = 0;
  let a = 0;
  let b = 0;
  while (i < total) {
    if (a < at.length && at[a] === i) {
      off[i] = sink.length;
      from[i] = -1;
      render(sink, a++);
      stats.rendered++;
      i++;
      continue;
    }
    while (b < skip.length && skip[b] === j) {
      j++;
      b++;
    }
    const k = Math.min((a < at.length ? at[a]! : total) - i, (b < skip.length ? skip[b]! : oldCount) - j);
    if (k <= 0) throw new PatchUnavailable(`${name}: its layout does not match the change (${oldCount} records before, ${total} after)`);
    const start = srcOff[j]!;
    const bytes = srcOff[j + k]! - start;
    const base = sink.length - start;
    sink.range(src, start, bytes);
    stats.copied += bytes;
    for (let t = 0; t < k; t++) {
      off[i + t] = srcOff[j + t]! + base;
      from[i + t] = j + t;
    }
    i += k;
    j += k;
  }
  off[total] = sink.length;
  return { bytes: sink.done(), off, from };
}

/**
 * Records in module array order, spliced: the records of `rendered` slots (added, or whose record
 * changed) are rendered at their new positions, the dropped ones' and the changed ones' old records
 * skipped, every other record copied.
 */
function spliceByModule(
  src: Uint8Array,
  srcOff: Uint32Array,
  prev: DbState,
  next: DbState,
  rendered: Iterable<number>,
  dropped: readonly number[],
  render: (sink: ByteSink, slot: number) => void,
  stats: PatchStats,
  name: string,
): { bytes: Uint8Array; off: Uint32Array } {
  if (srcOff.length - 1 !== prev.order.length) throw new PatchUnavailable(`${name}: its layout has ${srcOff.length - 1} records for ${prev.order.length} modules`);
  const skip: number[] = [];
  const at: number[] = [];
  for (const s of dropped) if (s < prev.idxOf.length && prev.idxOf[s]! >= 0) skip.push(prev.idxOf[s]!);
  for (const s of rendered) {
    if (next.idxOf[s]! < 0) continue;
    at.push(next.idxOf[s]!);
    if (s < prev.idxOf.length && prev.idxOf[s]! >= 0) skip.push(prev.idxOf[s]!);
  }
  skip.sort((x, y) => x - y);
  at.sort((x, y) => x - y);
  const r = spliceRecords(src, srcOff, skip, at, next.order.length, (sink, k) => render(sink, next.order[at[k]!]!), stats, name);
  return { bytes: r.bytes, off: r.off };
}

function textLayout(layout: DatabaseLayout, name: string): TextLayout {
  const l = need(layout, name, 'layout') as TextLayout;
  if (!(l.off instanceof Uint32Array)) throw new PatchUnavailable(`${name}: layout is not a text layout`);
  return l;
}

/** mod_cmp-independent symbol order of modules.symbols: kmod's hash bucket, then the name's bytes. */
function compareSymbols(set: ModuleSet, a: number, b: number): number {
  const mask = SYMBOLS_BUCKETS - 1;
  const pool = set.pool;
  const d = (pool.hash[a]! & mask) - (pool.hash[b]! & mask);
  if (d !== 0) return d;
  const h = pool.heap.bytes;
  const oa = pool.off[a]!;
  const ob = pool.off[b]!;
  const la = pool.len[a]!;
  const lb = pool.len[b]!;
  const m = la < lb ? la : lb;
  for (let i = 0; i < m; i++) if (h[oa + i] !== h[ob + i]) return h[oa + i]! - h[ob + i]!;
  return la - lb;
}

/** First index of the ascending (by compareSymbols) `ids` whose symbol is not before `id`. */
function symbolPosition(set: ModuleSet, ids: Uint32Array, id: number): number {
  return lowerBound(ids, (x) => compareSymbols(set, x, id) < 0);
}

/** modules.symbols with the lines of symbols whose owner changed added, replaced or removed. */
function patchSymbols(input: PatchDatabaseInput, stats: PatchStats): { bytes: Uint8Array; layout: TextLayout } {
  const { set, next } = input;
  const src = need(input.old, 'modules.symbols', 'file');
  const l = textLayout(input.layout, 'modules.symbols');
  const ids = l.ids;
  if (ids === undefined || ids.length !== l.off.length - 1) throw new PatchUnavailable('modules.symbols: layout without symbol ids');
  const owned = (id: number): boolean => id < next.ownerSlot.length && next.ownerSlot[id]! >= 0;
  // Old lines of changed symbols are dropped; every changed symbol owned now gets a line.
  const skip: number[] = [];
  const fresh: number[] = [];
  for (const id of input.delta.ownersChanged) {
    const p = symbolPosition(set, ids, id);
    if (p < ids.length && ids[p] === id) skip.push(p);
    if (owned(id)) fresh.push(id);
  }
  skip.sort((x, y) => x - y);
  fresh.sort((x, y) => compareSymbols(set, x, y));
  // A fresh line's new position: the kept old lines before it, and the fresh ones before it.
  const at: number[] = [];
  let skipped = 0;
  fresh.forEach((id, k) => {
    const p = symbolPosition(set, ids, id);
    while (skipped < skip.length && skip[skipped]! < p) skipped++;
    at.push(p - skipped + k);
  });
  const total = ids.length - skip.length + fresh.length;
  const r = spliceRecords(src, l.off, skip, at, total, (sink, k) => symbolLine(sink, set, fresh[k]!, next.ownerSlot[fresh[k]!]!), stats, 'modules.symbols');
  const outIds = new Uint32Array(total);
  for (let i = 0, k = 0; i < total; i++) outIds[i] = r.from[i]! >= 0 ? ids[r.from[i]!]! : fresh[k++]!;
  return { bytes: r.bytes, layout: { off: r.off, ids: outIds } };
}

/** The alias ids of live, readable modules whose normalised alias is `key` (bytes of the heap at off/len). */
function aliasesWithKey(set: ModuleSet, next: DbState, off: number, len: number): number[] {
  const h = set.heap.bytes;
  const cmp = (a: number): number => {
    const ao = set.aliasKeyOff[a]!;
    const al = set.aliasKeyLen[a]!;
    const m = al < len ? al : len;
    for (let i = 0; i < m; i++) if (h[ao + i] !== h[off + i]) return h[ao + i]! - h[off + i]!;
    return al - len;
  };
  const out: number[] = [];
  const ord = set.aliasOrder;
  // The kept order holds ids below aliasSortedThrough (dropped ones too: filtered here).
  const lo = lowerBound(ord, (a) => cmp(a) < 0);
  const usable = (a: number): boolean => {
    const s = set.aliasSlot[a]!;
    return set.alive[s] === 1 && next.unreadable[s] !== 1;
  };
  for (let i = lo; i < ord.length && cmp(ord[i]!) === 0; i++) if (usable(ord[i]!)) out.push(ord[i]!);
  for (let a = set.aliasSortedThrough; a < set.aliases; a++) if (set.aliasKeyLen[a] !== UNMATCHED_ALIAS && usable(a) && cmp(a) === 0) out.push(a);
  return out;
}

function sortChanges(changes: KeyChange[]): KeyChange[] {
  return changes.sort((a, b) => {
    const n = Math.min(a.key.length, b.key.length);
    for (let i = 0; i < n; i++) if (a.key[i] !== b.key[i]) return a.key[i]! - b.key[i]!;
    return a.key.length - b.key.length;
  });
}

function keyOfBytes(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** Old array position → new array position (-1: the module was dropped). */
function positionRemap(prev: DbState, next: DbState): Int32Array {
  const remap = new Int32Array(prev.order.length);
  for (let j = 0; j < prev.order.length; j++) {
    const s = prev.order[j]!;
    remap[j] = s < next.idxOf.length ? next.idxOf[s]! : -1;
  }
  return remap;
}

export function patchDatabase(input: PatchDatabaseInput): PatchDatabaseResult {
  const { set, prev, next, delta, behaviour } = input;
  if (next.cycles !== null) throw new PatchUnavailable('dependency cycles: nothing is written');
  const files = new Map<string, Uint8Array>();
  const layout: DatabaseLayout = new Map();
  const stats = new Map<string, PatchStats>();
  const stat = (name: string): PatchStats => {
    const st = { rendered: 0, copied: 0 };
    stats.set(name, st);
    return st;
  };

  /** One text file spliced: the lines of `changed` rendered, those of dropped modules left out. */
  const splice = (name: string, body: Uint8Array, changed: Iterable<number>, render: (sink: ByteSink, s: number) => void): Uint8Array => {
    const r = spliceByModule(body, textLayout(input.layout, name).off, prev, next, changed, input.dropped, render, stat(name), name);
    layout.set(name, { off: r.off });
    return r.bytes;
  };

  // modules.dep: changed and new lines rendered, the rest copied.
  const depBytes = splice('modules.dep', need(input.old, 'modules.dep', 'file'), delta.lineChanged, (sink, s) => {
    depLine(sink, set, s, listOf(next.lines, s));
    sink.byte(0x0a);
  });
  const depOff = (layout.get('modules.dep') as TextLayout).off;
  files.set('modules.dep', depBytes);
  input.trace?.('  modules.dep');

  // Value lists: only added modules have new blocks (a module's facts never change in place).
  const lists: ValueList[] = [ALIAS_LINES, SOFTDEP_LINES, ...(behaviour.writesWeakdep ? [WEAKDEP_LINES] : [])];
  for (const v of lists) {
    files.set(
      v.file,
      splice(v.file, need(input.old, v.file, 'file'), input.added, (sink, s) => {
        if (next.unreadable[s] !== 1) valueBlock(sink, set, s, v);
      }),
    );
  }

  // modules.devname: records without the header, which the file has when it has a line.
  {
    const old = need(input.old, 'modules.devname', 'file');
    const records = splice('modules.devname', old.length > 0 ? old.subarray(DEVNAME_HEADER.length) : old, input.added, (sink, s) => {
      if (next.unreadable[s] !== 1) devnameBlock(sink, set, s, undefined);
    });
    let bytes = records;
    if (bytes.length > 0) {
      bytes = new Uint8Array(DEVNAME_HEADER.length + records.length);
      for (let i = 0; i < DEVNAME_HEADER.length; i++) bytes[i] = DEVNAME_HEADER.charCodeAt(i);
      bytes.set(records, DEVNAME_HEADER.length);
    }
    files.set('modules.devname', bytes);
  }

  input.trace?.('  value lists, modules.devname');
  const sym = patchSymbols(input, stat('modules.symbols'));
  input.trace?.('  modules.symbols');
  files.set('modules.symbols', sym.bytes);
  layout.set('modules.symbols', sym.layout);

  const remap = positionRemap(prev, next);
  const patchBin = (name: string, changes: KeyChange[]): void => {
    const r = patchIndex({ old: need(input.old, name, 'file'), layout: need(input.layout, name, 'layout') as IndexLayout, changes: sortChanges(changes), remap, order: behaviour.indexOrder, name });
    files.set(name, r.bytes);
    layout.set(name, r.layout);
    stats.set(name, { rendered: r.writtenNodes, copied: r.copiedBytes });
    input.trace?.(`  ${name} (${changes.length} keys, ${r.writtenNodes} nodes written)`);
  };

  // modules.dep.bin: module name → its line, for the modules whose line is new, changed or gone.
  {
    const byName = new Map<string, { key: Uint8Array; slot: number }>();
    const h = set.heap.bytes;
    const nameOf = (s: number): Uint8Array => h.subarray(set.nameOff[s]!, set.nameOff[s]! + set.nameLen[s]!);
    for (const s of input.dropped) byName.set(keyOfBytes(nameOf(s)), { key: nameOf(s), slot: -1 });
    for (const s of delta.lineChanged) if (set.alive[s] === 1) byName.set(keyOfBytes(nameOf(s)), { key: nameOf(s), slot: s });
    const changes: KeyChange[] = [];
    for (const { key, slot } of byName.values()) {
      const values: PatchValue[] = [];
      if (slot >= 0) {
        const i = next.idxOf[slot]!;
        values.push({ priority: i, bytes: depBytes.subarray(depOff[i]!, depOff[i + 1]! - 1) });
      }
      changes.push({ key, values });
    }
    patchBin('modules.dep.bin', changes);
  }

  // modules.alias.bin: every key an added or dropped module has, with all the modules that have it now.
  {
    const keys = new Map<string, { off: number; len: number }>();
    const collect = (s: number, unreadable: Uint8Array): void => {
      if (s < unreadable.length && unreadable[s] === 1) return;
      for (let a = set.aliasStart[s]!, end = a + set.aliasCount[s]!; a < end; a++) {
        const len = set.aliasKeyLen[a]!;
        if (len === UNMATCHED_ALIAS) continue;
        const off = set.aliasKeyOff[a]!;
        keys.set(keyOfBytes(set.heap.bytes.subarray(off, off + len)), { off, len });
      }
    };
    for (const s of input.dropped) collect(s, prev.unreadable);
    for (const s of input.added) collect(s, next.unreadable);
    const changes: KeyChange[] = [];
    for (const { off, len } of keys.values()) {
      const ids = aliasesWithKey(set, next, off, len);
      // Values by array position; one module's repeats are equal bytes, so their order is moot.
      ids.sort((a, b) => next.idxOf[set.aliasSlot[a]!]! - next.idxOf[set.aliasSlot[b]!]!);
      changes.push({
        key: set.heap.bytes.subarray(off, off + len),
        values: ids.map((a) => {
          const s = set.aliasSlot[a]!;
          return { priority: next.idxOf[s]!, bytes: set.heap.bytes.subarray(set.nameOff[s]!, set.nameOff[s]! + set.nameLen[s]!) };
        }),
      });
    }
    patchBin('modules.alias.bin', changes);
  }

  // modules.symbols.bin: "symbol:NAME" → its owning module, for every symbol whose owner changed.
  {
    const pool = set.pool;
    const changes: KeyChange[] = [];
    for (const id of delta.ownersChanged) {
      const key = new Uint8Array(7 + pool.len[id]!);
      for (let i = 0; i < 7; i++) key[i] = 'symbol:'.charCodeAt(i);
      key.set(pool.heap.bytes.subarray(pool.off[id]!, pool.off[id]! + pool.len[id]!), 7);
      const o = next.ownerSlot[id]!;
      changes.push({ key, values: o >= 0 ? [{ priority: next.idxOf[o]!, bytes: set.heap.bytes.subarray(set.nameOff[o]!, set.nameOff[o]! + set.nameLen[o]!) }] : [] });
    }
    patchBin('modules.symbols.bin', changes);
  }
  return { files, layout, stats };
}

/** Slots whose files make depmod print while writing (an unmatched alias bracket, a devname without major/minor). */
export function isNoisy(set: ModuleSet, s: number): boolean {
  for (let a = set.aliasStart[s]!, end = a + set.aliasCount[s]!; a < end; a++) if (set.aliasKeyLen[a] === UNMATCHED_ALIAS) return true;
  const w: DepmodMessage[] = [];
  devnameBlock(new ByteSink(64), set, s, w);
  return w.length > 0;
}

/**
 * What depmod prints while writing the files, in its order: modules.alias.bin's unmatched brackets
 * (array order), the builtin indexes' messages, modules.devname's (array order). Only the noisy slots
 * are looked at.
 */
export function writeWarnings(set: ModuleSet, state: DbState, noisy: Iterable<number>, builtinWarnings: readonly DepmodMessage[]): DepmodMessage[] {
  const slots = [...noisy].filter((s) => set.alive[s] === 1 && state.unreadable[s] !== 1 && state.idxOf[s]! >= 0).sort((a, b) => state.idxOf[a]! - state.idxOf[b]!);
  const out: DepmodMessage[] = [];
  for (const s of slots) {
    for (let a = set.aliasStart[s]!, end = a + set.aliasCount[s]!; a < end; a++) {
      if (set.aliasKeyLen[a] === UNMATCHED_ALIAS) out.push(depmodWarning(`Unmatched bracket in ${set.heap.text(set.aliasRawOff[a]!, set.aliasRawLen[a]!)}`));
    }
  }
  out.push(...builtinWarnings);
  for (const s of slots) devnameBlock(new ByteSink(64), set, s, out);
  return out;
}
