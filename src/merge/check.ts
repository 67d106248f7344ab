// `depmod-tx check`: would these not-yet-installed module files load on the installed kernels?
// What KMP / weak-modules tooling asks today by running depmod -e -E several times per install.
// Nothing is written: not the database, not the cache.
//
// Per kernel, a candidate loads when each of its non-weak imports is provided by the kernel
// (Module.symvers), by an installed module (records from the module cache) or by another candidate,
// and the CRC it was built against equals the provider's. The provider of a name follows depmod's
// symbol table (tools/depmod.c depmod_symbol_add: a module export replaces the kernel's entry);
// candidates come last, so they replace installed exporters, and a candidate replaces the installed
// module of the same name (installing it would shadow or overwrite that one).
// The wording of each problem is depmod -e's, so scripts that grep depmod's output keep working.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { cacheFile, loadCache } from '../cache/store.ts';
import type { ModuleSet } from '../depmod/module-set.ts';
import { DEFAULT_BEHAVIOUR } from '../depmod/rebuild.ts';
import type { KernelSymbols } from '../depmod/kernel-symbols.ts';
import { planRebuild } from '../depmod/rebuild.ts';
import { importVerdict, symbolLookupName, type KabiBasis } from '../depmod/compute.ts';
import { FormatError, InputError } from '../errors.ts';
import { parseModules } from '../io/parse-pool.ts';
import { locateModuleTree, type ModuleTree, statTypeFollowingLinks, listDirIfPossible } from '../io/tree.ts';
import { MODULE_SUFFIXES } from '../module/suffixes.ts';
import { parseModuleFile, unloadable } from '../module/parse.ts';
import type { ModuleRecord } from '../module/record.ts';

/** What the check needs of an installed module. */
export type InstalledModule = Pick<ModuleRecord, 'name' | 'exports'>;
import { configDirs, discoverSymvers, loadKernelSymbols, readKernelInputs } from './inputs.ts';

export interface Candidate {
  /** The file as the caller named it, made absolute: problems name it as depmod names a module. */
  file: string;
  record: ModuleRecord;
}

export type CheckProblemKind = 'unknown' | 'crc-mismatch' | 'no-symvers';

export interface CheckProblem {
  kind: CheckProblemKind;
  file: string;
  module: string;
  symbol: string | null;
  expectedCrc: number | null;
  foundCrc: number | null;
  /** Module name of the exporter, 'vmlinux' for the kernel. */
  provider: string | null;
  /** depmod's wording, without its "depmod: WARNING: " prefix. */
  message: string;
}

export interface KernelVerdict {
  kver: string;
  ok: boolean;
  problems: CheckProblem[];
  /** Where the installed modules' records came from. */
  records: 'cache' | 'parsed';
  /** Why the cache was not used (records === 'parsed'). */
  cacheNote: string | undefined;
  installedModules: number;
  symvers: string | undefined;
  ms: number;
}

export interface CheckOptions {
  root: string;
  /** Kernel versions to check against; 'all' = every directory under ROOT/lib/modules (and usr/lib/modules). */
  kernels: readonly string[] | 'all';
  files: readonly string[];
  /** Module.symvers for every kernel checked; default: each kernel's own, discovered as update does. */
  symvers?: string | undefined;
  /** depmod.d directories, used only when a kernel has no usable cache and its tree must be parsed. */
  config?: readonly string[] | undefined;
}

/** The kernels whose module directories exist under ROOT, in name order. */
export function installedKernels(root: string): string[] {
  const found = new Set<string>();
  for (const base of [join(root, 'lib', 'modules'), join(root, 'usr', 'lib', 'modules')]) {
    let names: string[];
    try {
      names = readdirSync(base);
    } catch {
      continue;
    }
    for (const n of names) {
      try {
        if (statSync(join(base, n)).isDirectory()) found.add(n);
      } catch {
        /* vanished or dangling link: not a kernel */
      }
    }
  }
  return [...found].sort();
}

export async function readCandidates(files: readonly string[]): Promise<Candidate[]> {
  const out: Candidate[] = [];
  for (const f of files) {
    const file = resolve(f);
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new InputError(file, `cannot read module: ${e.code ?? e.message}`, e.code, { cause: err });
    }
    const record = await parseModuleFile(bytes, file);
    const why = unloadable(record);
    if (why !== undefined) throw new FormatError(file, why);
    out.push({ file, record });
  }
  return out;
}

/**
 * The records of a kernel's installed modules (the winners of depmod's search): from the module
 * cache when it is there and sound, otherwise by parsing the tree (nothing saved: check writes nothing).
 */
