// Where a kernel's module cache lives and how it is read and saved. A cache that is missing,
// unreadable, of another version, tampered with, or about another kernel/tree is never trusted:
// load returns the reason and the caller does a full parse (it only costs time).
import { mkdirSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { crashPoint, fsyncDir, sweepStaleTemps, writeDurable } from '../io/atomic.ts';
import { IoError } from '../errors.ts';
import { decodeCache, decodeCacheHeader, encodeCache, type CacheContents, type CacheHeader, type FileFingerprint, type VerifiedHeader } from './format.ts';

export function stateDirs(root: string): { cache: string; lib: string } {
  return { cache: join(root, 'var', 'cache', 'depmod-tx'), lib: join(root, 'var', 'lib', 'depmod-tx') };
}

export function cacheFile(root: string, kver: string): string {
  return join(stateDirs(root).cache, `${kver}.cache`);
}

export function fingerprintOf(path: string): FileFingerprint {
  const st = statSync(path, { bigint: true });
  return { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino };
}

export function sameFingerprint(a: FileFingerprint, b: FileFingerprint): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino;
}

export type CacheLoad<T> = { ok: true; value: T; bytes: Uint8Array } | { ok: false; reason: string };

function readCacheBytes(file: string): CacheLoad<Uint8Array> {
  try {
    const bytes = readFileSync(file);
    return { ok: true, value: bytes, bytes };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, reason: code === 'ENOENT' ? 'no module cache yet' : `module cache unreadable (${code})` };
  }
}

/**
 * Header only (checksum verified): enough for the no-op path. `verified` lets the body be decoded
 * later without hashing the file again.
 */
export function loadCacheHeader(
  file: string,
  expect: { kver: string; moddir: string },
): { ok: true; value: CacheHeader; bytes: Uint8Array; verified: VerifiedHeader } | { ok: false; reason: string } {
  const raw = readCacheBytes(file);
  if (!raw.ok) return raw;
  try {
    const verified = decodeCacheHeader(raw.value, file);
    const { header } = verified;
    if (header.kver !== expect.kver || header.moddir !== expect.moddir) {
      return { ok: false, reason: `module cache belongs to ${header.moddir}, not ${expect.moddir}` };
    }
    return { ok: true, value: header, bytes: raw.value, verified };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}

export function decodeLoadedCache(bytes: Uint8Array, file: string, verified: VerifiedHeader): CacheLoad<CacheContents> {
  try {
    return { ok: true, value: decodeCache(bytes, file, verified), bytes };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
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
