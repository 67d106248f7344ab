// The decide and apply phases of a merge (merge.ts observes, and answers a no-op itself): list the
// tree, decide which modules to keep, parse and drop, update the module set, compute and emit the
// database, write the changed files atomically, save the cache. Loaded only when the merge is not a
// no-op: it brings the parser pool, the database computation and the writers with it.
import { dirname as pathDirname } from 'node:path';
import type { CacheHeader, DirEntry, KabiSummary } from '../cache/format.ts';
import { fingerprintOf, sameFingerprint, saveCache, type OpenedCache } from '../cache/store.ts';
import { computeDatabase, type KabiBasis, type KabiFinding } from '../depmod/compute.ts';
import { depmodError, depmodInfo, type DepmodMessage } from '../depmod/diagnostic.ts';
import { emitDatabase } from '../depmod/emit.ts';
import { kmodBehaviour, type KmodBehaviour } from '../depmod/kmod-version.ts';
import { ModuleSet, orderPositions, sortIdxOf, type Fingerprint, type OrderPositions } from '../depmod/module-set.ts';
import { planRebuild } from '../depmod/rebuild.ts';
import type { ListEntry } from '../depmod/search.ts';
import { writeFilesAtomically, crashPoint } from '../io/atomic.ts';
import { parseModulesSettled, type ParseOptions } from '../io/parse-pool.ts';
import { outcomeError, type ParseFile } from '../io/parse-outcome.ts';
import { listDirInReaddirOrder, type ModuleTree, statTypeFollowingLinks } from '../io/tree.ts';
import { MODULE_SUFFIXES } from '../module/suffixes.ts';
import { readingFor, type ModuleRecord } from '../module/record.ts';
import { kmodGeneration } from '../elf/elf.ts';
import { loadKernelSymbols, type KabiInput, type KernelInputs } from './inputs.ts';
import { CycleError, identityOf, keyOf, mtimeNs, outputsAsLeft, storedFindings, vanished, VerifyError, type MergeOptions, type MergeResult } from './merge.ts';

/** Saved sets are rewritten without dropped modules once these take this share of the columns. */
const COMPACT_AT = 0.25;

/** Outputs made from the builtin inputs alone (emit.ts), reused while those inputs are unchanged. */
const INPUT_ONLY_OUTPUTS = ['modules.builtin.bin', 'modules.builtin.alias.bin'] as const;

/** Findings kept in the cache header (read by the no-op path); more go to the body only. */
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
  opened: OpenedCache | undefined;
  header: CacheHeader | undefined;
  hintKeys: ReadonlySet<string>;
  hintDirs: ReadonlySet<string>;
  staleDirs: ReadonlySet<string>;
}

