// The depmod computation of kmod v30 (tools/depmod.c): module array order
// (depmod_modules_build_array, depmod_modules_sort, mod_cmp), the symbol table (depmod_symbol_add,
// depmod_symbol_find, depmod_load_modules), dependencies and KABI findings
// (depmod_load_module_dependencies, mod_add_dependency), the topological order
// (depmod_calculate_dependencies, dep_cmp), cycle reports (depmod_report_cycles*), and each
// module's full sorted dependency list (mod_get_all_sorted_dependencies).
//
// Pure: records in, a Database out. Every ordering rule that decides byte identity is a named
// function here.
import type { ModuleRecord } from '../module/record.ts';
import type { KernelSymbols } from './kernel-symbols.ts';
import { MODULES_BY_NAME_BUCKETS, SYMBOLS_BUCKETS, kmodHashIterationOrder } from './kmod-hash.ts';
import { kmodModname } from './search.ts';

export interface BuildModuleInput {
  /** What modules.dep prints: relative to the module directory, or absolute (external dirs). */
  path: string;
  record: ModuleRecord;
}

export interface BuildInput {
  /** Winners of the search (search.ts), any order: kmod's order does not depend on it. */
  modules: readonly BuildModuleInput[];
  /** Raw text of modules.order, or undefined when the file does not exist. */
  order?: string | undefined;
  /** Module.symvers or System.map symbols (-E / -F). Absent: kernel symbols are unknown, as without -E/-F. */
  kernelSymbols?: KernelSymbols | undefined;
  /** kmod's cfg.dirname (ROOT/lib/modules/KVER), used only to spell paths in messages as depmod does. */
  dirname?: string;
  /** -P: one character stripped from symbol names. */
  symPrefix?: string;
  /** Without kernel symbols, still compare imports with exporting modules (KabiBasis 'modules'). */
  moduleCrcCheck?: boolean;
}

export interface DbModule {
  name: string;
  /** modules.dep spelling (mod_get_compressed_path). */
  path: string;
  /** Position in the module array: line number in modules.dep etc., value priority in the .bin files. */
  idx: number;
  record: ModuleRecord;
  /** Direct dependencies (indices into modules), sorted by depSortIdx once the sort succeeded. */
  deps: number[];
  /** Topological position (modules without users first); -1 when the module is in or below a cycle. */
  depSortIdx: number;
  /** All dependencies, transitive, sorted by depSortIdx: the modules.dep line. Empty on a cycle. */
  allDeps: number[];
}

export interface DbSymbol {
  name: string;
  /** idx of the exporting module; null for the kernel's own symbols (not written). */
  owner: number | null;
  crc: number;
}

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
 * update/rebuild (buildDatabase) and `check` (src/merge/check.ts).
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

export interface Database {
  modules: DbModule[];
  /** Every symbol in kmod's hash iteration order (modules.symbols line order), kernel ones included. */
  symbols: DbSymbol[];
  kabi: KabiFinding[];
  /** Set when the dependency graph has cycles: depmod then writes no file at all and exits 1. */
  cycles: CycleReport | null;
  warnings: string[];
}

export interface Mod {
  name: string;
  path: string;
  uncrelpath: string | null;
  record: ModuleRecord;
  sortIdx: number;
  idx: number;
  deps: Mod[];
  users: number;
  depSortIdx: number;
  visited: boolean;
}

/**
 * depmod_module_add's uncrelpath: the relative path cut after the directory, as many bytes as the
 * modname has, and ".ko" — built from the real file name, so "a-b.ko.xz" gives "dir/a-b.ko" (dashes
 * kept) and modules.order lines match it. Null for modules outside the module directory.
 */
export function uncompressedRelpath(path: string, modname: string): string | null {
  if (path.startsWith('/')) return null;
  const slash = path.lastIndexOf('/');
  return path.slice(0, slash + 1 + modname.length + 3);
}

/**
 * depmod_modules_build_array + depmod_modules_sort + mod_cmp. The array starts in the iteration
 * order of kmod's modules_by_name hash (512 buckets). Every module gets sort_idx 1 at discovery
 * (depmod_module_add reads modules.count, which is still 0 while searching); modules.order lines
 * matching a module's uncrelpath give it line - (lines + 1), a later line overriding an earlier.
 * glibc's qsort (a merge sort here) is stable, so unlisted modules keep hash order after the listed
 * ones. The oracle shows it: a tree without modules.order lists modules in neither name nor readdir order.
 * When modules.order is missing, or any line lacks its '\n' (kmod: "corrupted line"), no sort happens.
 */
