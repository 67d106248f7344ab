// One merge of one kernel's module database: the single pipeline behind `rebuild` (cache ignored)
// and `update` (cache used). DESIGN.md's one idea, revised: the tree is the truth, the touched paths
// are a hint; the module cache keeps the kernel's ModuleSet (every fact depmod takes from every
// module, as typed-array columns); a merge adds and drops the modules that changed and derives the
// whole database from the set with the same code a full rebuild uses (src/depmod/compute.ts,
// emit.ts), which over interned ids costs milliseconds. So an incremental result equals a full
// rebuild by construction, and `verify` checks it by parsing everything again.
//
//   observe: open the cache header, stat directories → no-op? → body, listing, search
//   decide:  which modules to keep, parse, drop (fingerprints)
//   apply:   parse, update the set, compute + emit, write changed files atomically, save the cache
import { statSync } from 'node:fs';
import { dirname as pathDirname } from 'node:path';
import type { CacheHeader, DirEntry, KabiSummary } from '../cache/format.ts';
import { cacheFile, fingerprintOf, openCache, sameFingerprint, saveCache, type OpenedCache } from '../cache/store.ts';
import { computeDatabase, type ComputedDatabase, type KabiBasis, type KabiFinding } from '../depmod/compute.ts';
import { depmodError, depmodInfo, hasLevel, type DepmodMessage } from '../depmod/diagnostic.ts';
import { emitDatabase } from '../depmod/emit.ts';
import type { KmodBehaviour } from '../depmod/kmod-version.ts';
import { ModuleSet, orderPositions, sortIdxOf, type Fingerprint } from '../depmod/module-set.ts';
import { DEFAULT_BEHAVIOUR, planRebuild } from '../depmod/rebuild.ts';
import type { ListEntry } from '../depmod/search.ts';
import { DepmodTxError, IoError } from '../errors.ts';
import { writeFilesAtomically, crashPoint } from '../io/atomic.ts';
import { parseModules } from '../io/parse-pool.ts';
import { listDirInReaddirOrder, locateModuleTree, type ModuleTree, statTypeFollowingLinks } from '../io/tree.ts';
import { MODULE_SUFFIXES } from '../module/decompress.ts';
import type { ModuleRecord } from '../module/record.ts';
import { configDirs, kabiInput, loadKernelSymbols, readKernelInputs, type KabiInput, type KernelInputs } from './inputs.ts';

