// The decide and apply phases of a merge (merge.ts observes and answers the no-op itself), loaded
// only when something may have changed:
//   load the cache → decide (plan.ts) → patch: parse the changed modules, update the database state,
//   patch every file, save a delta (apply-patch below); or full: derive the whole database from the
//   module set and write every file, save a new base (the reference path, also `rebuild`).
import { join } from 'node:path';
import { listingsOf, overlaidListings, type CacheContents, type CacheMeta, type DirEntry } from '../cache/format.ts';
import { fingerprintOf, loadCache, sameFingerprint, saveCache, saveDelta, type LoadedCache } from '../cache/store.ts';
import { computeDatabase, type KabiBasis, type KabiFinding } from '../depmod/compute.ts';
import type { DepmodConfig } from '../depmod/config.ts';
import { buildState, databaseOf, kabiFindings, loadFindings, updateState, type DbState } from '../depmod/db-state.ts';
import { depmodError, depmodInfo, type DepmodMessage } from '../depmod/diagnostic.ts';
import { isNoisy, patchDatabase, PatchUnavailable, writeWarnings } from '../depmod/emit-patch.ts';
import { emitDatabase, type DatabaseLayout } from '../depmod/emit.ts';
import { kmodBehaviour, type KmodBehaviour } from '../depmod/kmod-version.ts';
import { ModuleSet, orderPositions, sortIdxOf, uncompressedRelpath, type Fingerprint, type OrderPositions } from '../depmod/module-set.ts';
import { planRebuild } from '../depmod/rebuild.ts';
import { kmodModname, type ListEntry } from '../depmod/search.ts';
import { crashPoint, writeFilesAtomically } from '../io/atomic.ts';
import { parseIntoSet, parseModulesSettled, type ParseOptions } from '../io/parse-pool.ts';
import type { ChunkFile } from '../io/parse-chunk.ts';
import { KmodAbortError } from '../errors.ts';
import { outcomeError, type ParseFile } from '../io/parse-outcome.ts';
import { kmodGeneration } from '../elf/elf.ts';
import { listDirInReaddirOrder, readIfExists, statTypeFollowingLinks, type ModuleTree } from '../io/tree.ts';
import { MODULE_SUFFIXES } from '../module/suffixes.ts';
import { readingFor, type ModuleRecord } from '../module/record.ts';
import { loadKernelSymbols, type KabiInput, type KernelInputs } from './inputs.ts';
import { CycleError, identityOf, keyOf, mtimeNs, outputsAsLeft, vanished, VerifyError, type MergeOptions, type MergeResult } from './merge.ts';
import { observeTree, walkOrderOf } from './observe.ts';
import { decidePatch, type Plan } from './plan.ts';

/** Saved sets are rewritten without dropped modules once these take this share of the columns. */
const COMPACT_AT = 0.25;

/** A delta larger than this share of its base is folded into a new base. */
const REBASE_AT = 0.25;

/** Outputs made from the builtin inputs alone (emit.ts), reused while those inputs are unchanged. */
const INPUT_ONLY_OUTPUTS = ['modules.builtin.bin', 'modules.builtin.alias.bin'] as const;

/** Findings kept in the meta (read by the no-op path); more are derived from the state. */
const HEADER_FINDINGS = 256;

/** What merge.ts observed, handed over. */
export interface Observed {
  opts: MergeOptions;
  t0: number;
  trace: (phase: string) => void;
  behaviour: KmodBehaviour;
  tree: ModuleTree;
  configList: string[];
  inputsIdentity: string;
  inputs: () => KernelInputs;
  cachePath: string;
  outDir: string;
  kabiIn: KabiInput;
  fullReason: string | undefined;
  meta: CacheMeta | undefined;
  hintKeys: ReadonlySet<string>;
  hintDirs: ReadonlySet<string>;
  staleDirs: ReadonlySet<string>;
}

