// The database as state that an update patches: what compute.ts derives from a module set, kept by
// slot (a module's slot never changes, its array position does) so that the next merge starts from
// it instead of from every module's imports. A full build (buildState) is the reference; an update
// (updateState) touches only what the change reaches:
//   array order      the added slots inserted at their keys, the dropped ones taken out;
//   symbol owners    only symbols the added or dropped modules export;
//   resolutions      (direct dependencies in resolution order + KABI findings) only of the added
//                    modules and of the importers of a symbol whose owner or CRC changed;
//   dependency lines kmod's topological order (depmod_calculate_dependencies) is global: it is
//                    recomputed over the cached direct dependencies (typed arrays, O(modules +
//                    edges)); the lines of the modules above a changed one are recomputed, every
//                    other line is kept when its order under the new positions is unchanged.
// Pure: a ModuleSet and the previous state in, the new state and what changed out.
import { importVerdict, OWNER_KERNEL, OWNER_NONE, reportCycles, symbolHashOrder, topologicalSort, type CycleReport, type CycleVertex, type KabiBasis, type KabiFinding, type KabiKind, type LoadFinding } from './compute.ts';
import type { EmitDatabase } from './emit.ts';
import { depmodError, type DepmodMessage } from './diagnostic.ts';
import type { ModuleSet } from './module-set.ts';
import { kmodModname } from './search.ts';
import { lowerBound } from './lower-bound.ts';

/** One KABI finding of a module, compactly: which import, what kind, and its provider. */
export interface SlotFinding {
  /** Index of the import in the module's import list (set.impStart + k). */
  k: number;
  kind: KabiKind;
  /** Provider's CRC and slot (-1: vmlinux), for crc-mismatch. */
  crc: number;
  owner: number;
}

/** A module's resolution: its direct dependencies (slots, resolution order) and its findings. */
export interface Resolution {
  deps: Uint32Array;
  findings: readonly SlotFinding[];
}

/** Per-slot lists: a packed base for slots below base.length - 1 and an overlay for the rest. */
export interface SlotLists {
  start: Uint32Array;
  list: Uint32Array;
  over: Map<number, Uint32Array>;
}

const EMPTY = new Uint32Array(0);

export function listOf(l: SlotLists, slot: number): Uint32Array {
  const o = l.over.get(slot);
  if (o !== undefined) return o;
  return slot + 1 < l.start.length ? l.list.subarray(l.start[slot]!, l.start[slot + 1]!) : EMPTY;
}

/** Where each slot's entries start in a packed column, and (at [n]) how many there are in all. */
function startsOf(n: number, count: (slot: number) => number): Uint32Array {
  const start = new Uint32Array(n + 1);
  let total = 0;
  for (let s = 0; s < n; s++) {
    start[s] = total;
    total += count(s);
  }
  start[n] = total;
  return start;
}

function packLists(n: number, get: (slot: number) => ArrayLike<number>): SlotLists {
  const start = startsOf(n, (s) => get(s).length);
  const list = new Uint32Array(start[n]!);
  for (let s = 0; s < n; s++) list.set(get(s), start[s]!);
  return { start, list, over: new Map() };
}

/** symbol id → slots, packed for the slots indexed when it was built; later slots are scanned. */
export interface SymbolIndex {
  /** Slots below this were indexed. */
  slots: number;
  start: Uint32Array;
  list: Uint32Array;
}

/** Findings per slot, packed as columns (kind 0: unknown, 1: crc-mismatch), with an overlay. */
export interface FindingLists {
  start: Uint32Array;
  k: Uint32Array;
  kind: Uint8Array;
  crc: Float64Array;
  owner: Int32Array;
  over: Map<number, readonly SlotFinding[]>;
}

function packFindings(n: number, get: (slot: number) => readonly SlotFinding[]): FindingLists {
  const start = startsOf(n, (s) => get(s).length);
  const total = start[n]!;
  const k = new Uint32Array(total);
  const kind = new Uint8Array(total);
  const crc = new Float64Array(total);
  const owner = new Int32Array(total);
  for (let s = 0; s < n; s++) {
    let i = start[s]!;
    for (const f of get(s)) {
      k[i] = f.k;
      kind[i] = f.kind === 'unknown' ? 0 : 1;
      crc[i] = f.crc;
      owner[i++] = f.owner;
    }
  }
  return { start, k, kind, crc, owner, over: new Map() };
}

