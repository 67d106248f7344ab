// One merge of one kernel's module database: the single pipeline behind `rebuild` (cache ignored)
// and `update` (cache used). DESIGN.md's one idea: the tree is the truth, the touched paths are a
// hint, parsed records are cached, and the database is always recomputed from all records with
// the same code, so an incremental result equals a full rebuild by construction.
//
//   load cache → list the tree (cached listing for directories whose mtime is unchanged) → search
//   → reuse or parse records → build + render → write changed files atomically → save cache.
import { statSync } from 'node:fs';
import { dirname as pathDirname } from 'node:path';
import type { CacheContents, CacheEntry, CachedDir, CachedKabi, FileFingerprint, VerifiedHeader } from '../cache/format.ts';
import { cacheFile, decodeLoadedCache, fingerprintOf, loadCacheHeader, sameFingerprint, saveCache } from '../cache/store.ts';
import type { KabiBasis, KabiFinding } from '../depmod/build.ts';
import type { KernelSymbols } from '../depmod/kernel-symbols.ts';
import { computeDatabase, planRebuild, renderDatabase } from '../depmod/rebuild.ts';
import type { ListEntry } from '../depmod/search.ts';
import { DepmodTxError, IoError } from '../errors.ts';
import { writeFilesAtomically, crashPoint } from '../io/atomic.ts';
import { parseModules } from '../io/parse-pool.ts';
import { listDirInReaddirOrder, locateModuleTree, type ModuleTree, statTypeFollowingLinks } from '../io/tree.ts';
import { MODULE_SUFFIXES } from '../module/decompress.ts';
import type { ModuleRecord } from '../module/record.ts';
import { configDirs, kabiInput, loadKernelSymbols, readKernelInputs } from './inputs.ts';

export interface MergeOptions {
  root: string;
  kver: string;
  /** Write the modules.* files here instead of the module directory (and touch nothing under root). */
  outdir?: string | undefined;
  /** depmod.d directories (default: the four kmod directories inside root). */
  config?: readonly string[] | undefined;
  /** Files the transaction says it touched (absolute, or relative to the module directory). */
  hints?: readonly string[];
  /** Ignore the cache entirely (rebuild). */
  full?: boolean;
  /** Re-stat every module file instead of trusting unchanged directories. */
  fullScan?: boolean;
  /** Kernel symbol versions for the KABI check: a file, 'auto' (discover), or undefined (no kernel symbols). */
  symvers?: string | 'auto' | undefined;
  systemMap?: string | undefined;
  workers?: number | undefined;
  onProgress?: (done: number, total: number) => void;
}

export interface MergeResult {
  tree: ModuleTree;
  /** Output files whose content changed (written) and those left untouched. */
  written: string[];
  unchanged: string[];
  /** Why the cache was not used (undefined when it was). */
  fullReason: string | undefined;
  parsed: number;
  reused: number;
  removed: number;
  modules: number;
  /** Every KABI finding of the database as it is now, also when this merge changed nothing. */
  kabi: KabiFinding[];
  symversFile: string | undefined;
  /** What the KABI findings were checked against ('modules': a check was asked for, no symvers found). */
  kabiAgainst: KabiBasis;
  warnings: string[];
  /** Dependency cycles: depmod writes nothing then, and neither do we. */
  cycles: string[] | undefined;
  noop: boolean;
  ms: number;
}

export class CycleError extends DepmodTxError {
  readonly cycles: string[];
  constructor(moddir: string, cycles: string[], messages: string[]) {
    super('format', `dependency cycles, nothing written:\n  ${messages.join('\n  ')}`, moddir);
    this.cycles = cycles;
  }
}

function keyOf(tree: ModuleTree, abspath: string): string {
  return abspath.startsWith(tree.moddir + '/') ? abspath.slice(tree.moddir.length + 1) : abspath;
}

/**
 * A touched path as the package manager names it (/lib/modules/KVER/x.ko, /usr/lib/modules/KVER/x.ko,
 * with or without the root prefix, or relative to the module directory) → the cache key.
 */
