// decide(): what a merge does, from what was observed of the tree and what the cache holds. Pure: no
// file system, no clock; `update --plan` prints its result and the tests call it with plain data.
//   noop       nothing changed: the database on disk is current, its findings are the cache's;
//   patch      some module files were added, replaced or removed: parse those, update the database
//              state and patch every output (db-state.ts, emit-patch.ts);
//   recompute  the set is kept but the whole database is derived and written again: the inputs
//              (depmod.d, modules.order, builtin files), the kmod format or the kernel's symbol
//              versions changed, the files on disk are not the ones the cache describes, or the
//              change is too large for patching to pay;
//   rebuild    no usable cache: every module is parsed.
import type { DirEntry } from '../cache/format.ts';
import type { DepmodConfig } from '../depmod/config.ts';
import type { Fingerprint, ModuleSet } from '../depmod/module-set.ts';
import { existingModuleWins, hasModuleSuffix, isExcludedEntry, kmodModname } from '../depmod/search.ts';

export type PlanMode = 'noop' | 'patch' | 'recompute' | 'rebuild';

/** A module file to parse: its cache key (modules.dep spelling), absolute path and identity. */
export interface ToParse {
  key: string;
  abs: string;
  fp: Fingerprint;
}

export interface Plan {
  mode: PlanMode;
  /** Why not a patch (recompute, rebuild), or what the patch is (for the report). */
  reason: string;
  parse: ToParse[];
  /** Slots to drop (gone, replaced, or lost to a file of the same name), and their paths. */
  drop: number[];
  dropPaths?: string[];
  /** Module files that lose to a file of the same name, after the change. */
  shadowed: Array<[string, string]>;
  /** Global recomputations the patch cannot avoid, and what it copies instead of rendering. */
  notes: string[];
}

/** What the shell saw of the tree since the cache was written (observe.ts). */
export interface Observed {
  /** Directories listed again (mtime moved, a touched path below, new): key → entries now, undefined when gone. */
  relisted: ReadonlyMap<string, readonly DirEntry[] | undefined>;
  /** Candidate module files: key → identity now (null: gone), absolute path, and whether kmod's walk reaches it. */
  files: ReadonlyMap<string, { abs: string; fp: Fingerprint | null; walked: boolean }>;
  /** Directory keys that existed in the cache and are gone now. */
  goneDirs: readonly string[];
  /** Something the patch cannot decide locally (an unsupported entry type, a failed stat): recompute. */
  unsure?: string;
}

/** What decide needs of the cache. */
export interface CachedTree {
  set: ModuleSet;
  config: DepmodConfig;
  shadowed: ReadonlyArray<readonly [string, string]>;
  /** kmod's cfg.dirname (the absolute module directory). */
  dirname: string;
  /** Walk order of two module files by their cached directory listings (negative: a is found first). */
  walkOrder: (a: string, b: string) => number;
}

/** Above this share of the modules changed, writing every file costs less than patching them. */
export const PATCH_LIMIT = 0.25;

/** The live slot of module `name`, or -1 (sorted names for the cached part, a scan of the rest). */
export function slotOfName(set: ModuleSet, name: string): number {
  const bytes = new TextEncoder().encode(name);
  const h = set.heap.bytes;
  const cmp = (s: number): number => {
    const o = set.nameOff[s]!;
    const l = set.nameLen[s]!;
    const m = l < bytes.length ? l : bytes.length;
    for (let i = 0; i < m; i++) if (h[o + i] !== bytes[i]) return h[o + i]! - bytes[i]!;
    return l - bytes.length;
  };
  const ord = set.nameOrder;
  let lo = 0;
  let hi = ord.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cmp(ord[mid]!) < 0) lo = mid + 1;
    else hi = mid;
  }
  // Dropped modules stay in the order until it is refreshed: look past them.
  for (let i = lo; i < ord.length && cmp(ord[i]!) === 0; i++) if (set.alive[ord[i]!] === 1) return ord[i]!;
  for (let s = set.nameSortedThrough; s < set.slots; s++) if (set.alive[s] === 1 && cmp(s) === 0) return s;
  return -1;
}

const stem = (abs: string, name: string): string => abs.slice(0, abs.lastIndexOf('/') + 1 + name.length);

/**
 * The patch plan, or a recompute when the change cannot be decided locally. Each candidate file is
 * matched to the module of its name: same path and identity → nothing; same path, new identity →
 * replaced; gone → dropped (a file that lost to it before may win now); a new file → added, unless a
 * file of the same name wins by depmod's priority rules (depmod_module_is_higher_priority; equal
 * priority: the one its walk finds first).
 */
