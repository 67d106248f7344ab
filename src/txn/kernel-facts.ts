// The one place weak-updates reads a kernel's module facts: the module cache (src/cache) turned into
// plain per-module records (WeakModule: path, name, exports with CRCs, imports) plus the kernel's
// own symbols and depmod.d. When the cache layout changes, this file is what changes.
//
// What it returns is the tree as depmod would see it without the links depmod-tx made (`exclude`):
// the search winners of a fresh listing, each taken from the cache when the cache vouches for the
// file (its directory's mtime is the one the cache recorded, or its size, mtime, ctime and inode
// are) and parsed otherwise (a file a pending transaction changed, a module the cache does not hold
// because one of depmod-tx's links shadowed it). A kernel without a usable cache gets one first
// (`buildCache`: a merge), so only the few changed files are ever parsed here.
import { join } from 'node:path';
import { statSync } from 'node:fs';
import type { CacheMeta } from '../cache/format.ts';
import { cacheFile, fingerprintOf, loadCache, sameFingerprint } from '../cache/store.ts';
import type { ModuleSet } from '../depmod/module-set.ts';
import { orderPositions, sortIdxOf } from '../depmod/module-set.ts';
import { planRebuild } from '../depmod/rebuild.ts';
import type { DepmodConfig } from '../depmod/config.ts';
import type { KabiBasis } from '../depmod/compute.ts';
import type { KmodBehaviour } from '../depmod/kmod-version.ts';
import { DEFAULT_BEHAVIOUR } from '../depmod/kmod-version.ts';
import type { WeakModule } from '../depmod/weak-updates.ts';
import { listDirIfPossible, locateModuleTree, statTypeFollowingLinks, type ModuleTree } from '../io/tree.ts';
import { parseModules } from '../io/parse-pool.ts';
import { configDirs, kabiInput, loadKernelSymbols, readKernelInputs } from '../merge/inputs.ts';
import type { ModuleRecord } from '../module/record.ts';
import { MODULE_SUFFIXES } from '../module/suffixes.ts';

export interface KernelFacts {
  tree: ModuleTree;
  /** Search winners without the excluded links, with absolute paths. */
  modules: WeakModule[];
  symbols: Map<string, number> | undefined;
  basis: KabiBasis;
  config: DepmodConfig;
  /** Non-directories under updates/, extra/ and weak-updates/ (relative paths), the excluded links left out. */
  foreign: string[];
  /** How many module files had to be parsed (the cache did not vouch for them). */
  parsed: number;
}

export interface KernelFactsOptions {
  root: string;
  kver: string;
  /** Absolute paths of links depmod-tx made in this kernel: the facts are of the tree without them. */
  exclude?: ReadonlySet<string>;
  behaviour?: KmodBehaviour;
  /** Builds the kernel's module cache (a merge under its lock) when it has none that can be used. */
  buildCache?: (kver: string) => Promise<void>;
}

/** Symbol names of a set's pool, each decoded once. */
function poolNames(set: ModuleSet): (id: number) => string {
  const names: Array<string | undefined> = new Array(set.pool.count);
  return (id) => (names[id] ??= set.pool.name(id));
}

function moduleOf(set: ModuleSet, name: (id: number) => string, slot: number, path: string, sortIdx: number): WeakModule {
  const exports = new Map<string, number>();
  for (let e = set.expStart[slot]!, end = e + set.expCount[slot]!; e < end; e++) exports.set(name(set.expSym[e]!), set.expCrc[e]!);
  const imports = [];
  for (let i = set.impStart[slot]!, end = i + set.impCount[slot]!; i < end; i++) imports.push({ name: name(set.impSym[i]!), crc: set.impCrc[i]!, weak: set.impWeak[i] === 1 });
  return { path, name: set.name(slot), exports, imports, sortIdx };
}

/** A parsed module's facts. */
function moduleOfRecord(r: ModuleRecord, path: string, sortIdx = 1): WeakModule {
  return { path, name: r.name, exports: new Map(r.exports.map((e) => [e.name, e.crc])), imports: r.imports.map((i) => ({ name: i.name, crc: i.crc, weak: i.weak })), sortIdx };
}

/** Facts of module files read directly (a KMP file that is no search winner in its own kernel). */
export async function parseModuleFacts(paths: readonly string[]): Promise<Map<string, WeakModule>> {
  const records = await parseModules(paths.map((p) => ({ abs: p, display: p })));
  return new Map(paths.map((p, i) => [p, moduleOfRecord(records[i]!, p)]));
}

function kernelSymbolsOf(set: ModuleSet, name: (id: number) => string): Map<string, number> {
  const out = new Map<string, number>();
  for (let id = 0; id < set.pool.count; id++) if (set.kernelHas[id] === 1) out.set(name(id), set.kernelCrc[id]!);
  return out;
}

