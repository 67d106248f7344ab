// One merge of one kernel: the pipeline behind `rebuild` (cache ignored) and `update` (cache used).
// DESIGN.md's one idea: the tree is the truth, the change is the unit of work.
//
//   observe (here)        open the cache's header, stat the directories it lists and the inputs:
//                         nothing moved → the no-op answer, from the header alone
//   decide + apply        (merge-apply.ts, loaded only when something changed) load the cache, list
//                         the directories that moved, plan (plan.ts decidePatch: pure), parse the
//                         changed modules, then patch the database state and every output
//                         (db-state.ts, emit-patch.ts) or, when the plan says so, derive and write
//                         the whole database from the set (the reference path, also `rebuild`)
import { statSync } from 'node:fs';
import type { CacheMeta } from '../cache/format.ts';
import { cacheFile, openCacheMeta } from '../cache/meta.ts';
import type { KabiBasis, KabiFinding, LoadFinding } from '../depmod/compute.ts';
import { hasLevel, type DepmodMessage } from '../depmod/diagnostic.ts';
import { DEFAULT_BEHAVIOUR, type KmodBehaviour } from '../depmod/kmod-version.ts';
import { DepmodTxError, IoError } from '../errors.ts';
import { locateModuleTree, type ModuleTree } from '../io/tree.ts';
import { configDirs, kabiInput, kernelInputsIdentity, readKernelInputs, type KernelInputs } from './inputs.ts';

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
  /** Decide what to do and stop: nothing parsed, written or saved (update --plan). */
  planOnly?: boolean;
  /** The unlocked no-op check just before this merge (mergeIfChanged), whose stats may be reused. */
  probe?: Probe | MergeResult | undefined;
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
  /** Every module kmod cannot load, as the database lists it now (also when this merge changed nothing). */
  unreadable: LoadFinding[];
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
  /** What the merge decided (absent for the no-op answered from the header). */
  plan?: import('./plan.ts').Plan;
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

export function keyOf(tree: ModuleTree, abspath: string): string {
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

export function mtimeNs(path: string): string | undefined {
  try {
    return String(statSync(path, { bigint: true }).mtimeNs);
  } catch {
    return undefined;
  }
}

export function identityOf(path: string): string | undefined {
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
  // CPU time beside wall time: on a loaded machine the wall time of a phase says little; the
  // resident size at the end of each phase shows what a phase keeps.
  let last = performance.now();
  let lastCpu = process.cpuUsage();
  return (phase) => {
    const now = performance.now();
    const cpu = process.cpuUsage(lastCpu);
    const rss = process.memoryUsage.rss() / 2 ** 20;
    process.stderr.write(`depmod-tx trace: ${kver}: ${phase} ${(now - last).toFixed(1)} ms (cpu ${((cpu.user + cpu.system) / 1000).toFixed(1)}, rss ${rss.toFixed(0)} MB)\n`);
    last = now;
    lastCpu = process.cpuUsage();
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
      return (await mergeOnce(attempt === 0 ? opts : { ...opts, probe: undefined }, false)) as MergeResult;
    } catch (err) {
      if (!(err instanceof VanishedModuleError) || attempt >= VANISHED_RETRIES) throw err;
    }
  }
}

/**
 * The merge's no-op result when nothing changed since the cache was written, else undefined: only
 * reads (the cache header, directory and input stats), so it needs no lock. Callers try it before
 * taking the kernel's lock (a flock(1) child: three processes) and merge under the lock otherwise.
 * A merge running concurrently either finished (its header is what we read) or has not written yet
 * (then its tree changes show as changed directories or hints here, and we are not a no-op).
 */
export async function mergeIfChanged(opts: MergeOptions): Promise<MergeResult | Probe> {
  return (await mergeOnce(opts, true))!;
}

/**
 * What an unlocked no-op check saw, handed to the merge that follows it under the lock: when the
 * cache files are still the ones it read (no merge ran in between), its directory stats are reused
 * instead of taken again. A directory that changes after them is caught by the next merge: its
 * recorded mtime is the one seen before its listing.
 */
export interface Probe {
  readonly kind: 'probe';
  cacheId: string;
  meta: CacheMeta;
  staleDirs: ReadonlySet<string>;
}

function cacheIdentity(cachePath: string): string {
  return `${identityOf(cachePath) ?? '-'}|${identityOf(cachePath.replace(/\.cache$/, '.delta')) ?? '-'}`;
}

export function vanished(file: string, err: unknown): VanishedModuleError {
  return new VanishedModuleError(file, 'module file vanished while merging (is another program changing the module tree?)', 'ENOENT', { cause: err });
}