export async function applyMerge(o: Observed): Promise<MergeResult> {
  const { opts, t0, trace, behaviour, tree, inputsIdentity, inputs, cachePath, outDir, kabiIn, opened, header, hintKeys, hintDirs, staleDirs } = o;
  let fullReason = o.fullReason;
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
  // Identities first: the inputs are read (and hashed) only when one of them changed.
  const sameInputs = reuse && (header.inputsIdentity === inputsIdentity || header.inputsDigest === inputs().digest);
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
    configFiles: inputs().configFiles,
    suffixes: MODULE_SUFFIXES,
    behaviour,
    io: { listDir, statType: statTypeFollowingLinks },
  });
  trace(`config + tree listing (${relisted.size} listed)`);
  const warnings: DepmodMessage[] = [
    ...[...inputs().configWarnings, ...plan.configWarnings].map((w) => (w.level === 'error' ? depmodError(w.message) : depmodInfo(w.message))),
    ...plan.searchWarnings,
  ];

  // 5. Decide: keep what the cache vouches for, parse the rest, drop what is gone.
  const sameGeneration = reuse && kmodGeneration(kmodBehaviour(header.kmodVersion)?.major ?? 0) === kmodGeneration(behaviour.major);
  const slotByPath = new Map<string, number>();
  if (reuse) for (const s of set.liveSlots()) slotByPath.set(set.path(s), s);
  const kept = new Uint8Array(set.slots);
  let keptCount = 0;
  const toParse: Array<{ abs: string; key: string; fp: Fingerprint; old: number | undefined }> = [];
  for (const m of plan.modules) {
    const key = keyOf(tree, m.abspath);
    const slot = slotByPath.get(key);
    // A file kmod 34 reads otherwise than older kmods is read again when the kmod changes generation.
    const sameReading = slot === undefined || set.byKmod[slot] !== 1 || sameGeneration;
    const trusted = slot !== undefined && sameReading && !opts.fullScan && !hintKeys.has(key) && !relisted.has(dirKey(tree, m.abspath));
    if (trusted) {
      kept[slot] = 1;
      keptCount++;
      continue;
    }
    let fp: Fingerprint;
    try {
      fp = fingerprintOf(m.abspath); // before reading: a change after this is caught next time
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw vanished(key, err);
      throw err;
    }
    if (slot !== undefined && sameReading && sameFingerprint(set.fingerprint(slot), fp)) {
      kept[slot] = 1;
      keptCount++;
      continue;
    }
    toParse.push({ abs: m.abspath, key, fp, old: slot });
  }
  trace(`fingerprints (${toParse.length} to parse)`);
  // Every module as the cache has it (the hinted files were merged already, e.g. by the package's
  // own depmod call through depmod-tx), nothing else changed: the database is current.
  if (
    reuse &&
    toParse.length === 0 &&
    keptCount === set.liveCount &&
    staleDirs.size === 0 &&
    sameInputs &&
    header.kmodVersion === behaviour.version &&
    header.kabiKey === kabiIn.key &&
    !opts.verify &&
    outputsAsLeft(outDir, header.outputs)
  ) {
    const stored = storedFindings(header, opened!);
    if (stored !== undefined) {
      return {
        tree, written: [], unchanged: Object.keys(header.outputs), fullReason: undefined, parsed: 0, reused: keptCount, removed: 0,
        modules: header.modules, kabi: stored, unreadable: header.unreadable, symversFile: kabiIn.file, kabiAgainst: kabiIn.against, kmodVersion: behaviour.version,
        warnings: header.warnings as DepmodMessage[], kabiAt: header.warningsBeforeKabi ?? header.warnings.length, cycles: undefined, noop: true,
        ms: performance.now() - t0,
      };
    }
  }
  const parsedRecords = await recordsOf(
    toParse.map((f) => ({ abs: f.abs, display: f.key })),
    { ...(opts.workers !== undefined ? { workers: opts.workers } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) },
  );
  trace('parse');

  // 6. Apply to the set: drop what is gone or replaced, add what was parsed.
  const removedSlots: number[] = [];
  if (!reuse) set = new ModuleSet();
  else for (const s of set.liveSlots()) if (kept[s] !== 1) removedSlots.push(s);
  for (const s of removedSlots) set.drop(s);
  // Positions depend on modules.order and on the kmod (which of a module's lines counts).
  let orderMemo: OrderPositions | undefined;
  const order = (): OrderPositions => (orderMemo ??= orderPositions(inputs().order, behaviour.orderFirstLineWins, tree.moddir));
  if (reuse && (!sameInputs || header.kmodVersion !== behaviour.version)) for (const s of set.liveSlots()) set.sortIdx[s] = sortIdxOf(order(), set.path(s));
  toParse.forEach((f, i) => {
    const read = readingFor(parsedRecords[i]!, behaviour.major);
    set.add(f.key, f.fp, read.record, sortIdxOf(order(), f.key), read.byKmod);
  });
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
  const out = emitDatabase({ set, db, behaviour, dirname: tree.moddir, builtin: inputs().builtin, builtinModinfo: inputs().builtinModinfo, keep, keptWarnings: header?.builtinWarnings as DepmodMessage[] | undefined });
  trace('emit');
  const orderWarnings = sameInputs && orderMemo === undefined ? (header.orderWarnings as DepmodMessage[] | undefined) ?? order().warnings : order().warnings;
  warnings.push(...orderWarnings, ...db.warnings);
  const kabiAt = warnings.length;
  warnings.push(...out.warnings);
  const kabi = db.kabi;

  const newHeader: CacheHeader = {
    kver: opts.kver,
    moddir: tree.moddir,
    inputsDigest: sameInputs ? header.inputsDigest : inputs().digest,
    inputsIdentity,
    kmodVersion: behaviour.version,
    dirs,
    outputs: {},
    kabiKey: kabiIn.key,
    kabi: summaryOf(kabiAgainst, db.kabi),
    modules: db.order.length,
    warnings,
    builtinWarnings: out.builtinWarnings,
    orderWarnings,
    warningsBeforeKabi: kabiAt,
    ...(db.kabi.length <= HEADER_FINDINGS ? { kabiFindings: db.kabi } : {}),
    unreadable: db.unreadableModules,
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
  if (opts.verify) await verifyAgainstFullParse(tree, plan.modules, out.files, { inputs: inputs(), behaviour, kabiIn, workers: opts.workers });
  if (opts.dryRun) {
    return {
      tree, written: [], unchanged: [], fullReason, parsed: toParse.length, reused: plan.modules.length - toParse.length, removed: removedSlots.length - replaced,
      modules: db.order.length, kabi, unreadable: db.unreadableModules, symversFile: kabiIn.file, kabiAgainst, kmodVersion: behaviour.version, warnings, kabiAt, files: out.files,
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
    removed: removedSlots.length - replaced, modules: db.order.length, kabi, unreadable: db.unreadableModules, symversFile: kabiIn.file, kabiAgainst,
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
  const records = await recordsOf(modules.map((m) => ({ abs: m.abspath, display: keyOf(tree, m.abspath) })), ctx.workers !== undefined ? { workers: ctx.workers } : {});
  const order = orderPositions(ctx.inputs.order, ctx.behaviour.orderFirstLineWins, tree.moddir);
  const fresh = new ModuleSet();
  modules.forEach((m, i) => {
    const read = readingFor(records[i]!, ctx.behaviour.major);
    fresh.add(keyOf(tree, m.abspath), fingerprintOf(m.abspath), read.record, sortIdxOf(order, keyOf(tree, m.abspath)), read.byKmod);
  });
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

/**
 * The record of every file, in order. A file kmod cannot load is a record like any other
 * (ModuleRecord.loadError); what stops the merge is a file that vanished (the tree changed under
 * us: merge.ts starts over) and what is not the file's fault (no decoder for it on this system).
 */
async function recordsOf(files: ParseFile[], opts: ParseOptions): Promise<ModuleRecord[]> {
  const outcomes = await parseModulesSettled(files, opts);
  return outcomes.map((o, i) => {
    if (o.ok) return o.record;
    const f = files[i]!;
    if (o.kind === 'io' && o.errno === 'ENOENT') throw vanished(f.display, outcomeError(f, o));
    throw outcomeError(f, o);
  });
}