export async function applyMerge(o: Observed): Promise<MergeResult> {
  const { opts, trace, behaviour, tree, kabiIn, meta } = o;
  let fullReason = o.fullReason;
  let loaded: LoadedCache | undefined;
  if (meta !== undefined && fullReason === undefined) {
    const l = loadCache(o.cachePath, { kver: opts.kver, moddir: tree.moddir });
    if (l.ok) loaded = l.value;
    else fullReason = l.reason;
  }
  trace('cache body');
  const planned = (plan: Plan): MergeResult => ({
    tree, written: [], unchanged: [], fullReason, parsed: 0, reused: 0, removed: 0, modules: meta?.modules ?? 0, kabi: [], unreadable: [], symversFile: kabiIn.file,
    kabiAgainst: kabiIn.against, kmodVersion: behaviour.version, warnings: [], kabiAt: 0, cycles: undefined, noop: false, plan, ms: performance.now() - o.t0,
  });
  if (loaded === undefined) {
    const plan: Plan = { mode: 'rebuild', reason: fullReason ?? 'no module cache yet', parse: [], drop: [], shadowed: [], notes: [] };
    trace(`plan: rebuild (${plan.reason})`);
    return opts.planOnly ? planned(plan) : applyFull(o, undefined, plan);
  }
  const c = loaded.contents;
  const sameInputs = c.meta.inputsIdentity === o.inputsIdentity || c.meta.inputsDigest === o.inputs().digest;
  const why =
    !sameInputs ? 'depmod.d, modules.order or the builtin files changed'
    : c.meta.kmodVersion !== behaviour.version ? `the output format changes from kmod ${c.meta.kmodVersion} to ${behaviour.version}`
    : c.meta.kabiKey !== kabiIn.key ? "the kernel's symbol versions changed"
    : opts.fullScan ? '--full-scan'
    : c.meta.cycles !== null ? 'the last merge found dependency cycles'
    : !outputsAsLeft(o.outDir, c.meta.outputs) ? 'the modules.* files are not the ones the cache describes'
    : undefined;
  if (why !== undefined) {
    const plan: Plan = { mode: 'recompute', reason: why, parse: [], drop: [], shadowed: [], notes: [] };
    trace(`plan: recompute (${why})`);
    return opts.planOnly ? planned(plan) : applyFull(o, loaded, plan);
  }

  const relist = new Set([...o.staleDirs, ...o.hintDirs]);
  const obs = observeTree({ moddir: tree.moddir, config: c.meta.config, suffixes: MODULE_SUFFIXES, dirEntries: c.dirEntries, shadowed: c.meta.shadowed, relist, hints: o.hintKeys });
  trace(`listing (${obs.listings.size} listed, ${obs.files.size} stat'ed)`);
  const listing = (key: string): readonly DirEntry[] | undefined => obs.listings.get(key) ?? c.dirEntries.get(key);
  const plan = decidePatch(obs, { set: c.set, config: c.meta.config, shadowed: c.meta.shadowed, dirname: tree.moddir, walkOrder: walkOrderOf(c.meta.config, listing) }, MODULE_SUFFIXES);
  trace(`plan: ${plan.mode} (${plan.reason})`);
  if (opts.planOnly) return { ...resultOf(o, c.meta, kabiFindings(c.set, c.state, tree.moddir), c.meta.warnings as DepmodMessage[], c.meta.warningsBeforeKabi), noop: plan.mode === 'noop', plan };
  if (plan.mode === 'recompute') return applyFull(o, loaded, plan);
  if (plan.mode === 'noop' && !opts.verify) {
    // Directories moved without any module changing (a file that is no module, a package's own depmod
    // call that merged already): remember their new state so the next merge is a no-op.
    if (!opts.dryRun && obs.listings.size > 0) {
      const next = { ...c.meta, dirs: updatedDirs(c.meta.dirs, obs.mtimes, obs.goneDirs), writtenAtMs: Date.now() };
      const dirEntries = overlaidListings(c.dirEntries, Object.fromEntries(obs.listings));
      saveDelta(loaded, { ...c, meta: next, dirEntries }, loaded.dropped, { ...loaded.relisted, ...Object.fromEntries(obs.listings) });
    }
    return { ...resultOf(o, c.meta, c.meta.kabiFindings ?? kabiFindings(c.set, c.state, tree.moddir), c.meta.warnings as DepmodMessage[], c.meta.warningsBeforeKabi), noop: true, plan };
  }
  try {
    return await applyPatch(o, loaded, plan, obs);
  } catch (err) {
    if (!(err instanceof PatchUnavailable)) throw err;
    // The cache does not describe the files well enough to patch them: write them whole.
    const again = loadCache(o.cachePath, { kver: opts.kver, moddir: tree.moddir });
    return applyFull(o, again.ok ? again.value : undefined, { ...plan, mode: 'recompute', reason: err.message });
  }
}

