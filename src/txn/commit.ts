// `depmod-tx commit`: one incremental merge per kernel with pending journal events.
//
// Per kernel, in parallel across kernels: take the kernel lock, re-read the journal (a commit that
// held the lock before us has removed what it merged, so nothing is merged twice), run the merge,
// and only then remove exactly the events it was given. Events recorded while the merge runs stay
// for the next commit. A merge that throws or a lock that times out leaves every event in place.
// A kernel that was removed (module directory gone, or left holding no modules: moduleTreeGone) has
// its events and cache dropped instead of merged, and no database is written into what is left.
// When nothing is pending the cost is one readdir: zypper's classic mode calls us after every
// single-package rpm transaction.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { cacheFile, dropCache } from '../cache/store.ts';
import { acquireLock, kernelLockFile, type Lock } from './lock.ts';
import { DEFAULT_JOURNAL_LOCK_MS, readJournal, removeEvents, type JournalWarning, type PendingEvent } from './journal.ts';
import { containmentChecker, PathRefusedError } from './paths.ts';
import { writeLastResults } from './status.ts';
import { crashPoint } from '../io/atomic.ts';
import { moduleTreeGone } from '../io/tree.ts';
import type { KabiBasis } from '../depmod/compute.ts';
import { kabiSummary } from '../merge/kabi-summary.ts';
import { DepmodTxError, type ErrorKind } from '../errors.ts';
import { clearDeferred, isDeferred } from './deferred.ts';

export interface MergeRequest {
  root: string;
  kver: string;
  /** The kernel's module directory in the system namespace, e.g. `/lib/modules/KVER`. */
  moddir: string;
  /** Absolute paths (system namespace, as recorded) the transaction touched. */
  paths: string[];
}

export interface MergeResult {
  changed: boolean;
  files: string[];
  ms: number;
  /** Undefined when KABI was not checked; `against` says what the imports were checked against. */
  kabi: KabiCounts | undefined;
}

export interface KabiCounts {
  /** What was checked against (KabiBasis; 'modules': no symvers found). Absent: symvers (older state files). */
  against?: Exclude<KabiBasis, 'none'>;
  unknown: number;
  mismatched: number;
}

/** The incremental update of one kernel (issue 4), injected so this layer is testable alone. */
export interface KernelMerge {
  (req: MergeRequest): Promise<MergeResult>;
}

/** 'removed': the kernel's modules are gone; its events and cache were dropped, no database written. */
export type KernelStatus = 'merged' | 'removed' | 'failed' | 'nothing';

export interface KernelResult {
  kver: string;
  status: KernelStatus;
  /** Pending events this commit handled (merged or dropped). */
  events: number;
  moddir?: string;
  changed?: boolean;
  files?: string[];
  /** Time the merge reported. */
  ms?: number;
  /** Wall time including the lock wait. */
  wallMs: number;
  kabi?: KabiCounts;
  error?: string;
  /** Kind of the DepmodTxError that failed the kernel ('io' for ENOSPC/EROFS/EACCES), for the exit code. */
  errorKind?: ErrorKind;
  /**
   * A package's depmod call for this kernel was deferred to this commit (src/txn/deferred.ts): the
   * change is that call's, which depmod would have made without rebuilding the initrd.
   */
  deferred?: boolean;
  /** weak-updates links made or removed in this kernel before its merge. */
  weakLinks?: number;
}

export interface CommitOptions {
  root: string;
  merge: KernelMerge;
  /** How long to wait for a kernel's lock (a merge of the same kernel in another process). */
  lockTimeoutMs?: number;
  journalLockTimeoutMs?: number;
  /** Only these kernels (default: every kernel with pending events). */
  kernels?: readonly string[];
  /**
   * Kernels to merge even without pending events, with the paths that changed in them (absolute,
   * system namespace): weak-updates links made or removed (src/txn/weak-updates.ts). Merged once,
   * together with whatever events they have.
   */
  extra?: ReadonlyMap<string, readonly string[]>;
  /** Candidate module directories, first existing wins (kmod 30 on Debian 12 uses /lib/modules). */
  moduleDirs?: readonly string[];
  now?: () => Date;
}

export interface CommitSummary {
  kernels: KernelResult[];
  warnings: JournalWarning[];
}

export const DEFAULT_KERNEL_LOCK_MS = 300_000;
const DEFAULT_MODULE_DIRS = ['/lib/modules', '/usr/lib/modules'] as const;

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The first candidate module directory of `kver` that exists under root, or undefined. */
export function findModuleDir(root: string, kver: string, moduleDirs: readonly string[] = DEFAULT_MODULE_DIRS): string | undefined {
  for (const d of moduleDirs) {
    const m = `${d}/${kver}`;
    if (isDir(join(root, m))) return m;
  }
  return undefined;
}

/** Kernel versions in first-seen order with their events. Pure. */
export function groupByKernel(events: readonly PendingEvent[]): Map<string, PendingEvent[]> {
  const out = new Map<string, PendingEvent[]>();
  for (const e of events) {
    let list = out.get(e.module.kver);
    if (list === undefined) out.set(e.module.kver, (list = []));
    list.push(e);
  }
  return out;
}

/** Unique paths in journal order: an add followed by a remove of one file is still one re-stat. Pure. */
export function uniquePaths(events: readonly PendingEvent[]): string[] {
  return [...new Set(events.map((e) => e.path))];
}

