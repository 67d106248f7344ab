// The depmod computation (tools/depmod.c): module array order (depmod_modules_build_array,
// depmod_modules_sort, mod_cmp), the symbol table (depmod_symbol_add, depmod_symbol_find,
// depmod_load_modules), dependencies and KABI findings (depmod_load_module_dependencies,
// mod_add_dependency), the topological order (depmod_calculate_dependencies, dep_cmp), cycle
// reports (depmod_report_cycles*), each module's full sorted dependency list
// (mod_get_all_sorted_dependencies), and the symbol table's iteration order (output_symbols).
//
// Pure: a ModuleSet in, a ComputedDatabase of typed arrays out. Every merge, full or incremental,
// derives the whole database from the set with this code: over interned ids and typed arrays it
// costs milliseconds, so there is no incremental variant of it to get wrong. Every ordering rule
// that decides byte identity is a named function here.
import { depmodError, type DepmodMessage } from './diagnostic.ts';
import { kmodModname } from './search.ts';
import { SYMBOLS_BUCKETS } from './kmod-hash.ts';
import type { ModuleSet } from './module-set.ts';

export type KabiKind = 'unknown' | 'crc-mismatch';

/**
 * What imports are checked against: the kernel's symbols and the modules' exports, with CRCs
 * (Module.symvers, depmod -E) or names only (System.map, -F); only the modules' exports; nothing.
 * 'modules' goes beyond depmod, whose CRC check needs -E: a package manager often has no
 * Module.symvers (Debian ships it in linux-headers), and a module built against another build of
 * its provider module is what a KABI check is for. Unknown symbols are not reported then: without
 * the kernel's list every vmlinux symbol would look unknown.
 */
export type KabiBasis = 'symvers' | 'system-map' | 'modules' | 'none';

/**
 * The verdict on one import whose provider was looked up (undefined: nobody exports it): depmod
 * -e's rule, weak imports exempt, extended to the 'modules' basis. The one rule behind
 * update/rebuild (computeDatabase) and `check` (src/merge/check.ts).
 */
export function importVerdict(
  basis: KabiBasis,
  imp: { crc: number; weak: boolean },
  providerCrc: number | undefined,
  providerIsKernel: boolean,
): KabiKind | undefined {
  if (basis === 'none' || imp.weak) return undefined;
  if (providerCrc === undefined) return basis === 'modules' ? undefined : 'unknown';
  if (providerCrc === imp.crc) return undefined;
  return basis === 'symvers' || (basis === 'modules' && !providerIsKernel) ? 'crc-mismatch' : undefined;
}

/** One line of `depmod -e -E Module.symvers` stderr, as data. */
export interface KabiFinding {
  kind: KabiKind;
  module: string;
  /** Module path as depmod prints it (absolute: DIRNAME/relpath). */
  modulePath: string;
  symbol: string;
  /** CRC the module was built against (its __versions entry; 0 when it has none). */
  expectedCrc: number;
  /** CRC of the provider, for crc-mismatch. */
  foundCrc?: number;
  /** The providing module's name, or 'vmlinux' for the kernel, for crc-mismatch. */
  provider?: string;
  /** depmod's own wording, without the "depmod: WARNING: " prefix. */
  message: string;
}

/**
 * A module kmod's depmod could not load ("depmod: ERROR: failed to load symbols from PATH: ERROR"):
 * listed in the database with nothing from the part kmod could not read. Reported with the KABI findings.
 */
export interface LoadFinding {
  kind: 'unreadable';
  module: string;
  /** Module path as depmod prints it (absolute: DIRNAME/relpath). */
  modulePath: string;
  /** The strerror() text depmod prints ("Invalid argument", "Exec format error", ...). */
  error: string;
  /** What is wrong with the file, in our words. */
  detail: string;
  /** depmod's own line, without the "depmod: ERROR: " prefix. */
  message: string;
}

