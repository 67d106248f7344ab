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
import { lowerBound } from '../depmod/lower-bound.ts';

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
  const lo = lowerBound(ord, (s) => cmp(s) < 0);
  // Dropped modules stay in the order until it is refreshed: look past them.
  for (let i = lo; i < ord.length && cmp(ord[i]!) === 0; i++) if (set.alive[ord[i]!] === 1) return ord[i]!;
  for (let s = set.nameSortedThrough; s < set.slots; s++) if (set.alive[s] === 1 && cmp(s) === 0) return s;
  return -1;
}

const stem = (abs: string, name: string): string => abs.slice(0, abs.lastIndexOf('/') + 1 + name.length);

/**
 * The patch plan, or a recompute when the change cannot be decided locally. For every module name a
 * changed file has, the files of that name (the module's current file, the changed ones, those that
 * lost to it before) are weighed as depmod's walk weighs them (depmod_module_is_higher_priority in
 * walk order): the same file winning with the same identity is nothing, with a new one a
 * replacement; another file winning is a drop and a parse; no file left is a drop.
 */
export function decidePatch(observed: Observed, cache: CachedTree, suffixes: readonly string[]): Plan {
  const { set } = cache;
  const recompute = (reason: string): Plan => ({ mode: 'recompute', reason, parse: [], drop: [], shadowed: [], notes: [] });
  if (observed.unsure !== undefined) return recompute(observed.unsure);
  const absOf = (key: string): string => (key.startsWith('/') ? key : `${cache.dirname}/${key}`);
  const isModuleKey = (key: string): boolean => {
    const base = key.slice(key.lastIndexOf('/') + 1);
    return hasModuleSuffix(base, suffixes) && kmodModname(key) !== '' && !isExcludedEntry(base, cache.config.excludes);
  };
  const present = (key: string): boolean => {
    const f = observed.files.get(key);
    return f === undefined || (f.fp !== null && f.walked);
  };
  const shadowedByName = new Map<string, string[]>();
  for (const [k, n] of cache.shadowed) shadowedByName.set(n, [...(shadowedByName.get(n) ?? []), k]);
  // Every module name the change touches, with the files observed under it.
  const touched = new Map<string, string[]>();
  for (const [key] of observed.files) {
    if (!isModuleKey(key)) continue;
    const name = kmodModname(key);
    touched.set(name, [...(touched.get(name) ?? []), key]);
  }
  const parse: ToParse[] = [];
  const drop: number[] = [];
  const shadowed = new Map<string, string>(cache.shadowed.map(([k, n]) => [k, n]));
  for (const [name, keys] of [...touched].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const slot = slotOfName(set, name);
    const winner = slot >= 0 ? set.path(slot) : undefined;
    // depmod's walk meets every file of the name in its order; a later one replaces the one kept so
    // far only with a strictly higher priority (depmod_module_is_higher_priority).
    const candidates = [...new Set([...(winner !== undefined ? [winner] : []), ...keys, ...(shadowedByName.get(name) ?? [])])].filter(present).sort(cache.walkOrder);
    let best: string | undefined;
    for (const c of candidates) {
      if (best === undefined || !existingModuleWins(cache.config, cache.dirname, stem(absOf(best), name), stem(absOf(c), name))) best = c;
    }
    for (const c of candidates) {
      if (c === best) shadowed.delete(c);
      else shadowed.set(c, name);
    }
    for (const k of [...keys, ...(shadowedByName.get(name) ?? [])]) if (!present(k)) shadowed.delete(k);
    if (best === winner && winner !== undefined) {
      // The same file wins: replaced when its identity moved.
      const f = observed.files.get(winner);
      const old = set.fingerprint(slot);
      if (f === undefined || f.fp === null || (old.size === f.fp.size && old.mtimeNs === f.fp.mtimeNs && old.ctimeNs === f.fp.ctimeNs && old.ino === f.fp.ino)) continue;
      drop.push(slot);
      parse.push({ key: winner, abs: f.abs, fp: f.fp });
      continue;
    }
    if (slot >= 0) drop.push(slot);
    if (best === undefined) continue;
    const f = observed.files.get(best);
    if (f === undefined || f.fp === null) return recompute(`${best}: a module file of ${name} was not observed`);
    parse.push({ key: best, abs: f.abs, fp: f.fp });
  }
  const live = set.liveCount;
  const changed = parse.length + drop.length;
  if (live > 0 && changed > PATCH_LIMIT * live) return { ...recompute(`${changed} of ${live} modules changed`), parse, drop, shadowed: [...shadowed] };
  const notes: string[] = [];
  if (changed > 0) notes.push("kmod's topological order (depmod_calculate_dependencies) recomputed over the cached dependencies: it is global");
  const dropped = [...drop].sort((a, b) => a - b);
  parse.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return {
    mode: changed === 0 ? 'noop' : 'patch',
    reason: changed === 0 ? 'no module file changed' : `${parse.length} to parse, ${drop.length} to drop`,
    parse,
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