/** Every non-directory below DIR (links not followed), as paths relative to `base`. */
function filesBelow(dir: string, base: string, exclude: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of listDirIfPossible(d) ?? []) {
      const p = `${d}/${e.name}`;
      if (e.type === 'dir') walk(p);
      else if (!exclude.has(p)) out.push(p.slice(base.length + 1));
    }
  };
  walk(dir);
  return out;
}

export async function readKernelFacts(opts: KernelFactsOptions): Promise<KernelFacts> {
  const behaviour = opts.behaviour ?? DEFAULT_BEHAVIOUR;
  const exclude = opts.exclude ?? new Set<string>();
  const tree = locateModuleTree(opts.root, opts.kver);
  const inputs = readKernelInputs(tree, configDirs(opts.root, undefined, behaviour));
  const plan = planRebuild({
    kver: opts.kver,
    dirname: tree.moddir,
    configFiles: inputs.configFiles,
    suffixes: MODULE_SUFFIXES,
    behaviour,
    io: {
      listDir: (d) => listDirIfPossible(d)?.filter((e) => !exclude.has(`${d}/${e.name}`)),
      statType: statTypeFollowingLinks,
    },
  });

  let cached = usableCache(opts.root, tree);
  if (cached === undefined && opts.buildCache !== undefined) {
    await opts.buildCache(opts.kver);
    cached = usableCache(opts.root, tree);
  }
  const set = cached?.set;
  const header = cached?.meta;
  const names = set === undefined ? undefined : poolNames(set);
  const slotByKey = new Map<string, number>();
  if (set !== undefined) for (const s of set.liveSlots()) slotByKey.set(set.path(s), s);

  const order = orderPositions(inputs.order, behaviour.orderFirstLineWins, tree.moddir);
  const dirMtime = new Map<string, string | undefined>();
  const mtimeOf = (dir: string): string | undefined => {
    if (!dirMtime.has(dir)) {
      const st = statSync(dir, { bigint: true, throwIfNoEntry: false });
      dirMtime.set(dir, st === undefined ? undefined : String(st.mtimeNs));
    }
    return dirMtime.get(dir);
  };
  const modules: Array<WeakModule | undefined> = [];
  const toParse: Array<{ at: number; abs: string; sortIdx: number }> = [];
  for (const m of plan.modules) {
    const key = m.relpath ?? m.abspath;
    const sortIdx = sortIdxOf(order, key);
    const slot = slotByKey.get(key);
    if (set !== undefined && header !== undefined && slot !== undefined) {
      const dir = m.abspath.slice(0, m.abspath.lastIndexOf('/'));
      const dirKey = dir === tree.moddir ? '' : dir.startsWith(`${tree.moddir}/`) ? dir.slice(tree.moddir.length + 1) : dir;
      let vouched = header.dirs[dirKey] !== undefined && header.dirs[dirKey] === mtimeOf(dir);
      if (!vouched) {
        try {
          vouched = sameFingerprint(set.fingerprint(slot), fingerprintOf(m.abspath));
        } catch {
          vouched = false;
        }
      }
      if (vouched) {
        modules.push(moduleOf(set, names!, slot, m.abspath, sortIdx));
        continue;
      }
    }
    toParse.push({ at: modules.length, abs: m.abspath, sortIdx });
    modules.push(undefined);
  }
  if (toParse.length > 0) {
    const records = await parseModules(toParse.map((p) => ({ abs: p.abs, display: p.abs })));
    toParse.forEach((p, i) => (modules[p.at] = moduleOfRecord(records[i]!, p.abs, p.sortIdx)));
  }

  // The kernel's symbols as the cache has them while their file is the one it used; else read again.
  const kabiIn = kabiInput(tree, 'auto', undefined);
  let symbols: Map<string, number> | undefined;
  let basis: KabiBasis = 'modules';
  if (set !== undefined && header?.kabiKey === kabiIn.key) {
    if (set.kernelSource !== undefined) {
      symbols = kernelSymbolsOf(set, names!);
      basis = set.kernelSource;
    }
  } else if (kabiIn.file !== undefined) {
    const ks = await loadKernelSymbols(kabiIn.file, 'symvers');
    symbols = ks.symbols;
    basis = ks.source;
  }

  const foreign = ['updates', 'extra', 'weak-updates'].flatMap((d) => filesBelow(join(tree.moddir, d), tree.moddir, exclude));
  return { tree, modules: modules as WeakModule[], symbols, basis, config: plan.config, foreign, parsed: toParse.length };
}

function usableCache(root: string, tree: ModuleTree): { set: ModuleSet; meta: CacheMeta } | undefined {
  const o = loadCache(cacheFile(root, tree.kver), { kver: tree.kver, moddir: tree.moddir });
  return o.ok ? { set: o.value.contents.set, meta: o.value.contents.meta } : undefined;
}