export interface DbState {
  /** Module array: idx → slot, and slot → idx (-1 for dropped slots). */
  order: Uint32Array;
  idxOf: Int32Array;
  /** Per slot: kmod cannot load the module, so none of its facts count (kmod 34, unsized zstd). */
  unreadable: Uint8Array;
  /** Per symbol id: owning slot, OWNER_KERNEL or OWNER_NONE, and the owner's CRC. */
  ownerSlot: Int32Array;
  ownerCrc: Float64Array;
  /** Direct dependencies per slot. */
  deps: SlotLists;
  /** Findings per slot. */
  findings: FindingLists;
  /** The modules.dep line per slot: its transitive dependencies in line order (slots). */
  lines: SlotLists;
  exporters: SymbolIndex;
  importers: SymbolIndex;
  cycles: CycleReport | null;
}

export interface StateOptions {
  kabi: KabiBasis;
  /** kmod 34+: a module flagged zstdUnsized cannot be loaded and contributes nothing but its line. */
  unsizedZstdUnreadable: boolean;
}

/** The import's symbol as depmod looks it up (depmod_symbol_find: a leading '.' dropped; ppc64). */
function lookupId(set: ModuleSet, id: number): number {
  if (set.pool.firstByte(id) !== 0x2e) return id;
  return set.pool.internString(set.pool.name(id).slice(1));
}

/** mod_cmp's order key: modules.order position, kmod's modules_by_name bucket, then the name's bytes. */
export function compareSlots(set: ModuleSet, a: number, b: number): number {
  const d = set.sortIdx[a]! - set.sortIdx[b]! || set.bucket[a]! - set.bucket[b]!;
  if (d !== 0) return d;
  const h = set.heap.bytes;
  const oa = set.nameOff[a]!;
  const ob = set.nameOff[b]!;
  const la = set.nameLen[a]!;
  const lb = set.nameLen[b]!;
  const n = la < lb ? la : lb;
  for (let i = 0; i < n; i++) {
    const x = h[oa + i]! - h[ob + i]!;
    if (x !== 0) return x;
  }
  return la - lb;
}

function unreadableOf(set: ModuleSet, opts: StateOptions): Uint8Array {
  const u = new Uint8Array(set.slots);
  if (opts.unsizedZstdUnreadable) for (let s = 0; s < set.slots; s++) u[s] = set.alive[s] === 1 && set.zstdUnsized[s] === 1 ? 1 : 0;
  return u;
}

/** A symbol index of every live slot: per symbol id, the slots whose `col` entries name it. */
function buildIndex(set: ModuleSet, kind: 'exp' | 'imp', unreadable: Uint8Array): SymbolIndex {
  const symbols = set.pool.count;
  const start = new Uint32Array(symbols + 2);
  const st = kind === 'exp' ? set.expStart : set.impStart;
  const ct = kind === 'exp' ? set.expCount : set.impCount;
  const sym = kind === 'exp' ? set.expSym : set.impSym;
  const ids = (e: number): number => (kind === 'imp' ? lookupId(set, sym[e]!) : sym[e]!);
  // Ids interned by lookupId are past `symbols`: count them too.
  const counts = new Map<number, number>();
  for (let s = 0; s < set.slots; s++) {
    if (set.alive[s] !== 1 || unreadable[s] === 1) continue;
    for (let e = st[s]!, end = e + ct[s]!; e < end; e++) {
      const id = ids(e);
      if (id < symbols) start[id + 1]!++;
      else counts.set(id, (counts.get(id) ?? 0) + 1);
    }
  }
  const n = Math.max(symbols, ...[...counts.keys()].map((id) => id + 1));
  const full = new Uint32Array(n + 1);
  for (let id = 0; id < symbols; id++) full[id + 1] = start[id + 1]!;
  for (const [id, c] of counts) full[id + 1] = c;
  for (let id = 0; id < n; id++) full[id + 1]! += full[id]!;
  const fill = full.slice(0, n);
  const list = new Uint32Array(full[n]!);
  for (let s = 0; s < set.slots; s++) {
    if (set.alive[s] !== 1 || unreadable[s] === 1) continue;
    // A module naming a symbol twice is listed twice, next to itself: readers skip the repeat.
    for (let e = st[s]!, end = e + ct[s]!; e < end; e++) list[fill[ids(e)]!++] = s;
  }
  return { slots: set.slots, start: full, list };
}

