// One owner of a kernel's state under a root: its version, validated once; where its modules are;
// every file depmod-tx keeps for it (cache, lock); its lock; and the one sequence every merge of it
// follows (commit, commit --scan, the depmod front end):
//   lock → this kernel's journaled events, read again under the lock (a merge that held it before
//   may have handled them) → a kernel whose modules are gone: events and cache dropped, no database
//   written → the merge, with the events' paths as hints → only then the events removed and a
//   deferred depmod call cleared. A merge that throws leaves every event in place for the next one.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cacheFile, stateDirs } from '../cache/meta.ts';
import { dropCache } from '../cache/store.ts';
import { PathRefusedError } from '../errors.ts';
import { crashPoint } from '../io/atomic.ts';
import { kverProblem, moduleTreeGone } from '../io/tree.ts';
import { acquireLock, type Lock } from '../io/lock.ts';

/** How long a merge waits for a kernel's lock held by another depmod-tx (--lock-timeout). */
export const DEFAULT_KERNEL_LOCK_MS = 300_000;

/** Where kernels keep their modules, relative to the root; the first that exists wins (kmod 30 on Debian 12: /lib/modules). */
export const MODULE_DIRS = ['/lib/modules', '/usr/lib/modules'] as const;

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** A journaled event of a kernel, as the sequence needs it (txn/journal.ts PendingEvent). */
export interface KernelEvent {
  path: string;
}

export class KernelState {
  readonly root: string;
  readonly kver: string;

  /** Throws `refuse(reason)` (the caller's error type) when kver cannot name a kernel. */
  constructor(root: string, kver: string, refuse: (reason: string) => Error = (r) => new PathRefusedError(kver, r)) {
    const problem = kverProblem(kver);
    if (problem !== undefined) throw refuse(problem);
    this.root = root;
    this.kver = kver;
  }

  get cacheFile(): string {
    return cacheFile(this.root, this.kver);
  }

  get lockFile(): string {
    return join(stateDirs(this.root).cache, `${this.kver}.lock`);
  }

  hasCache(): boolean {
    return existsSync(this.cacheFile);
  }

  /** The kernel's module directory in the system's namespace (`/lib/modules/KVER`), if one exists under the root. */
  moduleDir(candidates: readonly string[] = MODULE_DIRS): string | undefined {
    for (const d of candidates) {
      const m = `${d}/${this.kver}`;
      if (isDir(join(this.root, m))) return m;
    }
    return undefined;
  }

  /** Its package was removed: no module directory, or one left holding no kernel (moduleTreeGone). */
  removed(candidates?: readonly string[]): boolean {
    const m = this.moduleDir(candidates);
    return m === undefined || moduleTreeGone(join(this.root, m));
  }

  dropCache(): void {
    dropCache(this.cacheFile);
  }

  lock(timeoutMs: number = DEFAULT_KERNEL_LOCK_MS): Promise<Lock> {
    return acquireLock(this.lockFile, timeoutMs);
  }
}

export interface SequenceSteps<E extends KernelEvent, R> {
  lockTimeoutMs?: number | undefined;
  /** This kernel's journaled events, read under the lock (none for a scan). */
  events: () => Promise<E[]>;
  /** With events to read, a kernel that has none was merged by a concurrent merge: nothing to do. */
  needsEvents: boolean;
  /** Module directories to look in (tests). */
  moduleDirs?: readonly string[] | undefined;
  /** Splits the events into those the merge may use and those refused (e.g. a symlink swapped in since). */
  usable?: (events: E[]) => E[];
  merge: (moddir: string, hints: string[]) => Promise<R>;
  /** What a merge that runs no merge reports (every event refused). */
  skipped?: () => R;
  removeEvents: (events: E[]) => Promise<void>;
  /** Clears a deferred depmod call of the kernel made before `startedMs`. */
  clearDeferred: (startedMs: number) => void;
}

export type SequenceOutcome<E, R> =
  | { kind: 'nothing' }
  | { kind: 'removed'; events: E[] }
  | { kind: 'merged'; events: E[]; used: E[]; moddir: string; result: R };

/** The per-kernel sequence (see the file header), under the kernel's lock. */
export async function mergeKernel<E extends KernelEvent, R>(ks: KernelState, steps: SequenceSteps<E, R>): Promise<SequenceOutcome<E, R>> {
  const lock = await ks.lock(steps.lockTimeoutMs);
  try {
    const events = await steps.events();
    if (steps.needsEvents && events.length === 0) return { kind: 'nothing' };
    const moddir = ks.moduleDir(steps.moduleDirs);
    if (moddir === undefined || moduleTreeGone(join(ks.root, moddir))) {
      ks.dropCache();
      if (events.length > 0) await steps.removeEvents(events);
      return { kind: 'removed', events };
    }
    const used = steps.usable !== undefined ? steps.usable(events) : events;
    const started = Date.now();
    const hints = [...new Set(used.map((e) => e.path))];
    const result = steps.needsEvents && used.length === 0 && steps.skipped !== undefined ? steps.skipped() : await steps.merge(moddir, hints);
    if (!steps.needsEvents || used.length > 0) steps.clearDeferred(started);
    crashPoint(`commit:after-merge:${ks.kver}`);
    if (events.length > 0) await steps.removeEvents(events);
    crashPoint(`commit:after-remove:${ks.kver}`);
    return { kind: 'merged', events, used, moddir, result };
  } finally {
    await lock.release();
  }
}

/** The lock file of a kernel (tests and callers that hold no KernelState). */
export function kernelLockFile(root: string, kver: string): string {
  return new KernelState(root, kver).lockFile;
}
