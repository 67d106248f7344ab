// Exclusive, blocking, timed locks on files: depmod-tx takes one per kernel (src/kernel/
// kernel-state.ts: `/var/cache/depmod-tx/KVER.lock`, held for a whole merge) and one for the journal
// (src/txn/journal.ts: `/var/lib/depmod-tx/journal.lock`, held for milliseconds around an append or
// a rewrite).
//
// Why flock(2) locks rather than an O_EXCL lock file holding pid + start time:
// - the kernel releases a flock when its holder dies, so a killed depmod-tx never leaves a stale
//   lock and there is no staleness heuristic to get wrong. With O_EXCL files, two waiters that both
//   judge a lock stale can each delete it and both "win"; avoiding that needs a second lock anyway;
// - it is the same primitive kmod users, initramfs-tools and shell scripts use (`flock FILE cmd`),
//   so an administrator can take our lock from a shell to pause us;
// - util-linux is essential on every distribution we target.
// Node cannot call flock(2), so we open the lock file and hand the descriptor to `flock -x -w T 3`
// (the shell idiom `exec 3>file; flock 3`): a flock lock belongs to the open file description,
// which the child shares with us, so it stays ours when the child exits; closing our descriptor (or
// our death) releases it. One short-lived process per lock, instead of the flock + sh + cat that
// held it before (measured: three exec()s per lock, four locks per commit).
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { StateError } from '../errors.ts';
import { crashPoint } from './atomic.ts';

export interface Lock {
  readonly file: string;
  release(): Promise<void>;
}

/** Exit code we ask flock(1) to use when the wait times out (-E), distinct from its own failures. */
const TIMEOUT_EXIT = 75;

function ensureLockFile(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  // Created by us with 0644 so flock(1) never creates it with a laxer umask-derived mode.
  closeSync(openSync(file, 'a', 0o644));
}

/** Waits up to `timeoutMs` for the exclusive lock on `file`; throws StateError on timeout. */
export function acquireLock(file: string, timeoutMs: number): Promise<Lock> {
  ensureLockFile(file);
  const fd = openSync(file, 'r');
  const seconds = Math.max(0, timeoutMs / 1000).toFixed(3);
  // Pipes, not 'ignore': libuv opens /dev/null for an ignored descriptor, and a chroot (rpm's
  // scriptlets) may have none.
  const child = spawn('flock', ['-x', '-w', seconds, '-E', String(TIMEOUT_EXIT), '3'], { stdio: ['pipe', 'pipe', 'pipe', fd] });
  child.stdin!.end();
  child.stdout!.resume();
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise<Lock>((resolve, reject) => {
    let settled = false;
    const fail = (err: StateError): void => {
      if (settled) return;
      settled = true;
      closeSync(fd);
      reject(err);
    };
    child.once('error', (err) => fail(new StateError(file, `cannot run flock(1) to take the lock: ${err.message}`, { cause: err })));
    child.once('close', (code) => {
      if (code === TIMEOUT_EXIT) return fail(new StateError(file, `lock still held by another process after ${timeoutMs} ms`));
      if (code !== 0) return fail(new StateError(file, `flock(1) failed (exit ${code}): ${stderr.trim()}`));
      if (settled) return;
      settled = true;
      crashPoint(`lock:acquired:${basename(file)}`);
      let open = true;
      resolve({
        file,
        release() {
          if (open) closeSync(fd);
          open = false;
          return Promise.resolve();
        },
      });
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