/** The meta's directory mtimes brought up to date, in place (a copy of ~1,000 keys costs more than the rest of the meta). */
function updatedDirs(dirs: Record<string, string>, mtimes: ReadonlyMap<string, string>, gone: readonly string[]): Record<string, string> {
  for (const g of gone) delete dirs[g];
  for (const [k, m] of mtimes) dirs[k] = m;
  return dirs;
}

function resultOf(o: Observed, meta: CacheMeta, kabi: KabiFinding[], warnings: DepmodMessage[], kabiAt: number): MergeResult {
  return {
    tree: o.tree, written: [], unchanged: Object.keys(meta.outputs), fullReason: undefined, parsed: 0, reused: 0, removed: 0,
    modules: meta.modules, kabi, unreadable: meta.unreadable, symversFile: o.kabiIn.file, kabiAgainst: o.kabiIn.against, kmodVersion: o.behaviour.version,
    warnings, kabiAt, cycles: undefined, noop: true, ms: performance.now() - o.t0,
  };
}

/**
 * The record of every file, in order, as the kmod being written for reads it (readingFor). A file
 * kmod cannot load is a record like any other (ModuleRecord.loadError); what stops the merge is a
 * file that vanished (the tree changed under us: merge.ts starts over) and what is not the file's
 * fault (no decoder for it on this system).
 */
async function parsePlanned(o: Observed, files: ReadonlyArray<{ key: string; abs: string }>): Promise<Array<{ record: ModuleRecord; byKmod: boolean }>> {
  const opts: ParseOptions = { ...(o.opts.workers !== undefined ? { workers: o.opts.workers } : {}), ...(o.opts.onProgress ? { onProgress: o.opts.onProgress } : {}) };
  const list: ParseFile[] = files.map((f) => ({ abs: f.abs, display: f.key }));
  const outcomes = await parseModulesSettled(list, opts);
  return outcomes.map((r, i) => {
    const f = list[i]!;
    if (!r.ok) {
      if (r.kind === 'io' && r.errno === 'ENOENT') throw vanished(f.display, outcomeError(f, r));
      throw outcomeError(f, r);
    }
    return readingFor(r.record, o.behaviour.major);
  });
}

/**
 * Every file parsed into `set`, in order (a cold build's columns, straight from the workers:
 * parse-pool.ts parseIntoSet), as the kmod being written for reads it. What stops the merge is
 * what parsePlanned stops on, then a file on which kmod's depmod dies (as set.add refuses it).
 */
async function parseInto(o: Observed, set: ModuleSet, files: ChunkFile[]): Promise<void> {
  const opts: ParseOptions = { ...(o.opts.workers !== undefined ? { workers: o.opts.workers } : {}), ...(o.opts.onProgress ? { onProgress: o.opts.onProgress } : {}) };
  const r = await parseIntoSet(set, files, o.behaviour.major, opts);
  if (r.failure !== undefined) {
    const f = files[r.failure.index]!;
    const failure = r.failure.failure;
    if (failure.kind === 'io' && failure.errno === 'ENOENT') throw vanished(f.display, outcomeError(f, failure));
    throw outcomeError(f, failure);
  }
  if (r.aborts !== undefined) throw new KmodAbortError(files[r.aborts.index]!.display, r.aborts.assertion, r.aborts.detail);
}

/** Byte offset of each line of modules.order (sortIdxFromOrder finds a module's line without splitting the file). */
export function orderLineStarts(order: Uint8Array | undefined): Uint32Array {
  if (order === undefined) return new Uint32Array(0);
  const starts: number[] = [0];
  for (let p = order.indexOf(10); p >= 0 && p + 1 < order.length; p = order.indexOf(10, p + 1)) starts.push(p + 1);
  return Uint32Array.from(starts);
}

/**
 * The modules.order position of one module path (what orderPositions gives it), by searching the
 * file for its line: the first (kmod 34+) or last occurrence, counted through the line index.
 */