export function orderModules(mods: Mod[], orderText: string | undefined, warnings: string[], dirname: string): Mod[] {
  const arr = kmodHashIterationOrder(mods, (m) => m.name, MODULES_BY_NAME_BUCKETS);
  if (orderText === undefined) return arr;
  const lines = orderText.split('\n');
  const last = lines.pop();
  if (last !== undefined && last !== '') {
    warnings.push(`${dirname}/modules.order:${lines.length + 1} corrupted line misses '\\n'`);
    return arr;
  }
  const byUncrel = new Map<string, Mod>();
  for (const m of arr) if (m.uncrelpath !== null) byUncrel.set(m.uncrelpath, m);
  const total = lines.length + 1;
  lines.forEach((line, i) => {
    const m = byUncrel.get(line);
    if (m !== undefined) m.sortIdx = i + 1 - total;
  });
  // Array.prototype.sort is stable, like glibc's merge sort for this input.
  return arr.sort((a, b) => a.sortIdx - b.sortIdx);
}

/** depmod_symbol_find: a leading '.' is dropped (ppc64 function descriptors), then the -P prefix. */
export function symbolLookupName(name: string, symPrefix: string): string {
  let n = name.startsWith('.') ? name.slice(1) : name;
  if (symPrefix !== '' && n.startsWith(symPrefix)) n = n.slice(1);
  return n;
}

/**
 * The table's owner for a name is the LAST module in array order that exports it (hash_add
 * replaces), and a module export replaces the kernel's own entry from symvers.
 */
function buildSymbolTable(arr: Mod[], kernel: KernelSymbols | undefined, symPrefix: string): Map<string, { owner: Mod | null; crc: number }> {
  const table = new Map<string, { owner: Mod | null; crc: number }>();
  if (kernel) for (const [name, crc] of kernel.symbols) table.set(name, { owner: null, crc });
  for (const m of arr) {
    for (const e of m.record.exports) {
      const name = symPrefix !== '' && e.name.startsWith(symPrefix) ? e.name.slice(1) : e.name;
      table.set(name, { owner: m, crc: e.crc });
    }
  }
  return table;
}

/**
 * depmod_calculate_dependencies: Kahn's algorithm with a stack. Roots (no users) are pushed in array
 * order, the top is popped, gets the next dep_sort_idx, and its direct deps (in resolution order)
 * lose a user each, those reaching zero pushed in that order. Returns the modules left unsorted.
 */