export interface MergeOptions {
  root: string;
  kver: string;
  /** Write the modules.* files here instead of the module directory (and touch nothing under root). */
  outdir?: string | undefined;
  /** depmod.d directories (default: the kmod's own directories inside root). */
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
  /** The kmod whose output to write (default kmod 30). */
  kmod?: KmodBehaviour | undefined;
  /** After the merge, parse every module again and require identical output (exit 70 otherwise). */
  verify?: boolean;
  /** Compute the database (with the cache, which is not saved) and return its files instead of writing them (depmod -n). */
  dryRun?: boolean;
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
  /** Every KABI finding of the database as it is now, also when this merge changed nothing (depmod -e reports them all). */
  kabi: KabiFinding[];
  symversFile: string | undefined;
  /** What the KABI findings were checked against ('modules': a check was asked for, no symvers found). */
  kabiAgainst: KabiBasis;
  /** The kmod version whose format was written. */
  kmodVersion: string;
  /** What depmod prints on stderr for this tree, in its order and with its levels. */
  warnings: DepmodMessage[];
  /** Index in `warnings` at which depmod prints the KABI findings (after reading the modules, before writing files). */
  kabiAt: number;
  /** dryRun: the database's files (undefined when nothing changed: the files in the module directory are it). */
  files?: ReadonlyMap<string, Uint8Array>;
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

/** `verify`: the incremental result differs from a full parse. A bug, hence exit 70. */
export class VerifyError extends Error {
  constructor(moddir: string, files: string[]) {
    super(`${moddir}: incremental merge differs from a full rebuild in ${files.join(', ')} (please report this bug)`);
    this.name = 'VerifyError';
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

function identityOf(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.size}:${st.mtimeNs}:${st.ino}`;
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

/** Saved sets are rewritten without dropped modules once these take this share of the columns. */
const COMPACT_AT = 0.25;

/** Outputs made from the builtin inputs alone (emit.ts), reused while those inputs are unchanged. */
const INPUT_ONLY_OUTPUTS = ['modules.builtin.bin', 'modules.builtin.alias.bin'] as const;

/** Findings kept in the cache header (read by the no-op path); more go to the body only. */
const HEADER_FINDINGS = 256;

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
  const behaviour = opts.kmod ?? DEFAULT_BEHAVIOUR;
  const tree = locateModuleTree(opts.root, opts.kver);
  const inputs = readKernelInputs(tree, configDirs(opts.root, opts.config, behaviour));
  const cachePath = cacheFile(opts.root, opts.kver);
  const useCache = !opts.full && opts.outdir === undefined;
  const outDir = opts.outdir ?? tree.moddir;
  const kabiIn = kabiInput(tree, opts.symvers, opts.systemMap);

  // 1. The cache header, if it can be trusted for this tree.
  let fullReason: string | undefined = opts.full ? 'full rebuild requested' : opts.outdir !== undefined ? '--outdir given' : undefined;
  let opened: OpenedCache | undefined;
  if (useCache) {
    const o = openCache(cachePath, { kver: opts.kver, moddir: tree.moddir });
    if (o.ok) opened = o.value;
    else fullReason = o.reason;
  }
  // A cache written before messages carried their levels cannot repeat them as depmod prints them.
  const header = opened !== undefined && opened.header.warnings.every(hasLevel) && opened.header.builtinWarnings.every(hasLevel) ? opened.header : undefined;
  if (opened !== undefined && header === undefined) fullReason = 'cache from an older depmod-tx';
  trace('inputs + cache header');

  // 2. Which directories changed since the cache was written. A directory changed twice within one
  // timestamp tick keeps its mtime; the directories of touched paths (and their parents, for new
  // subdirectories) are therefore listed again whatever it says.
  const hintKeys = new Set((opts.hints ?? []).map((p) => hintKey(tree, p)));
  const hintDirs = new Set<string>();
  for (const k of hintKeys) {
    if (k.startsWith('/')) continue;
    for (let i = k.lastIndexOf('/'); i > 0; i = k.lastIndexOf('/', i - 1)) hintDirs.add(k.slice(0, i));
    hintDirs.add('');
  }
  const absDir = (key: string): string => (key === '' ? tree.moddir : key.startsWith('/') ? key : `${tree.moddir}/${key}`);
  const staleDirs = new Set<string>();
  if (header !== undefined) for (const [key, m] of Object.entries(header.dirs)) if (mtimeNs(absDir(key)) !== m) staleDirs.add(key);
  trace(`directory stats (${staleDirs.size} changed)`);

  // No-op: same inputs and format, no directory changed, no hinted file, same kernel symbols,
  // outputs as we left them. The database's KABI findings are those the cache recorded.
  if (
    header !== undefined &&
    header.inputsDigest === inputs.digest &&
    header.kmodVersion === behaviour.version &&
    staleDirs.size === 0 &&
    hintKeys.size === 0 &&
    !opts.fullScan &&
    !opts.verify &&
    header.kabiKey === kabiIn.key &&
    outputsAsLeft(outDir, header.outputs)
  ) {
    const stored = storedFindings(header, opened!);
    if (stored !== undefined) {
      return {
        tree, written: [], unchanged: Object.keys(header.outputs), fullReason: undefined, parsed: 0, reused: 0, removed: 0,
        modules: header.modules, kabi: stored, symversFile: kabiIn.file,
        kabiAgainst: kabiIn.against, kmodVersion: behaviour.version, warnings: header.warnings as DepmodMessage[],
        kabiAt: header.warningsBeforeKabi ?? header.warnings.length, cycles: undefined, noop: true,
        ms: performance.now() - t0,
      };
    }
  }

  // 3. The module set and directory listings the cache holds.
  let set = new ModuleSet();
  let cachedEntries: Record<string, DirEntry[]> = {};
  if (opened !== undefined) {
    const body = opened.body();
    if (body.ok) {
      set = body.value.set;
      cachedEntries = body.value.dirEntries;
    } else fullReason = body.reason;
  }
  const reuse = fullReason === undefined && header !== undefined;
  trace('cache body');

  // 4. List the tree: a directory whose mtime is unchanged has the same entries in the same order.
  const dirs: Record<string, string> = {};
  const dirEntries: Record<string, DirEntry[]> = {};
  const relisted = new Set<string>();
  const listDir = (abs: string): ListEntry[] | undefined => {
    const key = abs === tree.moddir ? '' : keyOf(tree, abs);
    const m = mtimeNs(abs);
    if (m === undefined) return undefined;
    const cached = cachedEntries[key];
    if (reuse && cached !== undefined && header.dirs[key] === m && !opts.fullScan && !hintDirs.has(key)) {
      dirs[key] = m;
      dirEntries[key] = cached;
      return cached;
    }
    let entries: ListEntry[];
    try {
      entries = listDirInReaddirOrder(abs);
    } catch {
      return undefined;
    }
    relisted.add(key);
    dirs[key] = m;
    dirEntries[key] = entries;
    return entries;
  };
  const plan = planRebuild({
    kver: opts.kver,
    dirname: tree.moddir,
    configFiles: inputs.configFiles,
    suffixes: MODULE_SUFFIXES,
    behaviour,
    io: { listDir, statType: statTypeFollowingLinks },
  });
  trace(`config + tree listing (${relisted.size} listed)`);
  const warnings: DepmodMessage[] = [
    ...[...inputs.configWarnings, ...plan.configWarnings].map((w) => (w.level === 'error' ? depmodError(w.message) : depmodInfo(w.message))),
    ...plan.searchWarnings,
  ];

  // 5. Decide: keep what the cache vouches for, parse the rest, drop what is gone.
  const slotByPath = new Map<string, number>();
  if (reuse) for (const s of set.liveSlots()) slotByPath.set(set.path(s), s);
  const kept = new Uint8Array(set.slots);
  const toParse: Array<{ abs: string; key: string; fp: Fingerprint; old: number | undefined }> = [];
  for (const m of plan.modules) {
    const key = keyOf(tree, m.abspath);
    const slot = slotByPath.get(key);
    const trusted = slot !== undefined && !opts.fullScan && !hintKeys.has(key) && !relisted.has(dirKey(tree, m.abspath));
    if (trusted) {
      kept[slot] = 1;
      continue;
    }
    let fp: Fingerprint;
    try {
      fp = fingerprintOf(m.abspath); // before reading: a change after this is caught next time
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw vanished(key, err);
      throw err;
    }
    if (slot !== undefined && sameFingerprint(set.fingerprint(slot), fp)) {
      kept[slot] = 1;
      continue;
    }
    toParse.push({ abs: m.abspath, key, fp, old: slot });
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
  trace('parse');

  // 6. Apply to the set: drop what is gone or replaced, add what was parsed.
  const removedSlots: number[] = [];
  if (!reuse) set = new ModuleSet();
  else for (const s of set.liveSlots()) if (kept[s] !== 1) removedSlots.push(s);
  for (const s of removedSlots) set.drop(s);
  const order = orderPositions(inputs.order, behaviour.orderFirstLineWins, tree.moddir);
  const sameInputs = reuse && header.inputsDigest === inputs.digest;
  // Positions depend on modules.order and on the kmod (which of a module's lines counts).
  if (reuse && (!sameInputs || header.kmodVersion !== behaviour.version)) for (const s of set.liveSlots()) set.sortIdx[s] = sortIdxOf(order, set.path(s));
  toParse.forEach((f, i) => set.add(f.key, f.fp, parsedRecords[i]!, sortIdxOf(order, f.key)));
  const replaced = toParse.filter((f) => f.old !== undefined).length;

  // 7. Kernel symbols: kept from the cache while their file is unchanged.
  const kabiAgainst: KabiBasis = kabiIn.against;
  if (!reuse || header.kabiKey !== kabiIn.key) await loadKernelSymbolsInto(set, kabiIn);
  trace('kernel symbols');
  const db = computeDatabase(set, { kabi: kabiAgainst, dirname: tree.moddir, unsizedZstdUnreadable: behaviour.zstdNeedsSizedFrame });
  trace('compute');
  // The builtin indexes depend on the builtin inputs and the kmod version only: when neither
  // changed and the files are as we left them, they are neither rendered nor compared again.
  const keep = new Set<string>();
  if (
    sameInputs &&
    header.kmodVersion === behaviour.version &&
    INPUT_ONLY_OUTPUTS.every((f) => header.outputs[f] !== undefined && identityOf(`${outDir}/${f}`) === header.outputs[f])
  ) {
    for (const f of INPUT_ONLY_OUTPUTS) keep.add(f);
  }
  const out = emitDatabase({ set, db, behaviour, dirname: tree.moddir, builtin: inputs.builtin, builtinModinfo: inputs.builtinModinfo, keep, keptWarnings: header?.builtinWarnings as DepmodMessage[] | undefined });
  trace('emit');
  warnings.push(...order.warnings, ...db.warnings);
  const kabiAt = warnings.length;
  warnings.push(...out.warnings);
  const kabi = db.kabi;

  const newHeader: CacheHeader = {
    kver: opts.kver,
    moddir: tree.moddir,
    inputsDigest: inputs.digest,
    kmodVersion: behaviour.version,
    dirs,
    outputs: {},
    kabiKey: kabiIn.key,
    kabi: summaryOf(kabiAgainst, db.kabi),
    modules: db.order.length,
    warnings,
    builtinWarnings: out.builtinWarnings,
    warningsBeforeKabi: kabiAt,
    ...(db.kabi.length <= HEADER_FINDINGS ? { kabiFindings: db.kabi } : {}),
  };
  const save = (): void => {
    if (opts.outdir !== undefined || opts.dryRun) return;
    const saved = set.garbageRatio() > COMPACT_AT ? set.compact() : set;
    saveCache(cachePath, { header: newHeader, set: saved, dirEntries, kabi: db.kabi });
  };
  if (db.cycles !== null) {
    // depmod writes nothing when it finds cycles; the module facts are still good, keep them.
    newHeader.outputs = header?.outputs ?? {};
    save();
    throw new CycleError(tree.moddir, db.cycles.cycles, db.cycles.messages);
  }
  if (opts.verify) await verifyAgainstFullParse(tree, plan.modules, out.files, { inputs, behaviour, kabiIn, workers: opts.workers });
  if (opts.dryRun) {
    return {
      tree, written: [], unchanged: [], fullReason, parsed: toParse.length, reused: plan.modules.length - toParse.length, removed: removedSlots.length - replaced,
      modules: db.order.length, kabi, symversFile: kabiIn.file, kabiAgainst, kmodVersion: behaviour.version, warnings, kabiAt, files: out.files,
      cycles: undefined, noop: false, ms: performance.now() - t0,
    };
  }

  // 8. Write what changed, then remember what we left behind.
  const w = writeFilesAtomically(outDir, out.files);
  w.unchanged.push(...keep);
  crashPoint('after-outputs');
  trace(`write (${w.written.length} changed)`);
  if (outDir === tree.moddir && w.written.length > 0) refreshModdirListing(tree, dirs, dirEntries);
  newHeader.outputs = outputFingerprints(outDir, [...out.files.keys(), ...keep]);
  save();
  trace('cache save');
  return {
    tree, written: w.written, unchanged: w.unchanged, fullReason, parsed: toParse.length, reused: plan.modules.length - toParse.length,
    removed: removedSlots.length - replaced, modules: db.order.length, kabi, symversFile: kabiIn.file, kabiAgainst,
    kmodVersion: behaviour.version, warnings, kabiAt, cycles: undefined, noop: false, ms: performance.now() - t0,
  };
}

function summaryOf(against: KabiBasis, findings: readonly KabiFinding[]): KabiSummary {
  let unknown = 0;
  for (const f of findings) if (f.kind === 'unknown') unknown++;
  return { against, unknown, mismatched: findings.length - unknown };
}

/** The set's kernel symbols from what the KABI check compares with (none for 'modules' and 'none'). */
async function loadKernelSymbolsInto(set: ModuleSet, kabiIn: KabiInput): Promise<void> {
  if (kabiIn.file !== undefined && (kabiIn.against === 'symvers' || kabiIn.against === 'system-map')) {
    const ks = await loadKernelSymbols(kabiIn.file, kabiIn.against);
    set.setKernelSymbols(ks.source, ks.symbols);
  } else set.setKernelSymbols(undefined, new Map());
}

/** The database's findings as the cache recorded them; undefined when the body cannot be read. */
function storedFindings(header: CacheHeader, opened: OpenedCache): KabiFinding[] | undefined {
  if (header.kabiFindings !== undefined) return header.kabiFindings;
  const body = opened.body();
  return body.ok ? body.value.kabi : undefined;
}

/**
 * `update --verify`: parse every module of the tree again, build the database from scratch and
 * require the same bytes in every file. The incremental result is then known to be what a full
 * rebuild would write, whatever the cache said.
 */
async function verifyAgainstFullParse(
  tree: ModuleTree,
  modules: ReturnType<typeof planRebuild>['modules'],
  files: ReadonlyMap<string, Uint8Array>,
  ctx: { inputs: KernelInputs; behaviour: KmodBehaviour; kabiIn: KabiInput; workers: number | undefined },
): Promise<void> {
  const records = await parseModules(modules.map((m) => ({ abs: m.abspath, display: keyOf(tree, m.abspath) })), ctx.workers !== undefined ? { workers: ctx.workers } : {});
  const order = orderPositions(ctx.inputs.order, ctx.behaviour.orderFirstLineWins, tree.moddir);
  const fresh = new ModuleSet();
  modules.forEach((m, i) => fresh.add(keyOf(tree, m.abspath), fingerprintOf(m.abspath), records[i]!, sortIdxOf(order, keyOf(tree, m.abspath))));
  await loadKernelSymbolsInto(fresh, ctx.kabiIn);
  const db = computeDatabase(fresh, { kabi: ctx.kabiIn.against, dirname: tree.moddir, unsizedZstdUnreadable: ctx.behaviour.zstdNeedsSizedFrame });
  const full = emitDatabase({ set: fresh, db, behaviour: ctx.behaviour, dirname: tree.moddir, builtin: ctx.inputs.builtin, builtinModinfo: ctx.inputs.builtinModinfo }).files;
  const differ: string[] = [];
  for (const name of new Set([...files.keys(), ...full.keys()])) {
    const a = files.get(name);
    const b = full.get(name);
    if (a === undefined || b === undefined || Buffer.compare(a, b) !== 0) differ.push(name);
  }
  if (differ.length > 0) throw new VerifyError(tree.moddir, differ);
}

/**
 * Writing modules.* into the module directory changes its mtime, so the listing taken before the
 * write would make the next run relist it and miss the no-op path once. Keep the new mtime only
 * when nothing but our own output files changed there (listed twice around an unchanged mtime).
 */
function refreshModdirListing(tree: ModuleTree, dirs: Record<string, string>, dirEntries: Record<string, DirEntry[]>): void {
  const used = dirEntries[''];
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
  if (rest(entries) === rest(used)) {
    dirs[''] = m;
    dirEntries[''] = entries;
  }
}

function dirKey(tree: ModuleTree, abspath: string): string {
  const d = pathDirname(abspath);
  return d === tree.moddir ? '' : keyOf(tree, d);
}

function outputFingerprints(dir: string, names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    const id = identityOf(`${dir}/${n}`);
    if (id !== undefined) out[n] = id; // missing: the next run will not take the no-op path
  }
  return out;
}

function outputsAsLeft(dir: string, expected: Record<string, string>): boolean {
  const names = Object.keys(expected);
  if (names.length === 0) return false;
  return names.every((n) => identityOf(`${dir}/${n}`) === expected[n]);
}