export function sortIdxFromOrder(order: Uint8Array | undefined, lines: Uint32Array, total: number, path: string, firstLineWins: boolean): number {
  if (order === undefined || total < 0) return 1;
  const uncrel = uncompressedRelpath(path, kmodModname(path));
  if (uncrel === null) return 1;
  const needle = Buffer.from(`${uncrel}\n`);
  const buf = Buffer.from(order.buffer, order.byteOffset, order.byteLength);
  let at = -1;
  if (firstLineWins) {
    for (let p = buf.indexOf(needle); p >= 0; p = buf.indexOf(needle, p + 1)) if (p === 0 || buf[p - 1] === 10) { at = p; break; }
  } else {
    for (let p = buf.lastIndexOf(needle); p >= 0; p = p === 0 ? -1 : buf.lastIndexOf(needle, p - 1)) if (p === 0 || buf[p - 1] === 10) { at = p; break; }
  }
  if (at < 0) return 1;
  let lo = 0;
  let hi = lines.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (lines[mid]! <= at) lo = mid;
    else hi = mid - 1;
  }
  return lo + 1 - total;
}

/** modules.order's line count + 1 as orderPositions counts it, or -1 when it sorts nothing. */
function orderTotalOf(order: string | undefined): number {
  if (order === undefined || (order.length > 0 && !order.endsWith('\n'))) return -1;
  return order.split('\n').length;
}

function metaWarnings(m: { config: DepmodMessage[]; order: DepmodMessage[]; load: DepmodMessage[]; write: DepmodMessage[] }): { warnings: DepmodMessage[]; kabiAt: number } {
  const before = [...m.config, ...m.order, ...m.load];
  return { warnings: [...before, ...m.write], kabiAt: before.length };
}

function kabiSummaryOf(against: KabiBasis, findings: readonly KabiFinding[]): CacheMeta['kabi'] {
  let unknown = 0;
  for (const f of findings) if (f.kind === 'unknown') unknown++;
  return { against, unknown, mismatched: findings.length - unknown };
}

function outputFingerprints(dir: string, names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    const id = identityOf(`${dir}/${n}`);
    if (id !== undefined) out[n] = id; // missing: the next run will not take the no-op path
  }
  return out;
}

