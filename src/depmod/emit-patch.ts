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
 * Records in module array order, spliced: for each module of the new order, its old record when it
 * had one and `changed` says no (consecutive ones copied as one range), else `render`. `src` holds
 * the records at srcOff (what lies before srcOff[0] is copied as the header).
 */
function spliceByModule(
  src: Uint8Array,
  srcOff: Uint32Array,
  prev: DbState,
  next: DbState,
  changed: (slot: number) => boolean,
  render: (sink: ByteSink, slot: number) => void,
  stats: PatchStats,
): { bytes: Uint8Array; off: Uint32Array } {
  const n = next.order.length;
  const sink = new ByteSink(src.length + 4096);
  sink.range(src, 0, srcOff[0]!);
  const off = new Uint32Array(n + 1);
  // The pending run of old records [runFrom, runTo) (old array positions), placed at runAt.
  let runFrom = -1;
  let runTo = -1;
  let runAt = 0;
  const flush = (): void => {
    if (runFrom < 0) return;
    const a = srcOff[runFrom]!;
    const b = srcOff[runTo]!;
    sink.range(src, a, b - a);
    stats.copied += b - a;
    runFrom = -1;
  };
  const prevIdx = prev.idxOf;
  for (let i = 0; i < n; i++) {
    const s = next.order[i]!;
    const j = s < prevIdx.length ? prevIdx[s]! : -1;
    if (j >= 0 && !changed(s)) {
      if (runFrom >= 0 && j === runTo) runTo++;
      else {
        flush();
        runFrom = j;
        runTo = j + 1;
        runAt = sink.length;
      }
      off[i] = runAt + srcOff[j]! - srcOff[runFrom]!;
      continue;
    }
    flush();
    off[i] = sink.length;
    render(sink, s);
    stats.rendered++;
  }
  flush();
  off[n] = sink.length;
  return { bytes: sink.done(), off };
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

/** modules.symbols with the lines of symbols whose owner changed added, replaced or removed. */
function patchSymbols(input: PatchDatabaseInput, stats: PatchStats): { bytes: Uint8Array; layout: TextLayout } {
  const { set, next } = input;
  const src = need(input.old, 'modules.symbols', 'file');
  const l = textLayout(input.layout, 'modules.symbols');
  const ids = l.ids;
  if (ids === undefined) throw new PatchUnavailable('modules.symbols: layout without symbol ids');
  const changed = new Set(input.delta.ownersChanged);
  const fresh = input.delta.ownersChanged.filter((id) => id < next.ownerSlot.length && next.ownerSlot[id]! >= 0).sort((a, b) => compareSymbols(set, a, b));
  const sink = new ByteSink(src.length + 64 * fresh.length + 64);
  sink.range(src, 0, l.off[0]!);
  const outIds: number[] = [];
  const outOff: number[] = [];
  let f = 0;
  // The pending run of old lines [runFrom, runTo), placed at runAt.
  let runFrom = -1;
  let runTo = -1;
  let runAt = 0;
  const flush = (): void => {
    if (runFrom < 0) return;
    const a = l.off[runFrom]!;
    const b = l.off[runTo]!;
    sink.range(src, a, b - a);
    stats.copied += b - a;
    runFrom = -1;
  };
  const emitFresh = (id: number): void => {
    outIds.push(id);
    outOff.push(sink.length);
    symbolLine(sink, set, id, next.ownerSlot[id]!);
    stats.rendered++;
  };
  for (let k = 0; k < ids.length; k++) {
    const id = ids[k]!;
    while (f < fresh.length && compareSymbols(set, fresh[f]!, id) < 0) {
      flush();
      emitFresh(fresh[f++]!);
    }
    if (f < fresh.length && fresh[f] === id) f++; // a symbol that changed owner: rendered below
    if (changed.has(id)) {
      flush();
      if (id < next.ownerSlot.length && next.ownerSlot[id]! >= 0) emitFresh(id);
      continue;
    }
    if (runFrom < 0 || k !== runTo) {
      flush();
      runFrom = k;
      runTo = k;
      runAt = sink.length;
    }
    outIds.push(id);
    outOff.push(runAt + l.off[k]! - l.off[runFrom]!);
    runTo = k + 1;
  }
  flush();
  while (f < fresh.length) emitFresh(fresh[f++]!);
  const bytes = sink.done();
  const off = new Uint32Array(outOff.length + 1);
  off.set(outOff);
  off[outOff.length] = bytes.length;
  return { bytes, layout: { off, ids: Uint32Array.from(outIds) } };
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
  let lo = 0;
  let hi = ord.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cmp(ord[mid]!) < 0) lo = mid + 1;
    else hi = mid;
  }
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
  const addedSet = new Set(input.added);
  const stat = (name: string): PatchStats => {
    const st = { rendered: 0, copied: 0 };
    stats.set(name, st);
    return st;
  };

  // modules.dep: changed and new lines rendered, the rest copied.
  const dep = spliceByModule(
    need(input.old, 'modules.dep', 'file'),
    textLayout(input.layout, 'modules.dep').off,
    prev,
    next,
    (s) => delta.lineChanged.has(s),
    (sink, s) => {
      depLine(sink, set, s, listOf(next.lines, s));
      sink.byte(0x0a);
    },
    stat('modules.dep'),
  );
  files.set('modules.dep', dep.bytes);
  layout.set('modules.dep', { off: dep.off });

  // Value lists: only added modules have new blocks (a module's facts never change in place).
  const lists: ValueList[] = [ALIAS_LINES, SOFTDEP_LINES, ...(behaviour.writesWeakdep ? [WEAKDEP_LINES] : [])];
  for (const v of lists) {
    const r = spliceByModule(
      need(input.old, v.file, 'file'),
      textLayout(input.layout, v.file).off,
      prev,
      next,
      (s) => addedSet.has(s),
      (sink, s) => {
        if (next.unreadable[s] !== 1) valueBlock(sink, set, s, v);
      },
      stat(v.file),
    );
    files.set(v.file, r.bytes);
    layout.set(v.file, { off: r.off });
  }

  // modules.devname: records without the header, which the file has when it has a line.
  {
    const old = need(input.old, 'modules.devname', 'file');
    const body = old.length > 0 ? old.subarray(DEVNAME_HEADER.length) : old;
    const r = spliceByModule(
      body,
      textLayout(input.layout, 'modules.devname').off,
      prev,
      next,
      (s) => addedSet.has(s),
      (sink, s) => {
        if (next.unreadable[s] !== 1) devnameBlock(sink, set, s, undefined);
      },
      stat('modules.devname'),
    );
    let bytes = r.bytes;
    if (bytes.length > 0) {
      bytes = new Uint8Array(DEVNAME_HEADER.length + r.bytes.length);
      for (let i = 0; i < DEVNAME_HEADER.length; i++) bytes[i] = DEVNAME_HEADER.charCodeAt(i);
      bytes.set(r.bytes, DEVNAME_HEADER.length);
    }
    files.set('modules.devname', bytes);
    layout.set('modules.devname', { off: r.off });
  }

  const sym = patchSymbols(input, stat('modules.symbols'));
  files.set('modules.symbols', sym.bytes);
  layout.set('modules.symbols', sym.layout);

  const remap = positionRemap(prev, next);
  const patchBin = (name: string, changes: KeyChange[]): void => {
    const r = patchIndex({ old: need(input.old, name, 'file'), layout: need(input.layout, name, 'layout') as IndexLayout, changes: sortChanges(changes), remap, order: behaviour.indexOrder, name });
    files.set(name, r.bytes);
    layout.set(name, r.layout);
    stats.set(name, { rendered: r.writtenNodes, copied: r.copiedBytes });
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
        values.push({ priority: i, bytes: dep.bytes.subarray(dep.off[i]!, dep.off[i + 1]! - 1) });
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