export function formatKernelResult(r: KernelResult): string {
  const wall = `${Math.round(r.wallMs)} ms`;
  switch (r.status) {
    case 'merged': {
      const what = r.changed ? `changed ${r.files?.length ?? 0} file(s)${r.files && r.files.length > 0 ? ` (${r.files.join(', ')})` : ''}` : 'unchanged';
      const kabi = r.kabi ? kabiSummary(r.kabi.against ?? 'symvers', r.kabi.unknown, r.kabi.mismatched) : kabiSummary('none', 0, 0);
      const weak = r.weakLinks ? `, ${r.weakLinks} weak-updates link(s) changed` : '';
      return `${r.kver}: ${what}, ${r.events} event(s)${weak}, ${Math.round(r.ms ?? 0)} ms merge (${wall} total), ${kabi}`;
    }
    case 'removed':
      return `${r.kver}: kernel removed (no modules left), no database written; dropped ${r.events} event(s) and the cache`;
    case 'nothing':
      return `${r.kver}: nothing pending (merged by a concurrent commit)`;
    case 'failed':
      return `${r.kver}: FAILED after ${wall}, ${r.events} event(s) kept for the next commit: ${r.error ?? 'unknown error'}`;
  }
}

export async function commit(opts: CommitOptions): Promise<CommitSummary> {
  const { root } = opts;
  const jl = opts.journalLockTimeoutMs ?? DEFAULT_JOURNAL_LOCK_MS;
  const warnings = new Map<string, JournalWarning>();
  const addWarnings = (ws: readonly JournalWarning[]) => {
    for (const w of ws) warnings.set(`${w.file}\0${w.line ?? ''}\0${w.message}`, w);
  };
  const first = await readJournal(root, jl);
  addWarnings(first.warnings);
  let kvers = [...groupByKernel(first.events).keys()];
  if (opts.kernels !== undefined) {
    const only = new Set(opts.kernels);
    kvers = kvers.filter((k) => only.has(k));
  }
  for (const k of opts.extra?.keys() ?? []) if (!kvers.includes(k)) kvers.push(k);
  const results = await Promise.all(kvers.map((kver) => commitKernel(opts, kver, jl, addWarnings)));
  if (results.length > 0) await writeLastResults(root, results, (opts.now ?? (() => new Date()))(), jl);
  return { kernels: results, warnings: [...warnings.values()] };
}

async function commitKernel(opts: CommitOptions, kver: string, jl: number, addWarnings: (ws: readonly JournalWarning[]) => void): Promise<KernelResult> {
  const { root } = opts;
  const t0 = performance.now();
  let events: PendingEvent[] = [];
  let lock: Lock | undefined;
  try {
    lock = await acquireLock(kernelLockFile(root, kver), opts.lockTimeoutMs ?? DEFAULT_KERNEL_LOCK_MS);
    const snap = await readJournal(root, jl);
    addWarnings(snap.warnings);
    events = snap.events.filter((e) => e.module.kver === kver);
    const extra = opts.extra?.get(kver);
    if (events.length === 0 && extra === undefined) return { kver, status: 'nothing', events: 0, wallMs: performance.now() - t0 };
    const moddir = findModuleDir(root, kver, opts.moduleDirs);
    if (moddir === undefined || moduleTreeGone(join(root, moddir))) {
      dropCache(cacheFile(root, kver));
      await removeEvents(root, events, jl);
      return { kver, status: 'removed', events: events.length, wallMs: performance.now() - t0 };
    }
    // Re-checked here, under the lock: a symlink swapped in since `record` must not redirect the merge.
    const usable: PendingEvent[] = [];
    const refused: PendingEvent[] = [];
    const check = containmentChecker(root);
    for (const e of events) {
      try {
        check(e.module);
        usable.push(e);
      } catch (err) {
        if (!(err instanceof PathRefusedError)) throw err;
        addWarnings([{ code: 'JOURNAL_LINE_MALFORMED', file: e.file, line: e.line, message: `${e.file}:${e.line}: ${err.message}` }]);
        refused.push(e);
      }
    }
    // Nothing usable: no merge ran, so nothing is known about KABI (not "ok").
    const deferred = isDeferred(root, kver);
    const started = Date.now();
    const res: MergeResult =
      usable.length > 0 || extra !== undefined
        ? await opts.merge({ root, kver, moddir, paths: [...new Set([...uniquePaths(usable), ...(extra ?? [])])] })
        : { changed: false, files: [], ms: 0, kabi: undefined };
    if (usable.length > 0) clearDeferred(root, kver, started);
    crashPoint(`commit:after-merge:${kver}`);
    await removeEvents(root, events, jl);
    crashPoint(`commit:after-remove:${kver}`);
    return {
      kver, status: 'merged', events: usable.length, moddir, changed: res.changed, files: res.files, ms: res.ms, wallMs: performance.now() - t0, kabi: res.kabi,
      ...(extra !== undefined && extra.length > 0 ? { weakLinks: extra.length } : {}),
      error: refused.length > 0 ? `${refused.length} refused path(s) dropped` : undefined, ...(deferred && usable.length > 0 ? { deferred } : {}),
    };
  } catch (err) {
    return {
      kver, status: 'failed', events: events.length, wallMs: performance.now() - t0, error: err instanceof Error ? err.message : String(err),
      ...(err instanceof DepmodTxError ? { errorKind: err.kind } : {}),
    };
  } finally {
    await lock?.release();
  }
}
