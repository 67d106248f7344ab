// Writes a set of files into one directory so that each file is, at every instant, either wholly
// old or wholly new: every new file goes to a temporary name in the same directory and is fsync'ed;
// only when all of them are safely on disk are they renamed over the old ones, and the directory is
// fsync'ed. A failure before the renames (ENOSPC, EROFS, EACCES) removes the temporaries and leaves
// the old files untouched.
import { closeSync, fchmodSync, fsync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { IoError } from '../errors.ts';

export interface AtomicWriteResult {
  /** Names whose content changed (and were written). */
  written: string[];
  /** Names whose content was already identical (left untouched, mtime kept). */
  unchanged: string[];
}

const crashCounts = new Map<string, number>();

/**
 * Test hook: DEPMOD_TX_CRASH_AT=<step> kills the process the first time it reaches that step,
 * `<step>#<n>` the n-th time (a step such as a lock taken several times per run). See test/reliability.
 * DEPMOD_TX_FAULT_AT=<step> throws an untyped error there instead: what a bug looks like (exit 70).
 */
export function crashPoint(step: string): void {
  if (process.env.DEPMOD_TX_FAULT_AT === step) throw new Error(`fault injected at ${step} (DEPMOD_TX_FAULT_AT)`);
  const at = process.env.DEPMOD_TX_CRASH_AT;
  if (at === undefined || !at.startsWith(step)) return;
  const n = (crashCounts.get(step) ?? 0) + 1;
  crashCounts.set(step, n);
  if (at === step || at === `${step}#${n}`) process.kill(process.pid, 'SIGKILL');
}

/** Whether process `pid` exists (EPERM: it does, as another user's). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temporaries a killed process left in `dir`: names matching `pattern`, whose first capture
 * group is the writer's pid, when that pid no longer runs. A live writer's temporaries are its own.
 */
export function sweepStaleTemps(dir: string, pattern: RegExp): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const m = pattern.exec(n);
    if (m === null || m[1] === undefined) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    try {
      unlinkSync(join(dir, n));
    } catch {
      /* raced with another sweeper */
    }
  }
}

/** Temporaries of writeFilesAtomically: `.NAME.depmod-tx-PID.tmp`. */
export const OUTPUT_TEMP_RE = /^\..+\.depmod-tx-(\d+)\.tmp$/;

function sameContent(path: string, bytes: Uint8Array): boolean {
  try {
    const old = readFileSync(path);
    return old.length === bytes.length && Buffer.compare(old, bytes) === 0;
  } catch {
    return false;
  }
}

function ioError(path: string, what: string, err: unknown): IoError {
  const e = err as NodeJS.ErrnoException;
  return new IoError(path, `${what}: ${e.message ?? String(err)}`, e.code, { cause: err });
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes one buffer to a new file and fsyncs it; mode 0644 like depmod's outputs, whatever the
 * umask: open()'s mode is masked by it (under `umask 077` a 0600 modules.dep breaks modinfo and
 * modprobe for users; kmod master fchmods its temporary files for the same reason).
 */
export function writeDurable(path: string, bytes: Uint8Array, mode = 0o644): void {
  const fd = openSync(path, 'wx', mode);
  try {
    writeAll(fd, bytes, mode);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array, mode = 0o644): void {
  fchmodSync(fd, mode);
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
}

/** fsync(2) on libuv's thread pool: several files' syncs overlap (ext4 commits them together). */
function fsyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err === null ? resolve() : reject(err))));
}

/**
 * Writes every changed file to a temporary name, fsyncs them all at once, then renames them into
 * place and fsyncs the directory. `old`: the files' current contents when the caller holds them
 * (not read again).
 */
export async function writeFilesAtomically(
  dir: string,
  files: Map<string, Uint8Array>,
  opts: { onlyChanged?: boolean; old?: ReadonlyMap<string, Uint8Array> } = {},
): Promise<AtomicWriteResult> {
  const onlyChanged = opts.onlyChanged ?? true;
  const written: string[] = [];
  const unchanged: string[] = [];
  const temps: Array<[tmp: string, final: string]> = [];
  const open: Array<{ fd: number; final: string }> = [];
  sweepStaleTemps(dir, OUTPUT_TEMP_RE);
  try {
    for (const [name, bytes] of files) {
      const final = join(dir, name);
      const known = opts.old?.get(name);
      if (onlyChanged && (known !== undefined ? Buffer.compare(known, bytes) === 0 : sameContent(final, bytes))) {
        unchanged.push(name);
        continue;
      }
      const tmp = join(dir, `.${name}.depmod-tx-${process.pid}.tmp`);
      crashPoint(`before-temp:${name}`);
      try {
        const fd = openSync(tmp, 'wx', 0o644);
        temps.push([tmp, final]);
        open.push({ fd, final });
        writeAll(fd, bytes);
      } catch (err) {
        throw ioError(final, 'cannot write new version', err);
      }
      written.push(name);
    }
    await Promise.all(open.map(({ fd, final }) => fsyncAsync(fd).catch((err: unknown) => Promise.reject(ioError(final, 'cannot write new version', err)))));
    for (const name of written) crashPoint(`after-temp:${name}`);
  } catch (err) {
    for (const [tmp] of temps) {
      try {
        unlinkSync(tmp);
      } catch {
        /* best effort: the temporaries carry a private name and are harmless */
      }
    }
    throw err;
  } finally {
    for (const { fd } of open) closeSync(fd);
  }
  for (const [tmp, final] of temps) {
    crashPoint(`before-rename:${final.slice(dir.length + 1)}`);
    try {
      renameSync(tmp, final);
    } catch (err) {
      throw ioError(final, 'cannot rename new version into place', err);
    }
    crashPoint(`after-rename:${final.slice(dir.length + 1)}`);
  }
  if (temps.length > 0) {
    crashPoint('before-dir-fsync');
    fsyncDir(dir);
  }
  return { written, unchanged };
}