/**
 * The slots added since an index was built, by symbol: one pass over their exports or imports, so
 * that looking up many symbols costs one map access each instead of a scan of every recent import.
 */
function recentIndex(set: ModuleSet, index: SymbolIndex, kind: 'exp' | 'imp', unreadable: Uint8Array): Map<number, number[]> {
  const out = new Map<number, number[]>();
  const st = kind === 'exp' ? set.expStart : set.impStart;
  const ct = kind === 'exp' ? set.expCount : set.impCount;
  const sym = kind === 'exp' ? set.expSym : set.impSym;
  for (let s = index.slots; s < set.slots; s++) {
    if (set.alive[s] !== 1 || unreadable[s] === 1) continue;
    for (let e = st[s]!, end = e + ct[s]!; e < end; e++) {
      const id = kind === 'imp' ? lookupId(set, sym[e]!) : sym[e]!;
      const list = out.get(id);
      if (list === undefined) out.set(id, [s]);
      else if (list[list.length - 1] !== s) list.push(s);
    }
  }
  return out;
}

/** The live, readable slots that list symbol `id` in the index, plus those added since it was built (`recent`). */
function slotsFor(set: ModuleSet, index: SymbolIndex, recent: Map<number, number[]>, id: number, unreadable: Uint8Array): number[] {
  const out: number[] = [];
  if (id + 1 < index.start.length) {
    for (let i = index.start[id]!, e = index.start[id + 1]!; i < e; i++) {
      const s = index.list[i]!;
      if (set.alive[s] === 1 && unreadable[s] !== 1 && out[out.length - 1] !== s) out.push(s);
    }
  }
  const r = recent.get(id);
  if (r !== undefined) out.push(...r);
  return out;
}

/** depmod_load_module_dependencies for one module: its dependencies and findings under the owners. */
function resolve(set: ModuleSet, slot: number, owner: Int32Array, ownerCrc: Float64Array, basis: KabiBasis): Resolution {
  const deps: number[] = [];
  const findings: SlotFinding[] = [];
  const imp = { crc: 0, weak: false };
  for (let k = set.impStart[slot]!, end = k + set.impCount[slot]!, i = 0; k < end; k++, i++) {
    const id = lookupId(set, set.impSym[k]!);
    const o = id < owner.length ? owner[id]! : OWNER_NONE;
    if (basis !== 'none' && set.impWeak[k] === 0) {
      imp.crc = set.impCrc[k]!;
      const verdict = importVerdict(basis, imp, o === OWNER_NONE ? undefined : ownerCrc[id], o === OWNER_KERNEL);
      if (verdict !== undefined) findings.push({ k: i, kind: verdict, crc: o === OWNER_NONE ? 0 : ownerCrc[id]!, owner: o >= 0 ? o : -1 });
    }
    if (o >= 0 && !deps.includes(o)) deps.push(o);
  }
  return { deps: Uint32Array.from(deps), findings };
}

/** The symbol table: kernel symbols, then module exports in array order, the last one winning. */
function buildOwners(set: ModuleSet, order: Uint32Array, unreadable: Uint8Array): { ownerSlot: Int32Array; ownerCrc: Float64Array } {
  const n = set.pool.count;
  const ownerSlot = new Int32Array(n).fill(OWNER_NONE);
  const ownerCrc = new Float64Array(n);
  for (let id = 0; id < n; id++) {
    if (set.kernelHas[id] === 1) {
      ownerSlot[id] = OWNER_KERNEL;
      ownerCrc[id] = set.kernelCrc[id]!;
    }
  }
  for (let i = 0; i < order.length; i++) {
    const s = order[i]!;
    if (unreadable[s] === 1) continue;
    for (let e = set.expStart[s]!, end = e + set.expCount[s]!; e < end; e++) {
      ownerSlot[set.expSym[e]!] = s;
      ownerCrc[set.expSym[e]!] = set.expCrc[e]!;
    }
  }
  return { ownerSlot, ownerCrc };
}