export interface CycleReport {
  /** "a -> b -> a" strings, in the order depmod prints "Cycle detected: ..." lines. */
  cycles: string[];
  /** The count in "Found N modules in dependency cycles!". */
  modulesInCycles: number;
  /** depmod's stderr lines without the "depmod: ERROR: " prefix. */
  messages: string[];
  /**
   * kmod's walk overflowed its stack: depmod dies on "Assertion `is < stack_size' failed" (SIGABRT)
   * after printing `messages`, and prints no count.
   */
  aborted: boolean;
  /** kmod's walk would not terminate on this graph (it never overflows, it loops); we stopped it. */
  truncated: boolean;
}

/** depmod_symbol_find: a leading '.' is dropped (ppc64 function descriptors), then the -P prefix. */
export function symbolLookupName(name: string, symPrefix: string): string {
  let n = name.startsWith('.') ? name.slice(1) : name;
  if (symPrefix !== '' && n.startsWith(symPrefix)) n = n.slice(1);
  return n;
}

export interface ComputeOptions {
  /** What imports are checked against (KabiBasis); the kernel's symbols are the set's. */
  kabi: KabiBasis;
  /** kmod's cfg.dirname (ROOT/lib/modules/KVER), used only to spell paths in messages as depmod does. */
  dirname: string;
  /** -P: one character stripped from symbol names. */
  symPrefix?: string;
  /** kmod 34+: a module flagged zstdUnsized cannot be loaded and contributes nothing but its line. */
  unsizedZstdUnreadable?: boolean;
}

/** Symbol owner codes besides a module's array index. */
export const OWNER_KERNEL = -1;
export const OWNER_NONE = -2;

export interface ComputedDatabase {
  /** Module array: idx → slot. Its order is the line order of modules.dep, .alias, .softdep, ... */
  order: Uint32Array;
  /** slot → idx, -1 for dropped slots. */
  idxOf: Int32Array;
  /** Per symbol id: idx of the owning module (the last exporter in array order), OWNER_KERNEL, or OWNER_NONE. */
  owner: Int32Array;
  ownerCrc: Float64Array;
  /** Direct dependencies per idx (resolution order): depList[depStart[i] .. depStart[i + 1]]. */
  depStart: Uint32Array;
  depList: Uint32Array;
  /** Topological position (modules without users first); -1 in or below a cycle. */
  depSortIdx: Int32Array;
  /** The modules.dep line per idx (transitive, sorted by depSortIdx): allList[allStart[i] .. allStart[i + 1]]. */
  allStart: Uint32Array;
  allList: Uint32Array;
  /** Symbol ids in the table (kernel or module-exported), in kmod's hash iteration order. */
  symbolOrder: Uint32Array;
  /** Per slot: 1 when kmod 34 cannot load a .ko.zst (zstdUnsized), so none of its facts count (compute, emit). */
  unreadable: Uint8Array;
  /** Every module kmod could not load, in array order (the order depmod prints them in). */
  unreadableModules: LoadFinding[];
  kabi: KabiFinding[];
  /** Set when the dependency graph has cycles: depmod then writes no file at all and exits 1. */
  cycles: CycleReport | null;
  warnings: DepmodMessage[];
}

/**
 * depmod_modules_build_array + depmod_modules_sort + mod_cmp. The array starts in the iteration
 * order of kmod's modules_by_name hash (512 buckets: bucket, then strcmp of the name) and is then
 * sorted stably by modules.order position, so the whole order is the key (sortIdx, bucket, name).
 */
export function moduleArrayOrder(set: ModuleSet): Uint32Array {
  const live = Uint32Array.from(set.liveSlots());
  const { sortIdx, bucket, nameOff, nameLen } = set;
  const h = set.heap.bytes;
  return live.sort((a, b) => {
    const d = sortIdx[a]! - sortIdx[b]! || bucket[a]! - bucket[b]!;
    if (d !== 0) return d;
    const oa = nameOff[a]!;
    const ob = nameOff[b]!;
    const n = Math.min(nameLen[a]!, nameLen[b]!);
    for (let i = 0; i < n; i++) {
      const x = h[oa + i]! - h[ob + i]!;
      if (x !== 0) return x;
    }
    return nameLen[a]! - nameLen[b]!;
  });
}

