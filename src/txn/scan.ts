// Kernels whose trees changed without a journal entry: a plain `dpkg -i` (no apt hook recorded
// anything), or a package a replayed log says was removed or upgraded (its old files are gone and
// no log lists them). Each such kernel gets one merge with no recorded paths; the merge's own
// change detection (directory mtimes against the cache) finds what changed.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { cacheFile } from '../cache/meta.ts';
import { DepmodTxError } from '../errors.ts';
import { KernelState, mergeKernel } from '../kernel/kernel-state.ts';
import { findModuleDir, type KernelMerge, type KernelResult } from './commit.ts';
import { clearDeferred, deferredKernels, isDeferred } from './deferred.ts';
import { writeLastResults } from './status.ts';

/**
 * Every kernel whose tree may have changed since its database was written: with a cache, the cheap
 * directory-mtime check of the merge decides; without one, a tree newer than its modules.dep.bin.
 * And every kernel a deferred depmod call named.
 */
export function kernelsToScan(root: string): string[] {
  const out = new Set<string>(deferredKernels(root).filter((k) => findModuleDir(root, k) !== undefined));
  for (const base of ['lib/modules', 'usr/lib/modules']) {
    let names: string[];
    try {
      names = readdirSync(join(root, base));
    } catch {
      continue;
    }
    for (const kver of names) {
      const moddir = join(root, base, kver);
      if (!statSync(moddir, { throwIfNoEntry: false })?.isDirectory()) continue;
      if (existsSync(cacheFile(root, kver)) || treeNewerThanDatabase(moddir)) out.add(kver);
    }
  }
  return [...out];
}

function treeNewerThanDatabase(moddir: string): boolean {
  const db = statSync(join(moddir, 'modules.dep.bin'), { throwIfNoEntry: false });
  if (!db) return readdirSync(moddir).some((n) => n === 'kernel' || n === 'updates' || n === 'extra');
  const stack = [moddir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    const st = statSync(d, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.mtimeMs > db.mtimeMs) return true;
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) stack.push(join(d, e.name));
  }
  return false;
}

/**
 * One merge, under its lock, for each kernel kernelsToScan names that is not in `done` (merged
 * already by this commit) and, when `only` is given, is in it. Results are recorded in status.json.
 */
export async function mergeUnrecorded(opts: { root: string; merge: KernelMerge; done: readonly string[]; only?: readonly string[]; lockTimeoutMs?: number }): Promise<KernelResult[]> {
  const done = new Set(opts.done);
  const kvers = kernelsToScan(opts.root).filter((k) => !done.has(k) && (!opts.only?.length || opts.only.includes(k)));
  const results: KernelResult[] = [];
  for (const kver of kvers) {
    const t0 = performance.now();
    try {
      const deferred = isDeferred(opts.root, kver);
      // A kernel package removed by plain dpkg -r: the trigger must not write a database into what is left.
      const out = await mergeKernel(new KernelState(opts.root, kver), {
        lockTimeoutMs: opts.lockTimeoutMs,
        needsEvents: false,
        events: async () => [],
        merge: (moddir) => opts.merge({ root: opts.root, kver, moddir, paths: [] }),
        removeEvents: async () => {},
        clearDeferred: (started) => clearDeferred(opts.root, kver, started),
      });
      if (out.kind === 'merged') {
        const r = out.result;
        results.push({
          kver, status: 'merged', events: 0, moddir: out.moddir, changed: r.changed, files: r.files, ms: r.ms, kabi: r.kabi, wallMs: performance.now() - t0,
          ...(r.unreadable !== undefined && r.unreadable.length > 0 ? { unreadable: r.unreadable } : {}), ...(deferred ? { deferred } : {}),
        });
      } else results.push({ kver, status: 'removed', events: 0, wallMs: performance.now() - t0 });
    } catch (err) {
      results.push({ kver, status: 'failed', events: 0, wallMs: performance.now() - t0, error: (err as Error).message, ...(err instanceof DepmodTxError ? { errorKind: err.kind } : {}) });
    }
  }
  if (results.length > 0) await writeLastResults(opts.root, results, new Date());
  return results;
}