/** Topological order and each module's line, over the direct dependencies of every slot. */
interface Graph {
  depStart: Uint32Array;
  depList: Uint32Array;
  depSortIdx: Int32Array;
  placed: number;
  /** users per idx, packed (for the ancestors of changed modules). */
  userStart: Uint32Array;
  userList: Uint32Array;
  /** Users left after the sort: non-zero for modules in or below a cycle. */
  usersLeft: Int32Array;
}

function graphOf(order: Uint32Array, idxOf: Int32Array, deps: SlotLists): Graph {
  const n = order.length;
  // The lists by array position in one pass: the packed base read in place, the overlay (the few
  // modules resolved since the base) looked up only for slots it holds.
  const { start, list, over } = deps;
  const baseSlots = start.length - 1;
  const inOver = new Uint8Array(idxOf.length);
  for (const s of over.keys()) if (s < inOver.length) inOver[s] = 1;
  const depStart = startsOf(n, (i) => {
    const s = order[i]!;
    return inOver[s] === 1 ? over.get(s)!.length : s < baseSlots ? start[s + 1]! - start[s]! : 0;
  });
  const total = depStart[n]!;
  const depList = new Uint32Array(total);
  const users = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const s = order[i]!;
    let at = depStart[i]!;
    if (inOver[s] === 1) {
      const d = over.get(s)!;
      for (let j = 0; j < d.length; j++) {
        const t = idxOf[d[j]!]!;
        depList[at++] = t;
        users[t]!++;
      }
    } else if (s < baseSlots) {
      for (let j = start[s]!, e = start[s + 1]!; j < e; j++) {
        const t = idxOf[list[j]!]!;
        depList[at++] = t;
        users[t]!++;
      }
    }
  }
  const userStart = startsOf(n, (i) => users[i]!);
  const fill = userStart.slice(0, n);
  const userList = new Uint32Array(total);
  for (let i = 0; i < n; i++) for (let j = depStart[i]!; j < depStart[i + 1]!; j++) userList[fill[depList[j]!]!++] = i;
  const depSortIdx = new Int32Array(n).fill(0x7fffffff);
  const placed = topologicalSort(n, depStart, depList, users, depSortIdx);
  return { depStart, depList, depSortIdx, placed, userStart, userList, usersLeft: users };
}

/** The cycle report of a graph that could not be sorted (compute.ts does the same). */
function cyclesOf(set: ModuleSet, order: Uint32Array, g: Graph): CycleReport {
  const n = order.length;
  const vertices: CycleVertex[] = [];
  for (let i = 0; i < n; i++) vertices.push({ name: set.name(order[i]!), deps: [], visited: false });
  for (let i = 0; i < n; i++) for (let j = g.depStart[i]!; j < g.depStart[i + 1]!; j++) vertices[i]!.deps.push(vertices[g.depList[j]!]!);
  const unsorted: CycleVertex[] = [];
  for (let i = 0; i < n; i++) if (g.usersLeft[i]! > 0) unsorted.push(vertices[i]!);
  return reportCycles(unsorted);
}

/** mod_get_all_sorted_dependencies of one module (idx i): its transitive dependencies by sort position. */
function lineOf(g: Graph, i: number, order: Uint32Array, seenBy: Int32Array, stamp: number): Uint32Array {
  const todo: number[] = [];
  const out: number[] = [];
  for (let j = g.depStart[i]!; j < g.depStart[i + 1]!; j++) todo.push(g.depList[j]!);
  while (todo.length > 0) {
    const d = todo.pop()!;
    if (seenBy[d] === stamp) continue;
    seenBy[d] = stamp;
    out.push(d);
    for (let j = g.depStart[d]!; j < g.depStart[d + 1]!; j++) if (seenBy[g.depList[j]!] !== stamp) todo.push(g.depList[j]!);
  }
  out.sort((a, b) => g.depSortIdx[a]! - g.depSortIdx[b]!);
  return Uint32Array.from(out, (x) => order[x]!);
}

