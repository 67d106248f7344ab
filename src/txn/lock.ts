// Exclusive, blocking, timed locks on files: one per kernel (`/var/cache/depmod-tx/KVER.lock`,
// held for a whole merge) and one for the journal (`/var/lib/depmod-tx/journal.lock`, held for
// milliseconds around an append or a rewrite).
//
// Why flock(1) in a child process rather than an O_EXCL lock file holding pid + start time:
// - the kernel releases a flock when its holder dies, so a killed depmod-tx never leaves a stale
//   lock and there is no staleness heuristic to get wrong. With O_EXCL files, two waiters that both
//   judge a lock stale can each delete it and both "win"; avoiding that needs a second lock anyway;
// - it is the same primitive kmod users, initramfs-tools and shell scripts use (`flock FILE cmd`),
//   so an administrator can take our lock from a shell to pause us;
// - util-linux is essential on every distribution we target.
// Node cannot call flock(2), so a child `flock -x -w T FILE sh -c 'echo locked; exec cat'` holds
// it: "locked" on its stdout says we own the lock; closing its stdin ends `cat`, which releases it.
// If our process is killed, the pipe closes, `cat` sees EOF and the lock goes with it.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { StateError } from '../errors.ts';
import { crashPoint } from '../io/atomic.ts';
import { stateDirs } from '../cache/store.ts';
import { validateKver } from './paths.ts';

export interface Lock {
  readonly file: string;
  release(): Promise<void>;
}

/** Exit code we ask flock(1) to use when the wait times out (-E), distinct from its own failures. */
const TIMEOUT_EXIT = 75;

export function kernelLockFile(root: string, kver: string): string {
  validateKver(kver);
  return join(stateDirs(root).cache, `${kver}.lock`);
}

export function journalLockFile(root: string): string {
  return join(stateDirs(root).lib, 'journal.lock');
}

function ensureLockFile(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  // Created by us with 0644 so flock(1) never creates it with a laxer umask-derived mode.
  closeSync(openSync(file, 'a', 0o644));
}

/** Waits up to `timeoutMs` for the exclusive lock on `file`; throws StateError on timeout. */
export function acquireLock(file: string, timeoutMs: number): Promise<Lock> {
  ensureLockFile(file);
  const seconds = Math.max(0, timeoutMs / 1000).toFixed(3);
  const child = spawn('flock', ['-x', '-w', seconds, '-E', String(TIMEOUT_EXIT), file, 'sh', '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return new Promise<Lock>((resolve, reject) => {
    let out = '';
    let settled = false;
    child.once('error', (err) => {
      if (settled) return;
      settled = true;
      reject(new StateError(file, `cannot run flock(1) to take the lock: ${err.message}`, { cause: err }));
    });
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (settled || !out.includes('locked\n')) return;
      settled = true;
      crashPoint(`lock:acquired:${basename(file)}`);
      let released: Promise<void> | undefined;
      resolve({
        file,
        release() {
          released ??= (async () => {
            child.stdin.end();
            await exited;
          })();
          return released;
        },
      });
    });
    void exited.then((code) => {
      if (settled) return;
      settled = true;
      if (code === TIMEOUT_EXIT) reject(new StateError(file, `lock still held by another process after ${timeoutMs} ms`));
      else reject(new StateError(file, `flock(1) failed (exit ${code}): ${stderr.trim()}`));
    });
  });
}

export async function withLock<T>(file: string, timeoutMs: number, fn: () => Promise<T> | T): Promise<T> {
  const lock = await acquireLock(file, timeoutMs);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