export function hintKey(tree: ModuleTree, p: string): string {
  if (!p.startsWith('/')) return p;
  for (const base of [tree.moddir, `/lib/modules/${tree.kver}`, `/usr/lib/modules/${tree.kver}`]) {
    if (p.startsWith(`${base}/`)) return p.slice(base.length + 1);
  }
  const rootedUsr = `${tree.root.replace(/\/+$/, '')}/usr/lib/modules/${tree.kver}/`;
  if (p.startsWith(rootedUsr)) return p.slice(rootedUsr.length);
  return p;
}

function mtimeNs(path: string): string | undefined {
  try {
    return String(statSync(path, { bigint: true }).mtimeNs);
  } catch {
    return undefined;
  }
}

/**
 * DEPMOD_TX_TRACE=1 prints how long each phase of a merge took (stderr): the first place to look
 * when a transaction's depmod step is slower than expected.
 */
function phaseTracer(kver: string): (phase: string) => void {
  // Only "1" turns it on: DEPMOD_TX_TRACE=0 (or empty) in an inherited environment stays quiet.
  if (process.env.DEPMOD_TX_TRACE !== '1') return () => {};
  let last = performance.now();
  return (phase) => {
    const now = performance.now();
    process.stderr.write(`depmod-tx trace: ${kver}: ${phase} ${(now - last).toFixed(1)} ms\n`);
    last = now;
  };
}

/** A module file listed by this merge was gone when it was read: the tree changed under us. */
class VanishedModuleError extends IoError {}

/** How many times a merge starts over after a module vanished under it (see merge). */
const VANISHED_RETRIES = 2;

/**
 * One merge of one kernel. A module file that disappears between the listing and its read (an
 * admin's `update` while dpkg removes a package) starts the merge over from a fresh listing, before
 * anything was written; if the tree keeps changing, the merge fails with an I/O error naming the
 * file, the database untouched and the journal's events kept for the next commit.
 */
export async function merge(opts: MergeOptions): Promise<MergeResult> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await mergeOnce(opts);
    } catch (err) {
      if (!(err instanceof VanishedModuleError) || attempt >= VANISHED_RETRIES) throw err;
    }
  }
}

function vanished(file: string, err: unknown): VanishedModuleError {
  return new VanishedModuleError(file, 'module file vanished while merging (is another program changing the module tree?)', 'ENOENT', { cause: err });
}