async function installedRecords(
  tree: ModuleTree,
  opts: CheckOptions,
): Promise<{ records: InstalledModule[]; source: 'cache' | 'parsed'; note: string | undefined }> {
  const file = cacheFile(opts.root, tree.kver);
  const loaded = loadCache(file, { kver: tree.kver, moddir: tree.moddir });
  // merge() stores exactly the search winners, so the live modules are the installed modules.
  if (loaded.ok) return { records: installedOf(loaded.value.contents.set), source: 'cache', note: undefined };
  const note = loaded.reason;
  const inputs = readKernelInputs(tree, configDirs(opts.root, opts.config, DEFAULT_BEHAVIOUR));
  const plan = planRebuild({
    kver: tree.kver,
    dirname: tree.moddir,
    configFiles: inputs.configFiles,
    suffixes: MODULE_SUFFIXES,
    io: {
      listDir: listDirIfPossible,
      statType: statTypeFollowingLinks,
    },
  });
  const records = await parseModules(plan.modules.map((m) => ({ abs: m.abspath, display: m.relpath ?? m.abspath })));
  return { records, source: 'parsed', note };
}

/** The installed modules' names and exports, from a kernel's module set. */
function installedOf(set: ModuleSet): InstalledModule[] {
  return set.liveSlots().map((s) => {
    const exports = [];
    for (let e = set.expStart[s]!; e < set.expStart[s]! + set.expCount[s]!; e++) exports.push({ name: set.pool.name(set.expSym[e]!), crc: set.expCrc[e]! });
    return { name: set.name(s), exports };
  });
}

/**
 * The check proper (pure): candidates against one kernel's symbols and installed modules.
 * The same rule as update (importVerdict); without kernel symbols the candidate also gets a
 * no-symvers problem, since only CRCs between modules could be compared.
 */
export function checkAgainst(candidates: readonly Candidate[], installed: readonly InstalledModule[], kernel: KernelSymbols | undefined): CheckProblem[] {
  const replaced = new Set(candidates.map((c) => c.record.name));
  const table = new Map<string, { crc: number; provider: string; kernel: boolean }>();
  if (kernel) for (const [name, crc] of kernel.symbols) table.set(name, { crc, provider: 'vmlinux', kernel: true });
  for (const r of installed) {
    if (replaced.has(r.name)) continue;
    for (const e of r.exports) table.set(e.name, { crc: e.crc, provider: r.name, kernel: false });
  }
  for (const c of candidates) for (const e of c.record.exports) table.set(e.name, { crc: e.crc, provider: c.record.name, kernel: false });

  const basis: KabiBasis = kernel?.source ?? 'modules';
  const problems: CheckProblem[] = [];
  for (const c of candidates) {
    if (kernel === undefined) {
      problems.push({
        kind: 'no-symvers',
        file: c.file,
        module: c.record.name,
        symbol: null,
        expectedCrc: null,
        foundCrc: null,
        provider: null,
        message: `${c.file}: kernel symbol versions unknown (no Module.symvers found; give --symvers)`,
      });
    }
    for (const imp of c.record.imports) {
      const sym = table.get(symbolLookupName(imp.name, ''));
      const verdict = importVerdict(basis, imp, sym?.crc, sym?.kernel === true);
      if (verdict === 'unknown') {
        problems.push({
          kind: 'unknown', file: c.file, module: c.record.name, symbol: imp.name, expectedCrc: imp.crc, foundCrc: null, provider: null,
          message: `${c.file} needs unknown symbol ${imp.name}`,
        });
      } else if (verdict === 'crc-mismatch') {
        problems.push({
          kind: 'crc-mismatch', file: c.file, module: c.record.name, symbol: imp.name, expectedCrc: imp.crc, foundCrc: sym!.crc, provider: sym!.provider,
          message: `${c.file} disagrees about version of symbol ${imp.name}`,
        });
      }
    }
  }
  return problems;
}

/** Kernel symbols are read once per distinct file (one --symvers for many kernels is common). */
async function symbolsFor(tree: ModuleTree, opts: CheckOptions, memo: Map<string, Promise<KernelSymbols>>): Promise<{ file: string | undefined; symbols: KernelSymbols | undefined }> {
  const file = opts.symvers ?? discoverSymvers(tree);
  if (file === undefined) return { file, symbols: undefined };
  let p = memo.get(file);
  if (p === undefined) {
    p = loadKernelSymbols(file, 'symvers');
    memo.set(file, p);
  }
  return { file, symbols: await p };
}

export async function checkModules(opts: CheckOptions, candidates?: readonly Candidate[]): Promise<KernelVerdict[]> {
  const cands = candidates ?? (await readCandidates(opts.files));
  const kvers = opts.kernels === 'all' ? installedKernels(opts.root) : opts.kernels;
  const memo = new Map<string, Promise<KernelSymbols>>();
  const verdicts: KernelVerdict[] = [];
  for (const kver of kvers) {
    const t0 = performance.now();
    const tree = locateModuleTree(opts.root, kver);
    const [installed, sym] = await Promise.all([installedRecords(tree, opts), symbolsFor(tree, opts, memo)]);
    const problems = checkAgainst(cands, installed.records, sym.symbols);
    verdicts.push({
      kver,
      ok: problems.length === 0,
      problems,
      records: installed.source,
      cacheNote: installed.note,
      installedModules: installed.records.length,
      symvers: sym.file,
      ms: performance.now() - t0,
    });
  }
  return verdicts;
}
