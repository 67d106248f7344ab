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
import { DEFAULT_JOURNAL_LOCK_MS, readJournal, removeEvents, type JournalWarning, type PendingEvent } from './journal.ts';
import { containmentChecker, PathRefusedError } from './paths.ts';
import { writeLastResults } from './status.ts';
import type { KabiBasis } from '../depmod/compute.ts';
import { kabiSummary, unreadableSummary, type UnreadableEntry } from '../merge/kabi-summary.ts';
import { DepmodTxError, type ErrorKind } from '../errors.ts';
import { DEFAULT_KERNEL_LOCK_MS, KernelState, mergeKernel, MODULE_DIRS } from '../kernel/kernel-state.ts';
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
  /** Modules kmod cannot load, listed without dependencies (absent: none). */
  unreadable?: UnreadableEntry[];
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
  /** Modules kmod cannot load in the database as merged (absent: none): the merge still wrote it. */
  unreadable?: UnreadableEntry[];
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

export { DEFAULT_KERNEL_LOCK_MS };

/** The first candidate module directory of `kver` that exists under root, or undefined. */
export function findModuleDir(root: string, kver: string, moduleDirs: readonly string[] = MODULE_DIRS): string | undefined {
  return new KernelState(root, kver).moduleDir(moduleDirs);
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
      const unreadable = unreadableSummary(r.unreadable ?? []);
      const weak = r.weakLinks ? `, ${r.weakLinks} weak-updates link(s) changed` : '';
      return `${r.kver}: ${what}, ${r.events} event(s)${weak}, ${Math.round(r.ms ?? 0)} ms merge (${wall} total), ${kabi}${unreadable !== '' ? `, ${unreadable}` : ''}`;
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
  try {
    const ks = new KernelState(root, kver);
    const check = containmentChecker(root);
    let refused = 0;
    let deferred = false;
    // Kernels whose weak-updates links changed are merged with those paths as hints, events or not.
    const extra = opts.extra?.get(kver);
    const out = await mergeKernel(ks, {
      lockTimeoutMs: opts.lockTimeoutMs,
      needsEvents: extra === undefined,
      moduleDirs: opts.moduleDirs,
      events: async () => {
        const snap = await readJournal(root, jl);
        addWarnings(snap.warnings);
        events = snap.events.filter((e) => e.module.kver === kver);
        deferred = isDeferred(root, kver);
        return events;
      },
      // Re-checked here, under the lock: a symlink swapped in since `record` must not redirect the merge.
      usable: (evs) =>
        evs.filter((e) => {
          try {
            check(e.module);
            return true;
          } catch (err) {
            if (!(err instanceof PathRefusedError)) throw err;
            addWarnings([{ code: 'JOURNAL_LINE_MALFORMED', file: e.file, line: e.line, message: `${e.file}:${e.line}: ${err.message}` }]);
            refused++;
            return false;
          }
        }),
      // Nothing usable: no merge ran, so nothing is known about KABI (not "ok").
      skipped: (): MergeResult => ({ changed: false, files: [], ms: 0, kabi: undefined }),
      merge: (moddir, hints) => opts.merge({ root, kver, moddir, paths: extra === undefined ? hints : [...new Set([...hints, ...extra])] }),
      removeEvents: (evs) => removeEvents(root, evs, jl),
      clearDeferred: (started) => clearDeferred(root, kver, started),
    });
    if (out.kind === 'nothing') return { kver, status: 'nothing', events: 0, wallMs: performance.now() - t0 };
    if (out.kind === 'removed') return { kver, status: 'removed', events: out.events.length, wallMs: performance.now() - t0 };
    const res = out.result;
    return {
      kver, status: 'merged', events: out.used.length, moddir: out.moddir, changed: res.changed, files: res.files, ms: res.ms, wallMs: performance.now() - t0, kabi: res.kabi,
      ...(res.unreadable !== undefined && res.unreadable.length > 0 ? { unreadable: res.unreadable } : {}),
      ...(extra !== undefined && extra.length > 0 ? { weakLinks: extra.length } : {}),
      error: refused > 0 ? `${refused} refused path(s) dropped` : undefined, ...(deferred && out.used.length > 0 ? { deferred } : {}),
    };
  } catch (err) {
    return {
      kver, status: 'failed', events: events.length, wallMs: performance.now() - t0, error: err instanceof Error ? err.message : String(err),
      ...(err instanceof DepmodTxError ? { errorKind: err.kind } : {}),
    };
  }
}