/** The patch path: what changed is parsed, the state updated, every file patched, a delta saved. */
async function applyPatch(o: Observed, loaded: LoadedCache, plan: Plan, obs: ReturnType<typeof observeTree>): Promise<MergeResult> {
  const { opts, trace, behaviour, tree, kabiIn } = o;
  const c = loaded.contents;
  const { set } = c;
  const records = await parsePlanned(o, plan.parse);
  trace(`parse (${plan.parse.length})`);
  const orderBytes = plan.parse.length > 0 ? readIfExists(join(tree.moddir, 'modules.order')) : undefined;
  const prev = c.state;
  for (const s of plan.drop) set.drop(s);
  const added = plan.parse.map((p, i) => set.add(p.key, p.fp, records[i]!.record, sortIdxFromOrder(orderBytes, c.orderLines, c.meta.orderTotal, p.key, behaviour.orderFirstLineWins), records[i]!.byKmod));
  const up = updateState(set, prev, added, plan.drop, { kabi: c.meta.stateOptions.kabi, unsizedZstdUnreadable: c.meta.stateOptions.unsized });
  trace(`state (${up.delta.resolved} resolved, ${up.delta.lineChanged.size} lines, ${up.delta.ownersChanged.length} owners)`);
  if (up.state.cycles !== null) throw new PatchUnavailable('the change makes dependency cycles');
  const old = new Map<string, Uint8Array>();
  for (const name of c.layout.keys()) {
    const b = readIfExists(join(o.outDir, name));
    if (b === undefined) throw new PatchUnavailable(`${name} is missing`);
    old.set(name, b);
  }
  trace('read outputs');
  const patched = patchDatabase({ set, prev, next: up.state, delta: up.delta, added, dropped: plan.drop, behaviour, old, layout: c.layout, trace });
  trace('patch');

  const noisy = new Set(c.meta.noisy.filter((s) => set.alive[s] === 1));
  for (const s of added) if (isNoisy(set, s)) noisy.add(s);
  const kabi = kabiFindings(set, up.state, tree.moddir);
  const loads = loadFindings(set, up.state, tree.moddir);
  const { warnings, kabiAt } = metaWarnings({
    config: c.meta.configWarnings as DepmodMessage[],
    order: c.meta.orderWarnings as DepmodMessage[],
    load: loads.warnings,
    write: writeWarnings(set, up.state, noisy, c.meta.builtinWarnings as DepmodMessage[]),
  });
  if (opts.verify) await verifyAgainstFullParse(o, set, patched.files);
  const result: MergeResult = {
    tree, written: [], unchanged: [], fullReason: undefined, parsed: plan.parse.length, reused: set.liveCount - plan.parse.length,
    removed: plan.drop.length - plan.parse.filter((p) => plan.drop.some((s) => c.set.path(s) === p.key)).length,
    modules: up.state.order.length, kabi, unreadable: loads.unreadable, symversFile: kabiIn.file, kabiAgainst: kabiIn.against, kmodVersion: behaviour.version,
    warnings, kabiAt, cycles: undefined, noop: false, plan, ms: 0,
  };
  if (opts.dryRun) return { ...result, files: patched.files, ms: performance.now() - o.t0 };

  const w = await writeFilesAtomically(o.outDir, patched.files, { old });
  crashPoint('after-outputs');
  trace(`write (${w.written.length} changed)`);
  const mtimes = new Map(obs.mtimes);
  const listings = new Map(obs.listings);
  if (w.written.length > 0) refreshModdirListing(tree, mtimes, listings, c.dirEntries.get(''));
  const meta: CacheMeta = {
    ...c.meta,
    dirs: updatedDirs(c.meta.dirs, mtimes, obs.goneDirs),
    writtenAtMs: Date.now(),
    outputs: { ...c.meta.outputs, ...outputFingerprints(o.outDir, w.written) },
    kabi: kabiSummaryOf(kabiIn.against, kabi),
    modules: up.state.order.length,
    warnings,
    warningsBeforeKabi: kabiAt,
    ...(kabi.length <= HEADER_FINDINGS ? { kabiFindings: kabi } : { kabiFindings: undefined }),
    shadowed: plan.shadowed,
    noisy: [...noisy],
    unreadable: loads.unreadable,
    cycles: null,
  };
  const dirEntries = overlaidListings(c.dirEntries, Object.fromEntries(listings));
  const next: CacheContents = { ...c, meta, state: up.state, layout: patched.layout, dirEntries };
  const baseSlots = loaded.base.counts.slots;
  const dropped = [...new Set([...loaded.dropped, ...plan.drop.filter((s) => s < baseSlots)])];
  const relisted = { ...loaded.relisted, ...Object.fromEntries(listings) };
  const deltaBytes = saveDelta(loaded, next, dropped, relisted);
  if (deltaBytes > REBASE_AT * loaded.base.bytes) saveBase(o.cachePath, next, set);
  trace(`cache save (${deltaBytes} bytes delta${deltaBytes > REBASE_AT * loaded.base.bytes ? ', rebased' : ''})`);
  return { ...result, written: w.written, unchanged: w.unchanged, ms: performance.now() - o.t0 };
}

/** A new base, compacted first when dropped modules take a noticeable share (their state is rebuilt). */
function saveBase(cachePath: string, contents: CacheContents, set: ModuleSet): void {
  if (set.garbageRatio() <= COMPACT_AT) {
    saveCache(cachePath, contents);
    return;
  }
  // Slots are renumbered; array positions and symbol ids are not, so the layouts stay valid.
  const compact = set.compact();
  const renumber = new Map<number, number>();
  let d = 0;
  for (let s = 0; s < set.slots; s++) if (set.alive[s] === 1) renumber.set(s, d++);
  const state = buildState(compact, { kabi: contents.meta.stateOptions.kabi, unsizedZstdUnreadable: contents.meta.stateOptions.unsized });
  saveCache(cachePath, { ...contents, set: compact, state, meta: { ...contents.meta, noisy: contents.meta.noisy.flatMap((s) => (renumber.has(s) ? [renumber.get(s)!] : [])) } });
}

/**
 * The full path: the module set brought up to date with the tree (the cache's records reused where
 * their files are unchanged), the whole database derived from it and every file written; a new base.
 */
