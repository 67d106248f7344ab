// Where a kernel's cache files live, and the cheap look at them that every merge takes first: the
// current meta (header) of a cache, read without its body. Kept apart from the cache's full reader
// and writer (store.ts) so that the no-op path loads nothing of the module set or the database state.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../errors.ts';
import { decodeHeader, decodePrefix, PREFIX_BYTES, type ContainerPrefix } from './container.ts';
import type { CacheMeta } from './format.ts';

export const BASE_MAGIC = 'DMTXBASE';
export const DELTA_MAGIC = 'DMTXDLTA';
// 5: base + delta files with the database state and output layouts (4: one file, module set only).
export const CACHE_VERSION = 5;

export function stateDirs(root: string): { cache: string; lib: string } {
  return { cache: join(root, 'var', 'cache', 'depmod-tx'), lib: join(root, 'var', 'lib', 'depmod-tx') };
}

/** The base file of a kernel's cache (the delta is FILE.delta beside it). */
export function cacheFile(root: string, kver: string): string {
  return join(stateDirs(root).cache, `${kver}.cache`);
}

export const deltaFile = (base: string): string => base.replace(/\.cache$/, '.delta');

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
    const prefix = decodePrefix(buf.subarray(0, have), magic, file);
    sizeAsWritten(prefix.fileLength, size, file);
    const span = prefix.headerSpan;
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

/** A file cut short or grown since it was written is not the file its header describes. */
function sizeAsWritten(declared: number, size: number, file: string): void {
  if (declared !== size) throw new FormatError(file, `cache file truncated or extended: ${size} bytes on disk, ${declared} written`);
}

function readPrefix(file: string, magic: string): ContainerPrefix {
  const fd = openSync(file, 'r');
  try {
    const buf = new Uint8Array(PREFIX_BYTES);
    const prefix = decodePrefix(buf.subarray(0, readAt(fd, buf, 0, PREFIX_BYTES)), magic, file);
    sizeAsWritten(prefix.fileLength, fstatSync(fd).size, file);
    return prefix;
  } finally {
    closeSync(fd);
  }
}

export function readWhole(file: string): Uint8Array {
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

export function refusal(err: unknown, none: string): { ok: false; reason: string } {
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
    const generation = readPrefix(file, BASE_MAGIC).generation;
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