/**
 * The symbol ids a module's imports (lookup: '.' and -P prefix stripped) and exports (-P stripped)
 * resolve through. Identity unless names need stripping; stripped names are interned into the pool.
 */
function canonicalSymbols(set: ModuleSet, symPrefix: string): { imports: (id: number) => number; exports: (id: number) => number } {
  const pool = set.pool;
  let dotted = false;
  for (let id = 0; id < pool.count && !dotted; id++) dotted = pool.firstByte(id) === 0x2e;
  if (!dotted && symPrefix === '') return { imports: (id) => id, exports: (id) => id };
  const memoI = new Map<number, number>();
  const memoE = new Map<number, number>();
  const strip = (n: string): string => (symPrefix !== '' && n.startsWith(symPrefix) ? n.slice(1) : n);
  const via = (memo: Map<number, number>, f: (n: string) => string) => (id: number): number => {
    let c = memo.get(id);
    if (c === undefined) {
      const name = pool.name(id);
      const stripped = f(name);
      c = stripped === name ? id : pool.internString(stripped);
      memo.set(id, c);
    }
    return c;
  };
  return { imports: via(memoI, (n) => symbolLookupName(n, symPrefix)), exports: via(memoE, strip) };
}

/**
 * depmod_calculate_dependencies: Kahn's algorithm with a stack. Roots (no users) are pushed in array
 * order, the top is popped, gets the next dep_sort_idx, and its direct deps (in resolution order)
 * lose a user each, those reaching zero pushed in that order. Returns how many modules got a place.
 */
export function topologicalSort(n: number, depStart: Uint32Array, depList: Uint32Array, users: Int32Array, depSortIdx: Int32Array): number {
  const stack = new Int32Array(n);
  let top = 0;
  for (let i = 0; i < n; i++) if (users[i] === 0) stack[top++] = i;
  let placed = 0;
  while (top > 0) {
    const src = stack[--top]!;
    depSortIdx[src] = placed++;
    for (let j = depStart[src]!; j < depStart[src + 1]!; j++) {
      const d = depList[j]!;
      if (--users[d]! === 0) stack[top++] = d;
    }
  }
  return placed;
}

/**
 * kmod_list_remove_data on depmod's root list, which is circular: the node after the removed one
 * becomes the list's head (depmod stores the returned node as the list). Removing a module from the
 * middle therefore rotates the list; the oracle shows it in the order of later "Cycle detected" lines.
 */
export function removeFromCircularList<T>(list: T[], item: T): T[] {
  const i = list.indexOf(item);
  if (i < 0) return list;
  const rest = [...list.slice(0, i), ...list.slice(i + 1)];
  if (rest.length === 0) return rest;
  const head = i % rest.length;
  return [...rest.slice(head), ...rest.slice(0, head)];
}

/** A module in the cycle walk. */
export interface CycleVertex {
  name: string;
  deps: CycleVertex[];
  visited: boolean;
}

/**
 * depmod_report_cycles + depmod_report_cycles_from_root + depmod_report_one_cycle, step for step:
 * roots are the unsorted modules in array order; from each, a depth-first walk with an explicit stack
 * (deps pushed in resolution order, so the last is explored first) reports a cycle whenever it pops
 * the root's module again, printing the path from the root; `visited` is never reset between roots,
 * so a root already visited reports itself alone ("Cycle detected: x"). Modules without deps and
 * modules on a reported path leave the root list (removeFromCircularList). The stack holds as many
 * vertices as there are unsorted modules; kmod asserts before each push, so a walk that needs more
 * aborts depmod (SIGABRT, no "Found N modules" line): `aborted` says so.
 */