async function applyFull(o: Observed, loaded: LoadedCache | undefined, plan: Plan): Promise<MergeResult> {
  const { opts, t0, trace, behaviour, tree, inputsIdentity, inputs, cachePath, outDir, kabiIn } = o;
  const c = loaded?.contents;
  const reuse = c !== undefined;
  const fullReason = plan.mode === 'rebuild' ? plan.reason : o.fullReason;
  let set = c?.set ?? new ModuleSet();
  const sameInputs = reuse && (c.meta.inputsIdentity === inputsIdentity || c.meta.inputsDigest === inputs().digest);

  // List the tree: a directory whose mtime is unchanged has the same entries in the same order.
  const dirs: Record<string, string> = {};
  const dirEntries: Record<string, DirEntry[]> = {};
  const relisted = new Set<string>();
  const cachedEntries = c?.dirEntries ?? listingsOf({});
  const listDir = (abs: string): ListEntry[] | undefined => {
    const key = abs === tree.moddir ? '' : keyOf(tree, abs);
    const m = mtimeNs(abs);
    if (m === undefined) return undefined;
    const cached = cachedEntries.get(key);
    if (reuse && cached !== undefined && c.meta.dirs[key] === m && !opts.fullScan && !o.hintDirs.has(key)) {
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
  const search = planRebuild({ kver: opts.kver, dirname: tree.moddir, configFiles: inputs().configFiles, suffixes: MODULE_SUFFIXES, behaviour, io: { listDir, statType: statTypeFollowingLinks } });
  trace(`config + tree listing (${relisted.size} listed)`);
  const configWarnings: DepmodMessage[] = [...[...inputs().configWarnings, ...search.configWarnings].map((w) => (w.level === 'error' ? depmodError(w.message) : depmodInfo(w.message))), ...search.searchWarnings];

  // Keep what the cache vouches for, parse the rest, drop what is gone.
  const slotByPath = new Map<string, number>();
  if (reuse) for (const s of set.liveSlots()) slotByPath.set(set.path(s), s);
  const kept = new Uint8Array(set.slots);
  const toParse: Array<{ abs: string; key: string; old: number | undefined }> = [];
  const dirKey = (abspath: string): string => {
    const d = abspath.slice(0, abspath.lastIndexOf('/'));
    return d === tree.moddir ? '' : keyOf(tree, d);
  };
  // A file kmod 34 reads otherwise than older kmods is read again when the kmod changes generation.
  const sameGeneration = reuse && kmodGeneration(kmodBehaviour(c.meta.kmodVersion)?.major ?? 0) === kmodGeneration(behaviour.major);
  for (const m of search.modules) {
    const key = keyOf(tree, m.abspath);
    const slot = slotByPath.get(key);
    // Nothing cached to compare with: the parse takes the file's identity as it reads it.
    if (slot === undefined) {
      toParse.push({ abs: m.abspath, key, old: undefined });
      continue;
    }
    const sameReading = set.byKmod[slot] !== 1 || sameGeneration;
    const trusted = sameReading && !opts.fullScan && !o.hintKeys.has(key) && !relisted.has(dirKey(m.abspath));
    if (trusted) {
      kept[slot] = 1;
      continue;
    }
    let fp: Fingerprint;
    try {
      fp = fingerprintOf(m.abspath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw vanished(key, err);
      throw err;
    }
    if (sameReading && sameFingerprint(set.fingerprint(slot), fp)) {
      kept[slot] = 1;
      continue;
    }
    toParse.push({ abs: m.abspath, key, old: slot });
  }
  trace(`fingerprints (${toParse.length} to parse)`);

  const removedSlots: number[] = [];
  if (reuse) for (const s of set.liveSlots()) if (kept[s] !== 1) removedSlots.push(s);
  for (const s of removedSlots) set.drop(s);
  let orderMemo: OrderPositions | undefined;
  const order = (): OrderPositions => (orderMemo ??= orderPositions(inputs().order, behaviour.orderFirstLineWins, tree.moddir));
  if (reuse && (!sameInputs || c.meta.kmodVersion !== behaviour.version)) for (const s of set.liveSlots()) set.sortIdx[s] = sortIdxOf(order(), set.path(s));
  await parseInto(o, set, toParse.map((f) => ({ abs: f.abs, display: f.key, sortIdx: sortIdxOf(order(), f.key) })));
  trace('parse');
  const replaced = toParse.filter((f) => f.old !== undefined).length;
  if (set.garbageRatio() > COMPACT_AT) set = set.compact();

  if (!reuse || c.meta.kabiKey !== kabiIn.key) await loadKernelSymbolsInto(set, kabiIn);
  trace('kernel symbols');
  const stateOptions = { kabi: kabiIn.against, unsized: behaviour.zstdNeedsSizedFrame };
  const state = buildState(set, { kabi: stateOptions.kabi, unsizedZstdUnreadable: stateOptions.unsized });
  const db = databaseOf(set, state);
  trace('compute');
  const keep = new Set<string>();
  if (sameInputs && c.meta.kmodVersion === behaviour.version && INPUT_ONLY_OUTPUTS.every((f) => c.meta.outputs[f] !== undefined && identityOf(`${outDir}/${f}`) === c.meta.outputs[f])) {
    for (const f of INPUT_ONLY_OUTPUTS) keep.add(f);
  }
  const out = emitDatabase({ set, db, behaviour, dirname: tree.moddir, builtin: inputs().builtin, builtinModinfo: inputs().builtinModinfo, keep, keptWarnings: c?.meta.builtinWarnings as DepmodMessage[] | undefined });
  trace('emit');
  const orderWarnings = sameInputs && orderMemo === undefined ? (c.meta.orderWarnings as DepmodMessage[]) : order().warnings;
  const kabi = kabiFindings(set, state, tree.moddir);
  const noisy: number[] = [];
  for (const s of set.liveSlots()) if (state.unreadable[s] !== 1 && isNoisy(set, s)) noisy.push(s);
  const loads = loadFindings(set, state, tree.moddir);
  const { warnings, kabiAt } = metaWarnings({ config: configWarnings, order: orderWarnings, load: loads.warnings, write: out.warnings });
  const orderText = inputs().order;
  const meta: CacheMeta = {
    kver: opts.kver,
    moddir: tree.moddir,
    inputsDigest: sameInputs ? c.meta.inputsDigest : inputs().digest,
    inputsIdentity,
    kmodVersion: behaviour.version,
    dirs,
    writtenAtMs: Date.now(),
    outputs: {},
    kabiKey: kabiIn.key,
    kabi: kabiSummaryOf(kabiIn.against, kabi),
    modules: state.order.length,
    warnings,
    warningsBeforeKabi: kabiAt,
    configWarnings,
    orderWarnings,
    builtinWarnings: out.builtinWarnings,
    ...(kabi.length <= HEADER_FINDINGS ? { kabiFindings: kabi } : {}),
    config: search.config as DepmodConfig,
    shadowed: search.shadowed.map((f) => [f.relpath ?? f.abspath, f.name]),
    noisy,
    unreadable: loads.unreadable,
    orderTotal: orderTotalOf(orderText),
    stateOptions,
    cycles: state.cycles,
  };
  const contents = (layout: DatabaseLayout): CacheContents => ({
    meta,
    set,
    state,
    layout,
    dirEntries: listingsOf(dirEntries),
    orderLines: orderLineStarts(orderText === undefined ? undefined : Buffer.from(orderText, 'latin1')),
  });
  const save = (layout: DatabaseLayout): void => {
    if (opts.outdir !== undefined || opts.dryRun) return;
    saveCache(cachePath, contents(layout));
  };
  if (state.cycles !== null) {
    // depmod writes nothing when it finds cycles; the module facts are still good, keep them.
    meta.outputs = c?.meta.outputs ?? {};
    save(new Map());
    throw new CycleError(tree.moddir, state.cycles.cycles, state.cycles.messages);
  }
  if (opts.verify) await verifyAgainstFullParse(o, set, out.files);
  const result: MergeResult = {
    tree, written: [], unchanged: [], fullReason, parsed: toParse.length, reused: search.modules.length - toParse.length, removed: removedSlots.length - replaced,
    modules: state.order.length, kabi, unreadable: loads.unreadable, symversFile: kabiIn.file, kabiAgainst: kabiIn.against, kmodVersion: behaviour.version, warnings, kabiAt,
    cycles: undefined, noop: false, plan, ms: 0,
  };
  if (opts.dryRun) return { ...result, files: out.files, ms: performance.now() - t0 };

  const w = await writeFilesAtomically(outDir, out.files);
  w.unchanged.push(...keep);
  crashPoint('after-outputs');
  trace(`write (${w.written.length} changed)`);
  if (outDir === tree.moddir && w.written.length > 0) {
    const mt = new Map<string, string>();
    const ls = new Map<string, DirEntry[]>();
    refreshModdirListing(tree, mt, ls, dirEntries['']);
    for (const [k, m] of mt) dirs[k] = m;
    for (const [k, e] of ls) dirEntries[k] = e;
  }
  meta.outputs = outputFingerprints(outDir, [...out.files.keys(), ...keep]);
  // The builtin indexes kept from before have no layout of their own: they are never patched.
  save(out.layout);
  trace('cache save');
  return { ...result, written: w.written, unchanged: w.unchanged, ms: performance.now() - t0 };
}

/** The set's kernel symbols from what the KABI check compares with (none for 'modules' and 'none'). */
async function loadKernelSymbolsInto(set: ModuleSet, kabiIn: KabiInput): Promise<void> {
  if (kabiIn.file !== undefined && (kabiIn.against === 'symvers' || kabiIn.against === 'system-map')) {
    const ks = await loadKernelSymbols(kabiIn.file, kabiIn.against);
    set.setKernelSymbols(ks.source, ks.symbols);
  } else set.setKernelSymbols(undefined, new Map());
}

/**
 * `update --verify`: parse every module of the tree again, build the database from scratch with the
 * reference computation (compute.ts) and require the same bytes in every file.
 */
async function verifyAgainstFullParse(o: Observed, set: ModuleSet, files: ReadonlyMap<string, Uint8Array>): Promise<void> {
  const { tree, behaviour, kabiIn } = o;
  const inputs = o.inputs();
  const plan = planRebuild({ kver: tree.kver, dirname: tree.moddir, configFiles: inputs.configFiles, suffixes: MODULE_SUFFIXES, behaviour, io: { listDir: (d) => { try { return listDirInReaddirOrder(d); } catch { return undefined; } }, statType: statTypeFollowingLinks } });
  const records = await parsePlanned(o, plan.modules.map((m) => ({ abs: m.abspath, key: keyOf(tree, m.abspath) })));
  const order = orderPositions(inputs.order, behaviour.orderFirstLineWins, tree.moddir);
  const fresh = new ModuleSet();
  plan.modules.forEach((m, i) => fresh.add(keyOf(tree, m.abspath), fingerprintOf(m.abspath), records[i]!.record, sortIdxOf(order, keyOf(tree, m.abspath)), records[i]!.byKmod));
  await loadKernelSymbolsInto(fresh, kabiIn);
  void set;
  const db = computeDatabase(fresh, { kabi: kabiIn.against, dirname: tree.moddir, unsizedZstdUnreadable: behaviour.zstdNeedsSizedFrame });
  const full = emitDatabase({ set: fresh, db, behaviour, dirname: tree.moddir, builtin: inputs.builtin, builtinModinfo: inputs.builtinModinfo }).files;
  const differ: string[] = [];
  for (const name of new Set([...files.keys(), ...full.keys()])) {
    const a = files.get(name);
    const b = full.get(name);
    // Files the merge did not produce (kept builtin indexes) are compared with the disk.
    const mine = a ?? readIfExists(join(o.outDir, name));
    if (mine === undefined || b === undefined || Buffer.compare(mine, b) !== 0) differ.push(name);
  }
  if (differ.length > 0) throw new VerifyError(tree.moddir, differ);
}

/**
 * Writing modules.* into the module directory changes its mtime, so the listing taken before the
 * write would make the next run relist it and miss the no-op path once. Keep the new mtime only
 * when nothing but our own output files changed there (listed twice around an unchanged mtime).
 */
function refreshModdirListing(tree: ModuleTree, mtimes: Map<string, string>, listings: Map<string, DirEntry[]>, before: readonly DirEntry[] | undefined): void {
  const used = listings.get('') ?? before;
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
  const rest = (es: readonly ListEntry[]): string => es.filter((e) => !ours(e)).map((e) => `${e.type}:${e.name}`).join('\n');
  if (rest(entries) === rest(used)) {
    mtimes.set('', m);
    listings.set('', entries);
  }
}

export type { DbState };
