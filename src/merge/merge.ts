// One merge of one kernel's module database: the single pipeline behind `rebuild` (cache ignored)
// and `update` (cache used). DESIGN.md's one idea, revised: the tree is the truth, the touched paths
// are a hint; the module cache keeps the kernel's ModuleSet (every fact depmod takes from every
// module, as typed-array columns); a merge adds and drops the modules that changed and derives the
// whole database from the set with the same code a full rebuild uses (src/depmod/compute.ts,
// emit.ts), which over interned ids costs milliseconds. So an incremental result equals a full
// rebuild by construction, and `verify` checks it by parsing everything again.
//
//   observe (here): open the cache header, stat directories and inputs → no-op?
//   decide + apply (merge-apply.ts, loaded only when needed): body, listing, search, which modules
//   to keep, parse and drop, update the set, compute + emit, write changed files, save the cache
import { statSync } from 'node:fs';
import type { CacheHeader } from '../cache/format.ts';
import { cacheFile, openCache, type OpenedCache } from '../cache/store.ts';
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
      return (await mergeOnce(opts, false))!;
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
export async function mergeIfChanged(opts: MergeOptions): Promise<MergeResult | undefined> {
  return mergeOnce(opts, true);
}

export function vanished(file: string, err: unknown): VanishedModuleError {
  return new VanishedModuleError(file, 'module file vanished while merging (is another program changing the module tree?)', 'ENOENT', { cause: err });
}

async function mergeOnce(opts: MergeOptions, noopOnly: boolean): Promise<MergeResult | undefined> {
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
    (header.inputsIdentity === inputsIdentity || header.inputsDigest === inputs().digest) &&
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
        modules: header.modules, kabi: stored, unreadable: header.unreadable, symversFile: kabiIn.file,
        kabiAgainst: kabiIn.against, kmodVersion: behaviour.version, warnings: header.warnings as DepmodMessage[],
        kabiAt: header.warningsBeforeKabi ?? header.warnings.length, cycles: undefined, noop: true,
        ms: performance.now() - t0,
      };
    }
  }
  if (noopOnly) return undefined;

  const { applyMerge } = await import('./merge-apply.ts');
  return applyMerge({ opts, t0, trace, behaviour, tree, configList, inputsIdentity, inputs, cachePath, outDir, kabiIn, fullReason, opened, header, hintKeys, hintDirs, staleDirs });
}

/** The database's findings as the cache recorded them; undefined when the body cannot be read. */
export function storedFindings(header: CacheHeader, opened: OpenedCache): KabiFinding[] | undefined {
  if (header.kabiFindings !== undefined) return header.kabiFindings;
  const body = opened.body();
  return body.ok ? body.value.kabi : undefined;
}

export function outputsAsLeft(dir: string, expected: Record<string, string>): boolean {
  const names = Object.keys(expected);
  if (names.length === 0) return false;
  return names.every((n) => identityOf(`${dir}/${n}`) === expected[n]);
}