/** The whole state from the set: what rebuild computes, kept for the updates after it. */
export function buildState(set: ModuleSet, opts: StateOptions): DbState {
  const unreadable = unreadableOf(set, opts);
  const live = set.liveSlots();
  const order = Uint32Array.from(live).sort((a, b) => compareSlots(set, a, b));
  const idxOf = new Int32Array(set.slots).fill(-1);
  for (let i = 0; i < order.length; i++) idxOf[order[i]!] = i;
  const { ownerSlot, ownerCrc } = buildOwners(set, order, unreadable);
  const res: Resolution[] = new Array(set.slots);
  for (let s = 0; s < set.slots; s++) res[s] = set.alive[s] === 1 && unreadable[s] !== 1 ? resolve(set, s, ownerSlot, ownerCrc, opts.kabi) : { deps: EMPTY, findings: [] };
  const deps = packLists(set.slots, (s) => res[s]!.deps);
  const g = graphOf(order, idxOf, deps);
  let cycles: CycleReport | null = null;
  let lines: SlotLists;
  if (g.placed < order.length) {
    cycles = cyclesOf(set, order, g);
    lines = packLists(set.slots, () => EMPTY);
  } else {
    const seenBy = new Int32Array(order.length);
    const bySlot: Uint32Array[] = new Array(set.slots).fill(EMPTY);
    for (let i = 0; i < order.length; i++) bySlot[order[i]!] = lineOf(g, i, order, seenBy, i + 1);
    lines = packLists(set.slots, (s) => bySlot[s]!);
  }
  return {
    order,
    idxOf,
    unreadable,
    ownerSlot,
    ownerCrc,
    deps,
    findings: packFindings(set.slots, (s) => res[s]!.findings),
    lines,
    exporters: buildIndex(set, 'exp', unreadable),
    importers: buildIndex(set, 'imp', unreadable),
    cycles,
  };
}

export function findingsOf(state: DbState, slot: number): readonly SlotFinding[] {
  const f = state.findings;
  const o = f.over.get(slot);
  if (o !== undefined) return o;
  if (slot + 1 >= f.start.length) return [];
  const out: SlotFinding[] = [];
  for (let i = f.start[slot]!; i < f.start[slot + 1]!; i++) out.push({ k: f.k[i]!, kind: f.kind[i] === 0 ? 'unknown' : 'crc-mismatch', crc: f.crc[i]!, owner: f.owner[i]! });
  return out;
}

/** The state with its overlays folded into packed lists (what a cache base stores). */
export function packState(state: DbState, slots: number): DbState {
  return {
    ...state,
    deps: packLists(slots, (s) => listOf(state.deps, s)),
    lines: packLists(slots, (s) => listOf(state.lines, s)),
    findings: packFindings(slots, (s) => findingsOf(state, s)),
  };
}

/** What an update changed, for patching the outputs. */
export interface StateDelta {
  /** Live slots whose modules.dep line differs from before (added modules included). */
  lineChanged: Set<number>;
  /** Symbols whose owner (slot or kernel/none) changed. */
  ownersChanged: number[];
  /** Modules resolved again (added, and importers of a symbol whose provider changed). */
  resolved: number;
  /** Whether the previous lines could be checked against the new order (false: all recomputed). */
  linesChecked: number;
}