async function mergeOnce(opts: MergeOptions): Promise<MergeResult> {
  const t0 = performance.now();
  const trace = phaseTracer(opts.kver);
  const tree = locateModuleTree(opts.root, opts.kver);
  const inputs = readKernelInputs(tree, configDirs(opts.root, opts.config));
  const cachePath = cacheFile(opts.root, opts.kver);
  const useCache = !opts.full && opts.outdir === undefined;

  // 1. The cache, if it can be trusted for this tree and these inputs.
  let fullReason: string | undefined = opts.full ? 'full rebuild requested' : opts.outdir !== undefined ? '--outdir given' : undefined;
  let cacheBytes: Uint8Array | undefined;
  let cacheVerified: VerifiedHeader | undefined;
  let cachedDirs: Record<string, CachedDir> = {};
  let cachedOutputs: Record<string, string> = {};
  let cachedKabi: CachedKabi | undefined;
  if (useCache) {
    const h = loadCacheHeader(cachePath, { kver: opts.kver, moddir: tree.moddir });
    if (!h.ok) fullReason = h.reason;
    else if (h.value.inputsDigest !== inputs.digest) fullReason = 'depmod.d, modules.order or modules.builtin changed';
    else {
      cacheBytes = h.bytes;
      cacheVerified = h.verified;
      cachedDirs = h.value.dirs;
      cachedOutputs = h.value.outputs;
      cachedKabi = h.value.kabi;
    }
  }

  trace('inputs + cache header');

  // 2. List the tree: a directory whose mtime is unchanged has the same entries in the same order.
  // A directory changed twice within one timestamp tick keeps its mtime; the directories of touched
  // paths (and their parents, for new subdirectories) are therefore listed again whatever it says.
  const hintKeys = new Set((opts.hints ?? []).map((p) => hintKey(tree, p)));
  const hintDirs = new Set<string>();
  for (const k of hintKeys) {
    if (k.startsWith('/')) continue;
    for (let i = k.lastIndexOf('/'); i > 0; i = k.lastIndexOf('/', i - 1)) hintDirs.add(k.slice(0, i));
    hintDirs.add('');
  }
  const dirs: Record<string, CachedDir> = {};
  const changedDirs = new Set<string>();
  const listDir = (absDir: string): ListEntry[] | undefined => {
    const key = absDir === tree.moddir ? '' : keyOf(tree, absDir);
    const m = mtimeNs(absDir);
    if (m === undefined) return undefined;
    const cached = cachedDirs[key];
    if (cached && cached.mtimeNs === m && !opts.fullScan && !hintDirs.has(key)) {
      dirs[key] = cached;
      return cached.entries;
    }
    let entries: ListEntry[];
    try {
      entries = listDirInReaddirOrder(absDir);
    } catch {
      return undefined;
    }
    changedDirs.add(key);
    dirs[key] = { mtimeNs: m, entries };
    return entries;
  };

  // No-op fast path: same inputs, no directory changed, no hinted file, outputs as we left them.
  const plan = planRebuild({
    kver: opts.kver,
    dirname: tree.moddir,
    configFiles: inputs.configFiles,
    suffixes: MODULE_SUFFIXES,
    io: {
      listDir,
      statType: statTypeFollowingLinks,
    },
  });
  trace('config + tree listing');
  const warnings = [
    ...[...inputs.configWarnings, ...plan.configWarnings].map((w) => `${w.file}${w.line !== undefined ? `:${w.line}` : ''}: ${w.message}`),
    ...plan.searchWarnings,
  ];
  const outDir = opts.outdir ?? tree.moddir;
  const kabiIn = kabiInput(tree, opts.symvers, opts.systemMap);
  if (
    cacheBytes !== undefined &&
    changedDirs.size === 0 &&
    hintKeys.size === 0 &&
    cachedKabi?.key === kabiIn.key &&
    outputsAsLeft(outDir, cachedOutputs)
  ) {
    return {
      tree, written: [], unchanged: Object.keys(cachedOutputs), fullReason: undefined, parsed: 0, reused: plan.modules.length, removed: 0,
      modules: plan.modules.length, kabi: cachedKabi.findings, symversFile: kabiIn.file, kabiAgainst: kabiIn.against, warnings, cycles: undefined, noop: true,
      ms: performance.now() - t0,
    };
  }

  // 3. Records: reuse what the cache vouches for, parse the rest.
  const cached = new Map<string, CacheEntry>();
  if (cacheBytes !== undefined && cacheVerified !== undefined) {
    const body = decodeLoadedCache(cacheBytes, cachePath, cacheVerified);
    if (body.ok) for (const e of body.value.entries) cached.set(e.path, e);
    else fullReason = body.reason;
  }
  trace('cache decode');
  const records = new Map<string, ModuleRecord>();
  const entries: CacheEntry[] = [];
  const toParse: Array<{ abs: string; key: string; fp: FileFingerprint }> = [];
  for (const m of plan.modules) {
    const key = keyOf(tree, m.abspath);
    const old = cached.get(key);
    const trusted = old !== undefined && !opts.fullScan && !hintKeys.has(key) && !changedDirs.has(dirKey(tree, m.abspath));
    if (trusted) {
      records.set(m.abspath, old.record);
      entries.push(old);
      continue;
    }
    let fp: FileFingerprint;
    try {
      fp = fingerprintOf(m.abspath); // before reading: a change after this is caught next time
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw vanished(key, err);
      throw err;
    }
    if (old !== undefined && sameFingerprint(old.fp, fp)) {
      records.set(m.abspath, old.record);
      entries.push(old);
      continue;
    }
    toParse.push({ abs: m.abspath, key, fp });
  }
  trace(`fingerprints (${toParse.length} to parse)`);
  let parsedRecords: ModuleRecord[];
  try {
    parsedRecords = await parseModules(
      toParse.map((f) => ({ abs: f.abs, display: f.key })),
      { ...(opts.workers !== undefined ? { workers: opts.workers } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) },
    );
  } catch (err) {
    if (err instanceof IoError && err.errno === 'ENOENT' && err.file !== undefined) throw vanished(err.file, err);
    throw err;
  }
  toParse.forEach((f, i) => {
    const record = parsedRecords[i]!;
    records.set(f.abs, record);
    entries.push({ path: f.key, fp: f.fp, record });
  });
  trace('parse');
  const liveKeys = new Set(entries.map((e) => e.path));
  const removedRecords = [...cached.values()].filter((e) => !liveKeys.has(e.path)).map((e) => e.record);

  // 4. The whole database, recomputed from every record.
  const symversFile = kabiIn.file;
  const kabiAgainst: KabiBasis = kabiIn.against;
  const kernelSymbols: KernelSymbols | undefined =
    symversFile !== undefined && (kabiAgainst === 'symvers' || kabiAgainst === 'system-map') ? await loadKernelSymbols(symversFile, kabiAgainst) : undefined;
  trace('kernel symbols');
  const db = computeDatabase({
    dirname: tree.moddir,
    modules: plan.modules,
    records,
    order: inputs.order,
    kernelSymbols,
    moduleCrcCheck: kabiAgainst === 'modules',
  });
  trace('build');
  const out = { db, ...renderDatabase({ db, builtin: inputs.builtin, builtinModinfo: inputs.builtinModinfo }) };
  trace('render');
  warnings.push(...out.db.warnings, ...out.warnings);
  const kabi = out.db.kabi;

  const newCache: CacheContents = {
    header: { kver: opts.kver, moddir: tree.moddir, inputsDigest: inputs.digest, dirs, outputs: {}, kabi: { key: kabiIn.key, findings: kabi } },
    entries,
  };
  if (out.db.cycles !== null) {
    // depmod writes nothing when it finds cycles; the records are still good, keep them.
    if (useCache || opts.full) saveCacheIfAllowed(opts, cachePath, newCache);
    throw new CycleError(tree.moddir, out.db.cycles.cycles, out.db.cycles.messages);
  }

  // 5. Write what changed, then remember what we left behind.
  const w = writeFilesAtomically(outDir, out.files);
  crashPoint('after-outputs');
  trace(`write (${w.written.length} changed)`);
  if (outDir === tree.moddir && w.written.length > 0) refreshModdirListing(tree, dirs);
  newCache.header.outputs = outputFingerprints(outDir, [...out.files.keys()]);
  if (opts.outdir === undefined) saveCacheIfAllowed(opts, cachePath, newCache);
  trace('cache save');
  return {
    tree, written: w.written, unchanged: w.unchanged, fullReason, parsed: toParse.length, reused: entries.length - toParse.length,
    removed: removedRecords.length, modules: plan.modules.length, kabi, symversFile, kabiAgainst, warnings, cycles: undefined, noop: false,
    ms: performance.now() - t0,
  };
}

