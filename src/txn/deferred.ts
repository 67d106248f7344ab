// Kernels whose depmod call was deferred (`depmod-calls = defer`, src/cli/depmod.ts): one empty
// file per kernel, ROOT/var/lib/depmod-tx/deferred/KVER, written by depmod-tx's `depmod` inside a
// dpkg run and removed by the commit that merged the kernel afterwards (src/txn/commit.ts, scan.ts).
// The mark makes the end-of-transaction commit merge the kernel even when no journal event and no
// changed directory names it, and tells it that the change was a package's own depmod call, which
// depmod would have made without an initrd rebuild. Not a kmod format.
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stateDirs } from '../cache/meta.ts';
import { validateKver } from './paths.ts';

function deferredDir(root: string): string {
  return join(stateDirs(root).lib, 'deferred');
}

export function markDeferred(root: string, kver: string): void {
  validateKver(kver);
  mkdirSync(deferredDir(root), { recursive: true, mode: 0o755 });
  writeFileSync(join(deferredDir(root), kver), '', { mode: 0o644 });
}

export function isDeferred(root: string, kver: string): boolean {
  return existsSync(join(deferredDir(root), kver));
}

/** The kernels with a deferred call, in readdir order (names that are no kernel version are skipped). */
export function deferredKernels(root: string): string[] {
  let names: string[];
  try {
    names = readdirSync(deferredDir(root));
  } catch {
    return [];
  }
  return names.filter((n) => {
    try {
      validateKver(n);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * After a merge of `kver` that succeeded and started at `startedMs` (epoch ms): the calls deferred
 * before it are done. A mark written since (another package's call) stays for the next commit.
 */
export function clearDeferred(root: string, kver: string, startedMs: number): void {
  const file = join(deferredDir(root), kver);
  const st = statSync(file, { throwIfNoEntry: false });
  if (st !== undefined && st.mtimeMs <= startedMs) rmSync(file, { force: true });
}