export function topologicalSort(arr: Mod[]): Mod[] {
  const users = arr.map((m) => m.users);
  const stack: number[] = [];
  for (let i = 0; i < arr.length; i++) if (users[i] === 0) stack.push(i);
  let n = 0;
  while (stack.length > 0) {
    const src = arr[stack.pop()!]!;
    src.depSortIdx = n++;
    for (const d of src.deps) {
      if (--users[d.idx]! === 0) stack.push(d.idx);
    }
  }
  return arr.filter((_, i) => users[i]! > 0);
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
export function reportCycles(unsorted: Mod[]): CycleReport {
  let roots = [...unsorted];
  const loopSet = new Set<string>();
  const cycles: string[] = [];
  const stackSize = unsorted.length;
  let aborted = false;
  let truncated = false;
  interface Vertex {
    parent: Vertex | null;
    mod: Mod;
  }
  // kmod can loop forever here, printing ever longer paths (the oracle shows it on a cycle reachable
  // from another cycle); stop after enough to compare with what it printed.
  let budget = 200_000;
  const maxCycles = 500;
  outer: while (roots.length > 0) {
    const rootMod = roots[0]!;
    roots = roots.slice(1);
    const stack: Vertex[] = [{ parent: null, mod: rootMod }];
    while (stack.length > 0) {
      if (--budget < 0) {
        truncated = true;
        break outer;
      }
      const v = stack.pop()!;
      const m = v.mod;
      if (m.visited && m === rootMod) {
        const chain: Mod[] = [];
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
 * mod_get_all_sorted_dependencies: the transitive closure, sorted by dep_sort_idx (distinct when
 * there is no cycle, so the walk order does not matter). `seenBy[idx] === stamp` marks a module
 * seen in this walk: one array for all modules instead of a Set per module.
 */
function allSortedDependencies(m: Mod, seenBy: Int32Array, stamp: number): number[] {
  const out: Mod[] = [];
  const todo = m.deps.slice();
  while (todo.length > 0) {
    const d = todo.pop()!;
    if (seenBy[d.idx] === stamp) continue;
    seenBy[d.idx] = stamp;
    out.push(d);
    for (const dd of d.deps) if (seenBy[dd.idx] !== stamp) todo.push(dd);
  }
  if (out.length > 1) out.sort((a, b) => a.depSortIdx - b.depSortIdx);
  return out.map((d) => d.idx);
}

export function buildDatabase(input: BuildInput): Database {
  const warnings: string[] = [];
  const symPrefix = input.symPrefix ?? '';
  const dirname = input.dirname ?? '';
  const mods: Mod[] = input.modules.map(({ path, record }) => {
    const name = kmodModname(path);
    return {
      name,
      path,
      uncrelpath: uncompressedRelpath(path, name),
      record,
      sortIdx: 1,
      idx: 0,
      deps: [],
      users: 0,
      depSortIdx: 0x7fffffff,
      visited: false,
    };
  });
  const arr = orderModules(mods, input.order, warnings, dirname);
  arr.forEach((m, i) => (m.idx = i));

  const table = buildSymbolTable(arr, input.kernelSymbols, symPrefix);
  const basis: KabiBasis = input.kernelSymbols?.source ?? (input.moduleCrcCheck === true ? 'modules' : 'none');
  const kabi: KabiFinding[] = [];
  const absPath = (p: string): string => (p.startsWith('/') ? p : `${dirname}/${p}`);

  // depOf[provider.idx] === user.idx + 1: provider already counted for this user (one array, not a Set per module).
  const depOf = new Int32Array(arr.length);
  for (const m of arr) {
    for (const imp of m.record.imports) {
      const sym = table.get(symbolLookupName(imp.name, symPrefix));
      const verdict = importVerdict(basis, imp, sym?.crc, sym?.owner === null);
      if (verdict !== undefined) {
        const modulePath = absPath(m.path);
        const finding: KabiFinding = { kind: verdict, module: m.name, modulePath, symbol: imp.name, expectedCrc: imp.crc, message: '' };
        if (verdict === 'unknown') finding.message = `${modulePath} needs unknown symbol ${imp.name}`;
        else {
          finding.foundCrc = sym?.crc;
          finding.provider = sym?.owner?.name ?? 'vmlinux';
          finding.message = `${modulePath} disagrees about version of symbol ${imp.name}`;
        }
        kabi.push(finding);
      }
      if (sym === undefined) continue;
      // mod_add_dependency: kernel symbols add nothing; each provider counted once per user.
      if (sym.owner !== null && depOf[sym.owner.idx] !== m.idx + 1) {
        depOf[sym.owner.idx] = m.idx + 1;
        m.deps.push(sym.owner);
        sym.owner.users++;
      }
    }
  }

  const unsorted = topologicalSort(arr);
  let cycles: CycleReport | null = null;
  if (unsorted.length > 0) {
    cycles = reportCycles(unsorted);
    for (const m of unsorted) m.depSortIdx = -1;
  } else {
    for (const m of arr) if (m.deps.length > 1) m.deps.sort((a, b) => a.depSortIdx - b.depSortIdx);
  }

  const symbols: DbSymbol[] = kmodHashIterationOrder([...table], ([name]) => name, SYMBOLS_BUCKETS).map(([name, s]) => ({
    name,
    owner: s.owner === null ? null : s.owner.idx,
    crc: s.crc,
  }));

  const seenBy = new Int32Array(arr.length);
  const modules: DbModule[] = arr.map((m) => ({
    name: m.name,
    path: m.path,
    idx: m.idx,
    record: m.record,
    deps: m.deps.map((d) => d.idx),
    depSortIdx: m.depSortIdx,
    allDeps: cycles === null ? allSortedDependencies(m, seenBy, m.idx + 1) : [],
  }));
  return { modules, symbols, kabi, cycles, warnings };
}