function saveCacheIfAllowed(opts: MergeOptions, path: string, c: CacheContents): void {
  if (opts.outdir !== undefined) return;
  saveCache(path, c);
}

/**
 * Writing modules.* into the module directory changes its mtime, so the listing taken before the
 * write would make the next run relist it and miss the no-op path once. Keep the new mtime only
 * when nothing but our own output files changed there (listed twice around an unchanged mtime).
 */
function refreshModdirListing(tree: ModuleTree, dirs: Record<string, CachedDir>): void {
  const used = dirs[''];
  if (used === undefined) return;
  const m = mtimeNs(tree.moddir);
  let entries: ListEntry[];
  try {
    entries = listDirInReaddirOrder(tree.moddir);
  } catch {
    return;
  }
  if (m === undefined || mtimeNs(tree.moddir) !== m) return;
  const ours = (e: ListEntry): boolean => e.name.startsWith('modules.') && !MODULE_SUFFIXES.some((s) => e.name.endsWith(s));
  const rest = (es: ListEntry[]): string => es.filter((e) => !ours(e)).map((e) => `${e.type}:${e.name}`).join('\n');
  if (rest(entries) === rest(used.entries)) dirs[''] = { mtimeNs: m, entries };
}

function dirKey(tree: ModuleTree, abspath: string): string {
  const d = pathDirname(abspath);
  return d === tree.moddir ? '' : keyOf(tree, d);
}

function outputFingerprints(dir: string, names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    try {
      const st = statSync(`${dir}/${n}`, { bigint: true });
      out[n] = `${st.size}:${st.mtimeNs}:${st.ino}`;
    } catch {
      /* missing: the next run will not take the no-op path */
    }
  }
  return out;
}

function outputsAsLeft(dir: string, expected: Record<string, string>): boolean {
  const names = Object.keys(expected);
  if (names.length === 0) return false;
  const now = outputFingerprints(dir, names);
  return names.every((n) => now[n] === expected[n]);
}
