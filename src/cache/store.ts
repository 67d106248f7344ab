// Where a kernel's cache files live and how they are read and written (format.ts says what is in
// them). A cache that is missing, unreadable, of another version, damaged, or about another kernel
// or tree is never trusted: the caller merges from the tree (it only costs time).
import { closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Fingerprint } from '../depmod/module-set.ts';
import { crashPoint, fsyncDir, sweepStaleTemps, writeDurable } from '../io/atomic.ts';
import { IoError } from '../errors.ts';
import { decodeHeader, decodePrefix, PREFIX_BYTES } from './container.ts';
import { applyDelta, BASE_MAGIC, CACHE_VERSION, decodeBase, DELTA_MAGIC, encodeBase, encodeDelta, type CacheContents, type CacheCounts, type CacheMeta, type DirEntry, type OpenedBase } from './format.ts';

export function stateDirs(root: string): { cache: string; lib: string } {
  return { cache: join(root, 'var', 'cache', 'depmod-tx'), lib: join(root, 'var', 'lib', 'depmod-tx') };
}

/** The base file of a kernel's cache (the delta is FILE.delta beside it). */
export function cacheFile(root: string, kver: string): string {
  return join(stateDirs(root).cache, `${kver}.cache`);
}

const deltaFile = (base: string): string => base.replace(/\.cache$/, '.delta');

export function fingerprintOf(path: string): Fingerprint {
  const st = statSync(path, { bigint: true });
  return { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino };
}

export function sameFingerprint(a: Fingerprint, b: Fingerprint): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino;
}

export type CacheLoad<T> = { ok: true; value: T } | { ok: false; reason: string };

/** The header read first: large enough for the header of a 4,000-module kernel in one read. */
const FIRST_READ = 96 * 1024;

function readAt(fd: number, buf: Uint8Array, from: number, to: number): number {
  let pos = from;
  while (pos < to) {
    const n = readSync(fd, buf, pos, to - pos, pos);
    if (n === 0) break;
    pos += n;
  }
  return pos;
}

/** A file's first bytes through its header (magic checked), or the whole file. */
function readHead(file: string, magic: string): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    let buf = new Uint8Array(Math.min(size, FIRST_READ));
    let have = readAt(fd, buf, 0, buf.length);
    const span = decodePrefix(buf.subarray(0, have), magic, file).headerSpan;
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

function readPrefix(file: string): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    const buf = new Uint8Array(PREFIX_BYTES);
    return buf.subarray(0, readAt(fd, buf, 0, PREFIX_BYTES));
  } finally {
    closeSync(fd);
  }
}

function readWhole(file: string): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const buf = new Uint8Array(size);
    if (readAt(fd, buf, 0, size) !== size) throw new Error('cache file shrank while being read');
    return buf;
  } finally {
    closeSync(fd);
  }
}

function refusal(err: unknown, none: string): { ok: false; reason: string } {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return { ok: false, reason: none };
  return { ok: false, reason: code !== undefined ? `module cache unreadable (${code})` : (err as Error).message };
}

/**
 * The current meta of a kernel's cache: the delta's when it applies to the base, else the base's.
 * Reads the headers only (the no-op path). Refused when the cache is about another kernel or tree.
 */
export function openCacheMeta(file: string, expect: { kver: string; moddir: string }): CacheLoad<CacheMeta> {
  let meta: CacheMeta;
  try {
    // The base's generation from its fixed prefix; its header only when no delta of it exists.
    const generation = decodePrefix(readPrefix(file), BASE_MAGIC, file).generation;
    let delta: Uint8Array | undefined;
    try {
      delta = readHead(deltaFile(file), DELTA_MAGIC);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const d = delta !== undefined ? decodeHeader<{ meta: CacheMeta }>(delta, DELTA_MAGIC, CACHE_VERSION, deltaFile(file)) : undefined;
    if (d !== undefined && d.baseGeneration === generation) meta = d.meta.meta;
    else meta = decodeHeader<{ meta: CacheMeta }>(readHead(file, BASE_MAGIC), BASE_MAGIC, CACHE_VERSION, file).meta.meta;
  } catch (err) {
    return refusal(err, 'no module cache yet');
  }
  if (meta.kver !== expect.kver || meta.moddir !== expect.moddir) return { ok: false, reason: `module cache belongs to ${meta.moddir}, not ${expect.moddir}` };
  return { ok: true, value: meta };
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