export function decidePatch(observed: Observed, cache: CachedTree, suffixes: readonly string[]): Plan {
  const { set } = cache;
  const recompute = (reason: string): Plan => ({ mode: 'recompute', reason, parse: [], drop: [], shadowed: [], notes: [] });
  if (observed.unsure !== undefined) return recompute(observed.unsure);
  const parse = new Map<string, ToParse>();
  const drop = new Set<number>();
  const shadowed = new Map<string, string>(cache.shadowed.map(([k, n]) => [k, n]));
  const absOf = (key: string): string => (key.startsWith('/') ? key : `${cache.dirname}/${key}`);
  // Current winner per touched name: a slot (kept or dropped below) or a file to parse.
  const winner = new Map<string, { key: string; slot: number }>();
  const current = (name: string): { key: string; slot: number } | undefined => {
    if (winner.has(name)) return winner.get(name);
    const s = slotOfName(set, name);
    const w = s >= 0 ? { key: set.path(s), slot: s } : undefined;
    if (w !== undefined) winner.set(name, w);
    return w;
  };
  const isModuleKey = (key: string): boolean => {
    const base = key.slice(key.lastIndexOf('/') + 1);
    return hasModuleSuffix(base, suffixes) && kmodModname(key) !== '' && !isExcludedEntry(base, cache.config.excludes);
  };

  const files = [...observed.files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // Gone files first: a name freed by one may be taken by another file of this change.
  for (const [key, f] of files) {
    if (f.fp !== null && f.walked) continue;
    if (!isModuleKey(key)) continue;
    shadowed.delete(key);
    const name = kmodModname(key);
    const w = current(name);
    if (w !== undefined && w.key === key) {
      if (w.slot >= 0) drop.add(w.slot);
      parse.delete(key);
      winner.set(name, { key: '', slot: -1 });
    }
  }
  for (const [key, f] of files) {
    if (f.fp === null || !f.walked || !isModuleKey(key)) continue;
    const name = kmodModname(key);
    const w = current(name);
    if (w !== undefined && w.key === key) {
      // The same file: replaced when its identity moved.
      const fp = f.fp;
      const old = w.slot >= 0 ? set.fingerprint(w.slot) : undefined;
      if (old !== undefined && old.size === fp.size && old.mtimeNs === fp.mtimeNs && old.ctimeNs === fp.ctimeNs && old.ino === fp.ino) continue;
      if (w.slot >= 0) drop.add(w.slot);
      parse.set(key, { key, abs: f.abs, fp });
      winner.set(name, { key, slot: -1 });
      continue;
    }
    if (shadowed.has(key)) continue; // a known loser, unless its winner goes (below)
    if (w === undefined || w.key === '') {
      parse.set(key, { key, abs: f.abs, fp: f.fp });
      winner.set(name, { key, slot: -1 });
      continue;
    }
    // Two files of one name: depmod keeps the one of higher priority, the first found on a tie.
    const first = cache.walkOrder(w.key, key) <= 0 ? w.key : key;
    const second = first === key ? w.key : key;
    const firstWins = existingModuleWins(cache.config, cache.dirname, stem(absOf(first), name), stem(absOf(second), name));
    const win = firstWins ? first : second;
    if (win === w.key) {
      shadowed.set(key, name);
      continue;
    }
    if (w.slot >= 0) drop.add(w.slot);
    parse.delete(w.key);
    shadowed.set(w.key, name);
    parse.set(key, { key, abs: f.abs, fp: f.fp });
    winner.set(name, { key, slot: -1 });
  }
  // Names whose winner went away: the best remaining file of that name takes its place.
  for (const [name, w] of winner) {
    if (w.key !== '') continue;
    const candidates = [...shadowed].filter(([k, n]) => n === name && observed.files.get(k)?.fp !== null);
    if (candidates.length === 0) continue;
    candidates.sort(([a], [b]) => cache.walkOrder(a, b));
    let best = candidates[0]![0];
    for (const [k] of candidates.slice(1)) if (!existingModuleWins(cache.config, cache.dirname, stem(absOf(best), name), stem(absOf(k), name))) best = k;
    const f = observed.files.get(best);
    if (f === undefined || f.fp === null) return recompute(`${best}: a shadowed module file was not observed`);
    shadowed.delete(best);
    parse.set(best, { key: best, abs: f.abs, fp: f.fp });
  }
  const live = set.liveCount;
  const changed = parse.size + drop.size;
  if (live > 0 && changed > PATCH_LIMIT * live) return { ...recompute(`${changed} of ${live} modules changed`), parse: [...parse.values()], drop: [...drop], shadowed: [...shadowed] };
  const notes: string[] = [];
  if (changed > 0) notes.push("kmod's topological order (depmod_calculate_dependencies) recomputed over the cached dependencies: it is global");
  const dropped = [...drop].sort((a, b) => a - b);
  return {
    mode: changed === 0 ? 'noop' : 'patch',
    reason: changed === 0 ? 'no module file changed' : `${parse.size} to parse, ${drop.size} to drop`,
    parse: [...parse.values()],
    drop: dropped,
    dropPaths: dropped.map((s) => set.path(s)),
    shadowed: [...shadowed],
    notes,
  };
}

/** The plan as `update --plan` prints it. */
export function formatPlan(kver: string, plan: Plan): string {
  const lines = [`${kver}: ${plan.mode} (${plan.reason})`];
  for (const p of plan.parse) lines.push(`  parse ${p.key}`);
  plan.drop.forEach((s, i) => lines.push(`  drop  ${plan.dropPaths?.[i] ?? `slot ${s}`}`));
  for (const [k] of plan.shadowed) lines.push(`  shadowed ${k}`);
  for (const n of plan.notes) lines.push(`  note: ${n}`);
  return `${lines.join('\n')}\n`;
}