async function mergeOnce(opts: MergeOptions, noopOnly: boolean): Promise<MergeResult | Probe> {
  const t0 = performance.now();
  const trace = phaseTracer(opts.kver);
  const behaviour = opts.kmod ?? DEFAULT_BEHAVIOUR;
  const tree = locateModuleTree(opts.root, opts.kver);
  const configList = configDirs(opts.root, opts.config, behaviour);
  // The inputs' identities (stat) decide first; their contents are read only when those differ.
  const inputsIdentity = kernelInputsIdentity(tree, configList);
  let readInputs: KernelInputs | undefined;
  const inputs = (): KernelInputs => (readInputs ??= readKernelInputs(tree, configList));
  const cachePath = cacheFile(opts.root, opts.kver);
  const useCache = !opts.full && opts.outdir === undefined;
  const outDir = opts.outdir ?? tree.moddir;
  const kabiIn = kabiInput(tree, opts.symvers, opts.systemMap);

  // 1. The cache's meta, if it can be trusted for this tree.
  let fullReason: string | undefined = opts.full ? 'full rebuild requested' : opts.outdir !== undefined ? '--outdir given' : undefined;
  let meta: CacheMeta | undefined;
  const probe = opts.probe !== undefined && 'kind' in opts.probe && useCache && opts.probe.cacheId === cacheIdentity(cachePath) ? opts.probe : undefined;
  const cacheId = useCache && noopOnly ? cacheIdentity(cachePath) : '';
  if (probe !== undefined) meta = probe.meta;
  else if (useCache) {
    const o = openCacheMeta(cachePath, { kver: opts.kver, moddir: tree.moddir });
    if (o.ok) meta = o.value;
    else fullReason = o.reason;
  }
  if (meta !== undefined && !(meta.warnings.every(hasLevel) && meta.builtinWarnings.every(hasLevel))) {
    meta = undefined;
    fullReason = 'cache from an older depmod-tx';
  }
  trace('inputs + cache header');

  // 2. Which directories changed since the cache was written. A directory changed twice within one
  // timestamp tick keeps its mtime (git's racy case): the directories of touched paths (and their
  // parents, for new subdirectories) are listed again whatever it says.
  const hintKeys = new Set((opts.hints ?? []).map((p) => hintKey(tree, p)));
  const hintDirs = new Set<string>();
  for (const k of hintKeys) {
    if (k.startsWith('/')) continue;
    for (let i = k.lastIndexOf('/'); i > 0; i = k.lastIndexOf('/', i - 1)) hintDirs.add(k.slice(0, i));
    hintDirs.add('');
  }
  const absDir = (key: string): string => (key === '' ? tree.moddir : key.startsWith('/') ? key : `${tree.moddir}/${key}`);
  const staleDirs = new Set<string>(probe?.staleDirs);
  if (meta !== undefined && probe === undefined) for (const key in meta.dirs) if (mtimeNs(absDir(key)) !== meta.dirs[key]) staleDirs.add(key);
  trace(`directory stats (${staleDirs.size} changed)`);

  // No-op: same inputs and format, no directory changed, no touched file, same kernel symbols,
  // outputs as we left them. The database's KABI findings are those the cache recorded.
  if (
    meta !== undefined &&
    (meta.inputsIdentity === inputsIdentity || meta.inputsDigest === inputs().digest) &&
    meta.kmodVersion === behaviour.version &&
    staleDirs.size === 0 &&
    hintKeys.size === 0 &&
    !opts.fullScan &&
    !opts.verify &&
    meta.kabiKey === kabiIn.key &&
    meta.kabiFindings !== undefined &&
    outputsAsLeft(outDir, meta.outputs)
  ) {
    return {
      tree, written: [], unchanged: Object.keys(meta.outputs), fullReason: undefined, parsed: 0, reused: 0, removed: 0,
      modules: meta.modules, kabi: meta.kabiFindings, unreadable: meta.unreadable, symversFile: kabiIn.file,
      kabiAgainst: kabiIn.against, kmodVersion: behaviour.version, warnings: meta.warnings as DepmodMessage[],
      kabiAt: meta.warningsBeforeKabi, cycles: undefined, noop: true,
      ms: performance.now() - t0,
    };
  }
  if (noopOnly) return meta !== undefined ? { kind: 'probe', cacheId, meta, staleDirs } : ({ kind: 'probe', cacheId: '', meta: undefined as unknown as CacheMeta, staleDirs } satisfies Probe);

  const { applyMerge } = await import('./merge-apply.ts');
  return applyMerge({ opts, t0, trace, behaviour, tree, configList, inputsIdentity, inputs, cachePath, outDir, kabiIn, fullReason, meta, hintKeys, hintDirs, staleDirs });
}

export function outputsAsLeft(dir: string, expected: Record<string, string>): boolean {
  const names = Object.keys(expected);
  if (names.length === 0) return false;
  return names.every((n) => identityOf(`${dir}/${n}`) === expected[n]);
}
