// Kernels whose cache a commit may build after it has answered the package manager. A new kernel's
// first depmod call goes to kmod's depmod (hooks/depmod, hooks/50-depmod.install: no Node.js
// start), so the commit at the end of its transaction finds a kernel without a cache whose database
// kmod has just written. Building the cache is a full parse (seconds; an .xz tree's decompression),
// which would make the transaction wait for work whose output, the database, is already there. When
// the tree and the depmod.d configuration are older than that database, the commit answers first
// (`commit --ready-fd`, which the hook waits on) and builds the cache in the same process afterwards,
// at a lower priority, with the mark `KVER.cache.building` naming its pid: a depmod call meanwhile waits
// for it (src/cli/depmod.ts), and kmod's depmod is not called in its place (hooks/depmod).
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheFile, stateDirs } from '../cache/meta.ts';
import { pidAlive } from '../io/atomic.ts';
import { moduleTreeGone } from '../io/tree.ts';
import { findModuleDir } from './commit.ts';

/** KVER.cache.building beside the cache: the pid of the process building it. */
export function buildingMarkFile(root: string, kver: string): string {
  return `${cacheFile(root, kver)}.building`;
}

/** The pid in the kernel's building mark when that process is alive. */
export function buildingPid(root: string, kver: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(buildingMarkFile(root, kver), 'utf8'));
  } catch {
    return undefined;
  }
  return Number.isInteger(pid) && pid > 0 && pidAlive(pid) ? pid : undefined;
}

/** Marks the kernel's cache as being built by this process. */
export function markBuilding(root: string, kver: string): void {
  mkdirSync(stateDirs(root).cache, { recursive: true, mode: 0o755 });
  writeFileSync(buildingMarkFile(root, kver), `${process.pid}\n`, { mode: 0o644 });
}

/** Removes the kernel's building mark if it is this process's. */
export function clearBuilding(root: string, kver: string): void {
  if (buildingPid(root, kver) === process.pid) rmSync(buildingMarkFile(root, kver), { force: true });
}

/** depmod.d directories kmod reads under ROOT (kmod's default list, src/depmod/config.ts order). */
const CONFIG_DIRS = ['etc/depmod.d', 'run/depmod.d', 'usr/local/lib/depmod.d', 'usr/lib/depmod.d', 'lib/depmod.d'];

/**
 * Whether the database in MODDIR (its modules.dep.bin) was written after every directory below
 * MODDIR and every depmod.d directory and file last changed: then it is what a merge would write.
 * A timestamp equal to the database's counts as later (two changes within one clock tick). MODDIR's
 * own mtime says nothing: writing the database renames files into it. (A module file placed right in
 * MODDIR after the database, which packages do not do, is found by the cache build that follows.)
 */
export function databaseNewerThanInputs(root: string, moddir: string): boolean {
  const db = statSync(join(moddir, 'modules.dep.bin'), { throwIfNoEntry: false });
  if (db === undefined) return false;
  const newer = (p: string): boolean => (statSync(p, { throwIfNoEntry: false })?.mtimeMs ?? -Infinity) >= db.mtimeMs;
  for (const d of CONFIG_DIRS.map((c) => join(root, c))) {
    if (newer(d)) return false;
    let names: string[] = [];
    try {
      names = readdirSync(d);
    } catch {
      /* absent */
    }
    if (names.some((n) => newer(join(d, n)))) return false;
  }
  const stack = [moddir];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    if (dir !== moddir && newer(dir)) return false;
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) stack.push(join(dir, e.name));
  }
  return true;
}

/**
 * Of KVERS, the kernels whose cache can be built after the commit answered: no cache, no build
 * running, modules still there, and a database newer than its inputs. Marks left by a killed build
 * of these kernels are removed.
 */
export function cacheLaterKernels(root: string, kvers: Iterable<string>): string[] {
  const out: string[] = [];
  for (const kver of kvers) {
    const building = buildingPid(root, kver);
    // A mark whose process is gone (killed mid-build) marks nothing: removed.
    if (building === undefined) rmSync(buildingMarkFile(root, kver), { force: true });
    if (building !== undefined || statSync(cacheFile(root, kver), { throwIfNoEntry: false }) !== undefined) continue;
    const moddir = findModuleDir(root, kver);
    if (moddir === undefined || moduleTreeGone(join(root, moddir))) continue;
    if (databaseNewerThanInputs(root, join(root, moddir))) out.push(kver);
  }
  return out;
}