function sameArray(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The state after `added` slots were added to the set and `dropped` slots dropped from it (already
 * applied to `set`), from the state before. `prev` is not modified.
 */
export function updateState(set: ModuleSet, prev: DbState, added: readonly number[], dropped: readonly number[], opts: StateOptions): { state: DbState; delta: StateDelta } {
  const unreadable = new Uint8Array(set.slots);
  unreadable.set(prev.unreadable.subarray(0, Math.min(prev.unreadable.length, set.slots)));
  for (const s of dropped) unreadable[s] = 0;
  if (opts.unsizedZstdUnreadable) for (const s of added) unreadable[s] = set.zstdUnsized[s] === 1 ? 1 : 0;

  // 1. Array order: drop, then insert the added slots at their keys (found by binary search: the
  // old order is sorted by the same key, dropped slots included).
  const addedSorted = [...added].sort((a, b) => compareSlots(set, a, b));
  const order = new Uint32Array(prev.order.length - dropped.length + added.length);
  {
    const po = prev.order;
    const at = addedSorted.map((a) => lowerBound(po, (s) => compareSlots(set, s, a) < 0));
    const droppedIdx = dropped.map((s) => prev.idxOf[s]!).filter((i) => i >= 0).sort((x, y) => x - y);
    // Runs of the old order between the insertion points and the dropped positions, copied whole.
    let n = 0;
    let from = 0;
    let d = 0;
    const copyTo = (end: number): void => {
      while (from < end) {
        while (d < droppedIdx.length && droppedIdx[d]! < from) d++;
        const stop = d < droppedIdx.length && droppedIdx[d]! < end ? droppedIdx[d]! : end;
        order.set(po.subarray(from, stop), n);
        n += stop - from;
        from = stop === end ? end : stop + 1;
      }
    };
    addedSorted.forEach((a, k) => {
      copyTo(at[k]!);
      order[n++] = a;
    });
    copyTo(po.length);
    if (n !== order.length) throw new Error(`updateState: ${n} modules placed, ${order.length} expected (dropped slots must be dead, added live)`);
  }
  const idxOf = new Int32Array(set.slots).fill(-1);
  for (let i = 0; i < order.length; i++) idxOf[order[i]!] = i;

  // 2. Owners of the symbols the change exports or stops exporting.
  const ownerSlot = new Int32Array(set.pool.count).fill(OWNER_NONE);
  ownerSlot.set(prev.ownerSlot.subarray(0, Math.min(prev.ownerSlot.length, ownerSlot.length)));
  const ownerCrc = new Float64Array(set.pool.count);
  ownerCrc.set(prev.ownerCrc.subarray(0, Math.min(prev.ownerCrc.length, ownerCrc.length)));
  for (let id = prev.ownerSlot.length; id < ownerSlot.length; id++) {
    if (set.kernelHas[id] === 1) {
      ownerSlot[id] = OWNER_KERNEL;
      ownerCrc[id] = set.kernelCrc[id]!;
    }
  }
  const touchedSyms = new Set<number>();
  for (const s of [...added, ...dropped]) for (let e = set.expStart[s]!, end = e + set.expCount[s]!; e < end; e++) touchedSyms.add(set.expSym[e]!);
  const ownersChanged: number[] = [];
  const recentExporters = recentIndex(set, prev.exporters, 'exp', unreadable);
  for (const id of touchedSyms) {
    // The exporter last in array order wins, with the CRC of its last export of the name (hash_add replaces).
    let best = -1;
    let bestIdx = -1;
    let bestCrc = 0;
    for (const s of slotsFor(set, prev.exporters, recentExporters, id, unreadable)) {
      const i = idxOf[s]!;
      if (i <= bestIdx) continue;
      best = s;
      bestIdx = i;
      for (let e = set.expStart[s]!, end = e + set.expCount[s]!; e < end; e++) if (set.expSym[e] === id) bestCrc = set.expCrc[e]!;
    }
    const o = best >= 0 ? best : set.kernelHas[id] === 1 ? OWNER_KERNEL : OWNER_NONE;
    const c = best >= 0 ? bestCrc : set.kernelHas[id] === 1 ? set.kernelCrc[id]! : 0;
    if (o !== ownerSlot[id] || c !== ownerCrc[id]) ownersChanged.push(id);
    ownerSlot[id] = o;
    ownerCrc[id] = c;
  }

  // 3. Resolve again: the added modules, and the importers of every symbol whose provider changed.
  const again = new Set<number>(added.filter((s) => unreadable[s] !== 1));
  const recentImporters = ownersChanged.length > 0 ? recentIndex(set, prev.importers, 'imp', unreadable) : new Map<number, number[]>();
  for (const id of ownersChanged) for (const s of slotsFor(set, prev.importers, recentImporters, id, unreadable)) again.add(s);
  const deps: SlotLists = { start: prev.deps.start, list: prev.deps.list, over: new Map(prev.deps.over) };
  const findings: FindingLists = { ...prev.findings, over: new Map(prev.findings.over) };
  for (const s of dropped) {
    deps.over.set(s, EMPTY);
    findings.over.set(s, []);
  }
  for (const s of added) {
    if (unreadable[s] === 1) {
      deps.over.set(s, EMPTY);
      findings.over.set(s, []);
    }
  }
  const addedSet = new Set(added);
  const depsChanged = new Set<number>();
  for (const s of again) {
    const r = resolve(set, s, ownerSlot, ownerCrc, opts.kabi);
    if (!sameArray(r.deps, listOf(prev.deps, s)) || addedSet.has(s)) depsChanged.add(s);
    deps.over.set(s, r.deps);
    findings.over.set(s, r.findings);
  }
  for (const s of added) depsChanged.add(s);

  // 4. The topological order is global (kmod numbers modules by popping a stack of roots): redo it
  // over the direct dependencies, then recompute the lines above changed modules and keep the rest
  // when their order still holds.
  const g = graphOf(order, idxOf, deps);
  const lineChanged = new Set<number>();
  const lines: SlotLists = { start: prev.lines.start, list: prev.lines.list, over: new Map(prev.lines.over) };
  for (const s of dropped) lines.over.set(s, EMPTY);
  let cycles: CycleReport | null = null;
  let checked = 0;
  if (g.placed < order.length) {
    cycles = cyclesOf(set, order, g);
  } else {
    const n = order.length;
    const above = new Uint8Array(n);
    const stack: number[] = [];
    for (const s of depsChanged) {
      const i = idxOf[s]!;
      if (i >= 0 && above[i] === 0) {
        above[i] = 1;
        stack.push(i);
      }
    }
    while (stack.length > 0) {
      const i = stack.pop()!;
      for (let u = g.userStart[i]!; u < g.userStart[i + 1]!; u++) {
        const up = g.userList[u]!;
        if (above[up] === 0) {
          above[up] = 1;
          stack.push(up);
        }
      }
    }
    const seenBy = new Int32Array(n);
    const { start: lStart, list: lList, over: lOver } = prev.lines;
    const lBase = lStart.length - 1;
    const dsi = g.depSortIdx;
    for (let i = 0; i < n; i++) {
      const s = order[i]!;
      if (above[i] === 0 && prev.cycles === null && s < prev.idxOf.length && prev.idxOf[s]! >= 0) {
        // Same set of dependencies: unchanged while their new positions keep the old order.
        const o = lOver.size > 0 ? lOver.get(s) : undefined;
        let sorted = true;
        if (o !== undefined) {
          for (let j = 1; j < o.length && sorted; j++) sorted = dsi[idxOf[o[j - 1]!]!]! < dsi[idxOf[o[j]!]!]!;
        } else if (s < lBase) {
          for (let j = lStart[s]! + 1, e = lStart[s + 1]!; j < e && sorted; j++) sorted = dsi[idxOf[lList[j - 1]!]!]! < dsi[idxOf[lList[j]!]!]!;
        }
        checked++;
        if (sorted) continue;
      }
      const old = prev.cycles === null ? listOf(prev.lines, s) : undefined;
      const line = lineOf(g, i, order, seenBy, i + 1);
      if (old === undefined || !sameArray(line, old) || addedSet.has(s)) lineChanged.add(s);
      lines.over.set(s, line);
    }
  }
  const state: DbState = {
    order,
    idxOf,
    unreadable,
    ownerSlot,
    ownerCrc,
    deps,
    findings,
    lines,
    exporters: prev.exporters,
    importers: prev.importers,
    cycles,
  };
  return { state, delta: { lineChanged, ownersChanged, resolved: again.size, linesChecked: checked } };
}

/** The KABI findings of the database in depmod's order (array order, then import order). */
export function kabiFindings(set: ModuleSet, state: DbState, dirname: string): KabiFinding[] {
  const out: KabiFinding[] = [];
  const { start, over } = state.findings;
  const base = start.length - 1;
  for (let i = 0; i < state.order.length; i++) {
    const s = state.order[i]!;
    // Most modules have none: skip them without building a list.
    if (!(s < base && start[s + 1]! > start[s]!) && !(over.size > 0 && over.has(s))) continue;
    for (const f of findingsOf(state, s)) {
      const path = set.path(s);
      const modulePath = path.startsWith('/') ? path : `${dirname}/${path}`;
      const symbol = set.pool.name(set.impSym[set.impStart[s]! + f.k]!);
      const finding: KabiFinding = { kind: f.kind, module: kmodModname(path), modulePath, symbol, expectedCrc: set.impCrc[set.impStart[s]! + f.k]!, message: '' };
      if (f.kind === 'unknown') finding.message = `${modulePath} needs unknown symbol ${symbol}`;
      else {
        finding.foundCrc = f.crc;
        finding.provider = f.owner >= 0 ? set.name(f.owner) : 'vmlinux';
        finding.message = `${modulePath} disagrees about version of symbol ${symbol}`;
      }
      out.push(finding);
    }
  }
  return out;
}

/**
 * What depmod prints while loading modules (depmod_load_modules, in array order) and the modules it
 * could not load: kmod_module_get_symbols, kmod_module_get_info and kmod_module_get_dependency_symbols
 * each log what libkmod logs, and only the first failure is printed by depmod itself. A module whose
 * record carries a load failure holds what kmod read of it (partial or nothing); a .ko.zst kmod 34
 * cannot load (state.unreadable) holds nothing.
 */
export function loadFindings(set: ModuleSet, state: DbState, dirname: string): { warnings: DepmodMessage[]; unreadable: LoadFinding[] } {
  const warnings: DepmodMessage[] = [];
  const unreadable: LoadFinding[] = [];
  for (let i = 0; i < state.order.length; i++) {
    const s = state.order[i]!;
    let failure = set.loadErrLen[s] === 0 ? undefined : set.loadFailure(s);
    if (state.unreadable[s] === 1) {
      const z = 'zstd: Failed to determine decompression size';
      failure = { error: 'Invalid argument', detail: 'the first zstd frame does not declare its size (kmod 34 loads a .ko.zst in one call)', libkmod: [z, z, z] };
    }
    if (failure === undefined) continue;
    const path = set.path(s);
    const modulePath = path.startsWith('/') ? path : `${dirname}/${path}`;
    const message = `failed to load symbols from ${modulePath}: ${failure.error}`;
    const [first, ...later] = failure.libkmod.map(depmodError);
    warnings.push(...(first !== undefined ? [first] : []), depmodError(message), ...later);
    unreadable.push({ kind: 'unreadable', module: kmodModname(path), modulePath, error: failure.error, detail: failure.detail, message });
  }
  return { warnings, unreadable };
}

/** The state as the writers (emit.ts) read a database: positions instead of slots. */
export function databaseOf(set: ModuleSet, state: DbState): EmitDatabase {
  const n = state.order.length;
  const owner = new Int32Array(state.ownerSlot.length);
  const inTable = new Uint8Array(set.pool.count);
  for (let id = 0; id < owner.length; id++) {
    const o = state.ownerSlot[id]!;
    owner[id] = o >= 0 ? state.idxOf[o]! : o;
    if (o !== OWNER_NONE) inTable[id] = 1;
  }
  const allStart = startsOf(n, (i) => listOf(state.lines, state.order[i]!).length);
  const allList = new Uint32Array(allStart[n]!);
  for (let i = 0; i < n; i++) {
    const line = listOf(state.lines, state.order[i]!);
    for (let j = 0; j < line.length; j++) allList[allStart[i]! + j] = state.idxOf[line[j]!]!;
  }
  return { order: state.order, idxOf: state.idxOf, owner, allStart, allList, symbolOrder: symbolHashOrder(set, inTable), unreadable: state.unreadable, cycles: state.cycles };
}