export function reportCycles(unsorted: CycleVertex[]): CycleReport {
  let roots = [...unsorted];
  const loopSet = new Set<string>();
  const cycles: string[] = [];
  const stackSize = unsorted.length;
  let aborted = false;
  let truncated = false;
  interface Step {
    parent: Step | null;
    mod: CycleVertex;
  }
  // kmod can loop forever here, printing ever longer paths (the oracle shows it on a cycle reachable
  // from another cycle); stop after enough to compare with what it printed.
  let budget = 200_000;
  const maxCycles = 500;
  outer: while (roots.length > 0) {
    const rootMod = roots[0]!;
    roots = roots.slice(1);
    const stack: Step[] = [{ parent: null, mod: rootMod }];
    while (stack.length > 0) {
      if (--budget < 0) {
        truncated = true;
        break outer;
      }
      const v = stack.pop()!;
      const m = v.mod;
      if (m.visited && m === rootMod) {
        const chain: CycleVertex[] = [];
        for (let p = v.parent; p !== null; p = p.parent) {
          chain.push(p.mod);
          loopSet.add(p.mod.name);
        }
        chain.reverse();
        for (const c of chain) roots = removeFromCircularList(roots, c);
        cycles.push([...chain.map((c) => c.name), m.name].join(' -> '));
        if (cycles.length >= maxCycles) {
          truncated = true;
          break outer;
        }
        continue;
      }
      m.visited = true;
      if (m.deps.length === 0) {
        roots = removeFromCircularList(roots, m);
        continue;
      }
      for (const d of m.deps) {
        if (stack.length >= stackSize) {
          aborted = true;
          break outer;
        }
        stack.push({ parent: v, mod: d });
      }
    }
  }
  const messages = cycles.map((c) => `Cycle detected: ${c}`);
  if (!aborted && !truncated) messages.push(`Found ${loopSet.size} modules in dependency cycles!`);
  return { cycles, modulesInCycles: loopSet.size, messages, aborted, truncated };
}

/**
 * output_symbols' iteration of depmod's symbol hash table (2,048 buckets, entries sorted by strcmp
 * inside a bucket): a stable counting sort by bucket of the symbols in name order (the set keeps
 * that order), so no name is compared here.
 */
export function symbolHashOrder(set: ModuleSet, inTable: Uint8Array): Uint32Array {
  const pool = set.pool;
  const byName = set.sortedSymbols().ids;
  const mask = SYMBOLS_BUCKETS - 1;
  const counts = new Uint32Array(SYMBOLS_BUCKETS + 1);
  let n = 0;
  for (let k = 0; k < byName.length; k++) {
    const id = byName[k]!;
    if (inTable[id] !== 1) continue;
    counts[(pool.hash[id]! & mask) + 1]!++;
    n++;
  }
  for (let b = 0; b < SYMBOLS_BUCKETS; b++) counts[b + 1]! += counts[b]!;
  const out = new Uint32Array(n);
  for (let k = 0; k < byName.length; k++) {
    const id = byName[k]!;
    if (inTable[id] === 1) out[counts[pool.hash[id]! & mask]!++] = id;
  }
  return out;
}

