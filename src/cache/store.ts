// Where a kernel's cache files live and how they are read and written (format.ts says what is in
// them). A cache that is missing, unreadable, of another version, damaged, or about another kernel
// or tree is never trusted: the caller merges from the tree (it only costs time).
import { closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Fingerprint } from '../depmod/module-set.ts';
import { crashPoint, fsyncDir, sweepStaleTemps, writeDurable } from '../io/atomic.ts';
import { IoError } from '../errors.ts';
import { decodePrefix, PREFIX_BYTES } from './container.ts';
import { applyDelta, decodeBase, encodeBase, encodeDelta, type CacheContents, type CacheCounts, type DirEntry, type OpenedBase } from './format.ts';
import { cacheFile, deltaFile, DELTA_MAGIC, readWhole, refusal, stateDirs, type CacheLoad } from './meta.ts';

export { cacheFile, openCacheMeta, stateDirs, type CacheLoad } from './meta.ts';



export function fingerprintOf(path: string): Fingerprint {
  const st = statSync(path, { bigint: true });
  return { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino };
}

export function sameFingerprint(a: Fingerprint, b: Fingerprint): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino;
}

/** A loaded cache and what saving a delta on top of its base needs. */
export interface LoadedCache {
  contents: CacheContents;
  base: { file: string; generation: bigint; counts: CacheCounts; bytes: number };
  /** Base slots dropped and directories relisted since the base was written. */
  dropped: number[];
  relisted: Record<string, DirEntry[]>;
  deltaBytes: number;
}

/** The whole cache: the base's sections as views, the delta applied. */
export function loadCache(file: string, expect: { kver: string; moddir: string }): CacheLoad<LoadedCache> {
  let base: OpenedBase;
  let baseBytes: Uint8Array;
  try {
    baseBytes = readWhole(file);
    base = decodeBase(baseBytes, file);
  } catch (err) {
    return refusal(err, 'no module cache yet');
  }
  const counts = base.header.meta.counts;
  const loaded: LoadedCache = {
    contents: base.contents,
    base: { file, generation: base.header.generation, counts, bytes: baseBytes.length },
    dropped: [],
    relisted: {},
    deltaBytes: 0,
  };
  let deltaBytes: Uint8Array | undefined;
  try {
    deltaBytes = readWhole(deltaFile(file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return refusal(err, '');
  }
  if (deltaBytes !== undefined) {
    try {
      if (decodePrefix(deltaBytes.subarray(0, PREFIX_BYTES), DELTA_MAGIC, deltaFile(file)).baseGeneration === base.header.generation) {
        const d = applyDelta(base, deltaBytes, deltaFile(file));
        Object.assign(loaded, { contents: d.contents, dropped: d.dropped, relisted: d.dirEntries, deltaBytes: deltaBytes.length });
      }
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
  }
  const m = loaded.contents.meta;
  if (m.kver !== expect.kver || m.moddir !== expect.moddir) return { ok: false, reason: `module cache belongs to ${m.moddir}, not ${expect.moddir}` };
  return { ok: true, value: loaded };
}

function saveFile(file: string, bytes: Uint8Array, sweep: RegExp, label: string): void {
  const dir = dirname(file);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    sweepStaleTemps(dir, sweep);
    crashPoint(`before-${label}-temp`);
    writeDurable(tmp, bytes);
    crashPoint(`before-${label}-rename`);
    renameSync(tmp, file);
    crashPoint(`${label}:before-dir-fsync`);
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

/**
 * Saves a new base (temp file, fsync, rename, directory fsync; the delta of the old base is removed
 * after). State directories are 0755, files 0644. Crash-safe: a delta of another generation is ignored.
 */
export function saveCache(file: string, contents: CacheContents): void {
  const { bytes } = encodeBase(contents);
  saveFile(file, bytes, /^.+\.cache\.(\d+)\.tmp$/, 'cache');
  try {
    unlinkSync(deltaFile(file));
  } catch {
    /* none */
  }
}

/** Saves the changes since the loaded base as the kernel's delta. Returns its size. */
export function saveDelta(loaded: LoadedCache, contents: CacheContents, dropped: readonly number[], relisted: Record<string, DirEntry[]>): number {
  const bytes = encodeDelta({ base: { generation: loaded.base.generation, counts: loaded.base.counts }, contents, dropped, dirEntries: relisted });
  saveFile(deltaFile(loaded.base.file), bytes, /^.+\.delta\.(\d+)\.tmp$/, 'delta');
  return bytes.length;
}

export function dropCache(file: string): void {
  for (const f of [deltaFile(file), file]) {
    try {
      unlinkSync(f);
    } catch {
      /* already gone */
    }
  }
}
