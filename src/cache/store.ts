// Where a kernel's module cache lives and how it is read and saved. A cache that is missing,
// unreadable, of another version, tampered with, or about another kernel/tree is never trusted:
// load returns the reason and the caller does a full parse (it only costs time).
import { closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Fingerprint } from '../depmod/module-set.ts';
import { crashPoint, fsyncDir, sweepStaleTemps, writeDurable } from '../io/atomic.ts';
import { IoError } from '../errors.ts';
import { decodeCacheBody, decodeCacheHeader, encodeCache, headerSpan, type CacheBody, type CacheContents, type CacheHeader, type VerifiedHeader } from './format.ts';

export function stateDirs(root: string): { cache: string; lib: string } {
  return { cache: join(root, 'var', 'cache', 'depmod-tx'), lib: join(root, 'var', 'lib', 'depmod-tx') };
}

export function cacheFile(root: string, kver: string): string {
  return join(stateDirs(root).cache, `${kver}.cache`);
}

export function fingerprintOf(path: string): Fingerprint {
  const st = statSync(path, { bigint: true });
  return { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino };
}

export function sameFingerprint(a: Fingerprint, b: Fingerprint): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino;
}

export type CacheLoad<T> = { ok: true; value: T } | { ok: false; reason: string };

/** A cache whose header was read and verified; the body is read only when asked for. */
export interface OpenedCache {
  file: string;
  header: CacheHeader;
  /** Reads the rest of the file and maps the body (checksum verified). */
  body(): CacheLoad<CacheBody>;
}

/** The header read first: large enough for the header of a 4,000-module kernel in one read. */
const FIRST_READ = 64 * 1024;

function readAt(fd: number, buf: Uint8Array, from: number, to: number): number {
  let pos = from;
  while (pos < to) {
    const n = readSync(fd, buf, pos, to - pos, pos);
    if (n === 0) break;
    pos += n;
  }
  return pos;
}

/**
 * Opens a kernel's cache: reads and verifies the header only (enough for the no-op path). A cache
 * that is missing, unreadable, of another format, damaged or about another kernel or tree is
 * refused with the reason; the caller then parses the tree again.
 */
export function openCache(file: string, expect: { kver: string; moddir: string }): CacheLoad<OpenedCache> {
  let verified: VerifiedHeader;
  try {
    verified = decodeCacheHeader(readHeaderBytes(file), file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: false, reason: 'no module cache yet' };
    return { ok: false, reason: code !== undefined ? `module cache unreadable (${code})` : (err as Error).message };
  }
  const { header } = verified;
  if (header.kver !== expect.kver || header.moddir !== expect.moddir) {
    return { ok: false, reason: `module cache belongs to ${header.moddir}, not ${expect.moddir}` };
  }
  return {
    ok: true,
    value: {
      file,
      header,
      // The whole file again, header included: it must be the file whose header was verified.
      body: () => {
        try {
          const bytes = readAligned(file);
          const again = decodeCacheHeader(bytes, file);
          if (JSON.stringify(again.header) !== JSON.stringify(header)) throw new Error('module cache changed while being read');
          return { ok: true, value: decodeCacheBody(bytes, file, again) };
        } catch (err) {
          return { ok: false, reason: (err as Error).message };
        }
      },
    },
  };
}

/** The file's first bytes, through its header checksum. */
function readHeaderBytes(file: string): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    let buf = new Uint8Array(Math.min(size, FIRST_READ));
    let have = readAt(fd, buf, 0, buf.length);
    const span = headerSpan(buf.subarray(0, have), file);
    if (span > have && span <= size) {
      const more = new Uint8Array(span);
      more.set(buf.subarray(0, have));
      buf = more;
      have = readAt(fd, buf, have, span);
    }
    return buf.subarray(0, have);
  } finally {
    closeSync(fd);
  }
}

/** The whole file in a fresh 8-aligned buffer (the body's columns are mapped onto it). */
function readAligned(file: string): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const buf = new Uint8Array(size);
    if (readAt(fd, buf, 0, size) !== size) throw new Error('module cache shrank while being read');
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** Saves atomically (temp file, fsync, rename, directory fsync); state directories are 0755, the file 0644. */
export function saveCache(file: string, contents: CacheContents): void {
  const bytes = encodeCache(contents);
  const dir = dirname(file);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    sweepStaleTemps(dir, /^.+\.cache\.(\d+)\.tmp$/);
    crashPoint('before-cache-temp');
    writeDurable(tmp, bytes);
    crashPoint('before-cache-rename');
    renameSync(tmp, file);
    crashPoint('cache:before-dir-fsync');
    fsyncDir(dir);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      /* may not exist */
    }
    const e = err as NodeJS.ErrnoException;
    throw new IoError(file, `cannot save module cache: ${e.message}`, e.code, { cause: err });
  }
}

export function dropCache(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    /* already gone */
  }
}