export function computeDatabase(set: ModuleSet, opts: ComputeOptions): ComputedDatabase {
  const warnings: DepmodMessage[] = [];
  const symPrefix = opts.symPrefix ?? '';
  const basis = opts.kabi;
  const order = moduleArrayOrder(set);
  const n = order.length;
  const idxOf = new Int32Array(set.slots).fill(-1);
  for (let i = 0; i < n; i++) idxOf[order[i]!] = i;
  const unreadable = new Uint8Array(set.slots);
  const unreadableModules: LoadFinding[] = [];
  // depmod_load_modules, in array order: kmod_module_get_symbols, kmod_module_get_info and
  // kmod_module_get_dependency_symbols each log what libkmod logs, and only the first failure is
  // printed by depmod itself. The module's facts are what its reading holds (partial or none).
  for (let i = 0; i < n; i++) {
    const s = order[i]!;
    const path = set.path(s);
    const modulePath = path.startsWith('/') ? path : `${opts.dirname}/${path}`;
    let failure = set.loadFailure(s);
    if (opts.unsizedZstdUnreadable === true && set.zstdUnsized[s] === 1) {
      unreadable[s] = 1;
      const z = 'zstd: Failed to determine decompression size';
      failure = { error: 'Invalid argument', detail: 'the first zstd frame does not declare its size (kmod 34 loads a .ko.zst in one call)', libkmod: [z, z, z] };
    }
    if (failure === undefined) continue;
    const message = `failed to load symbols from ${modulePath}: ${failure.error}`;
    const [first, ...later] = failure.libkmod.map(depmodError);
    warnings.push(...(first !== undefined ? [first] : []), depmodError(message), ...later);
    unreadableModules.push({ kind: 'unreadable', module: kmodModname(path), modulePath, error: failure.error, detail: failure.detail, message });
  }

  // The symbol table: the kernel's symbols, then module exports in array order; the last writer wins
  // (hash_add replaces), and a module export replaces the kernel's own entry.
  const canon = canonicalSymbols(set, symPrefix);
  const symCount = set.pool.count;
  const owner = new Int32Array(symCount).fill(OWNER_NONE);
  const ownerCrc = new Float64Array(symCount);
  const inTable = new Uint8Array(symCount);
  for (let id = 0; id < symCount; id++) {
    if (set.kernelHas[id] === 1) {
      owner[id] = OWNER_KERNEL;
      ownerCrc[id] = set.kernelCrc[id]!;
      inTable[id] = 1;
    }
  }
  for (let i = 0; i < n; i++) {
    const s = order[i]!;
    if (unreadable[s] === 1) continue;
    for (let e = set.expStart[s]!, end = e + set.expCount[s]!; e < end; e++) {
      const id = canon.exports(set.expSym[e]!);
      owner[id] = i;
      ownerCrc[id] = set.expCrc[e]!;
      inTable[id] = 1;
    }
  }
  const symbolOrder = symbolHashOrder(set, inTable);

  // Dependencies in resolution order, and the KABI verdict of every import.
  const kabi: KabiFinding[] = [];
  const depStart = new Uint32Array(n + 1);
  let depList = new Uint32Array(Math.max(16, n * 4));
  let deps = 0;
  const users = new Int32Array(n);
  // depOf[provider] === user + 1: provider already counted for this user.
  const depOf = new Int32Array(n);
  const imp = { crc: 0, weak: false };
  for (let i = 0; i < n; i++) {
    const s = order[i]!;
    depStart[i] = deps;
    if (unreadable[s] === 1) continue;
    for (let k = set.impStart[s]!, end = k + set.impCount[s]!; k < end; k++) {
      const id = canon.imports(set.impSym[k]!);
      const o = owner[id]!;
      if (basis !== 'none' && set.impWeak[k] === 0) {
        imp.crc = set.impCrc[k]!;
        imp.weak = false;
        const verdict = importVerdict(basis, imp, o === OWNER_NONE ? undefined : ownerCrc[id], o === OWNER_KERNEL);
        if (verdict !== undefined) kabi.push(finding(set, opts.dirname, s, k, verdict, o === OWNER_NONE ? undefined : { crc: ownerCrc[id]!, owner: o < 0 ? 'vmlinux' : set.name(order[o]!) }));
      }
      // mod_add_dependency: kernel symbols add nothing; each provider counted once per user.
      if (o >= 0 && depOf[o] !== i + 1) {
        depOf[o] = i + 1;
        if (deps === depList.length) {
          const bigger = new Uint32Array(deps * 2);
          bigger.set(depList);
          depList = bigger;
        }
        depList[deps++] = o;
        users[o]!++;
      }
    }
  }
  depStart[n] = deps;

  const depSortIdx = new Int32Array(n).fill(0x7fffffff);
  const placed = topologicalSort(n, depStart, depList, users, depSortIdx);
  let cycles: CycleReport | null = null;
  let allStart: Uint32Array = new Uint32Array(n + 1);
  let allList: Uint32Array = new Uint32Array(0);
  if (placed < n) {
    const vertices: CycleVertex[] = [];
    for (let i = 0; i < n; i++) vertices.push({ name: set.name(order[i]!), deps: [], visited: false });
    for (let i = 0; i < n; i++) for (let j = depStart[i]!; j < depStart[i + 1]!; j++) vertices[i]!.deps.push(vertices[depList[j]!]!);
    const unsorted: CycleVertex[] = [];
    for (let i = 0; i < n; i++) {
      if (users[i]! > 0) {
        unsorted.push(vertices[i]!);
        depSortIdx[i] = -1;
      }
    }
    cycles = reportCycles(unsorted);
  } else {
    ({ allStart, allList } = sortedClosures(n, depStart, depList, depSortIdx));
  }
  return { order, idxOf, owner, ownerCrc, depStart, depList, depSortIdx, allStart, allList, symbolOrder, unreadable, unreadableModules, kabi, cycles, warnings };
}

function finding(
  set: ModuleSet,
  dirname: string,
  slot: number,
  k: number,
  kind: KabiKind,
  provider: { crc: number; owner: string } | undefined,
): KabiFinding {
  const path = set.path(slot);
  const modulePath = path.startsWith('/') ? path : `${dirname}/${path}`;
  const symbol = set.pool.name(set.impSym[k]!);
  const f: KabiFinding = { kind, module: kmodModname(path), modulePath, symbol, expectedCrc: set.impCrc[k]!, message: '' };
  if (kind === 'unknown') f.message = `${modulePath} needs unknown symbol ${symbol}`;
  else {
    f.foundCrc = provider?.crc;
    f.provider = provider?.owner ?? 'vmlinux';
    f.message = `${modulePath} disagrees about version of symbol ${symbol}`;
  }
  return f;
}

/**
 * mod_get_all_sorted_dependencies for every module: the transitive closure, sorted by dep_sort_idx
 * (distinct when there is no cycle, so the walk order does not matter). `seenBy[idx] === stamp`
 * marks a module seen in this walk: one array for all modules instead of a set per module.
 */
function sortedClosures(n: number, depStart: Uint32Array, depList: Uint32Array, depSortIdx: Int32Array): { allStart: Uint32Array; allList: Uint32Array } {
  const allStart = new Uint32Array(n + 1);
  let allList = new Uint32Array(Math.max(16, n * 8));
  let used = 0;
  const seenBy = new Int32Array(n);
  const todo: number[] = [];
  const bySortIdx = (a: number, b: number): number => depSortIdx[a]! - depSortIdx[b]!;
  for (let i = 0; i < n; i++) {
    allStart[i] = used;
    const stamp = i + 1;
    for (let j = depStart[i]!; j < depStart[i + 1]!; j++) todo.push(depList[j]!);
    while (todo.length > 0) {
      const d = todo.pop()!;
      if (seenBy[d] === stamp) continue;
      seenBy[d] = stamp;
      if (used === allList.length) {
        const bigger = new Uint32Array(used * 2);
        bigger.set(allList);
        allList = bigger;
      }
      allList[used++] = d;
      for (let j = depStart[d]!; j < depStart[d + 1]!; j++) if (seenBy[depList[j]!] !== stamp) todo.push(depList[j]!);
    }
    if (used - allStart[i]! > 1) allList.subarray(allStart[i]!, used).sort(bySortIdx);
  }
  allStart[n] = used;
  return { allStart, allList: allList.subarray(0, used) };
}
