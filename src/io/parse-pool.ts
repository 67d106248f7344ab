// Parses many module files across all cores with worker_threads. Two kinds of jobs: records
// (ModuleRecord, structured-cloned back: `check`, the update path) and chunks (module-set columns
// in transferred buffers, appended to a set as they come: the cold build, parseIntoSet). Small jobs
// (an incremental update touching a handful of modules) are parsed in the calling thread: starting
// workers costs more than it saves below a few dozen files.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ModuleSet } from '../depmod/module-set.ts';
import type { ModuleRecord } from '../module/record.ts';
import type { ChunkFile, ParsedChunk } from './parse-chunk.ts';
import { outcomeError, type ParseFailure, type ParseFile, type ParseOutcome } from './parse-outcome.ts';

export interface ParseJob {
  id: number;
  kind: 'records';
  files: ParseFile[];
}
export interface ParseReply {
  id: number;
  results: ParseOutcome[];
}
export interface ChunkJob {
  id: number;
  kind: 'chunk';
  files: ChunkFile[];
  kmodMajor: number;
}
export interface ChunkReply extends ParsedChunk {
  id: number;
}

export interface ParseOptions {
  /** Worker count; default: available cores. 0 parses in this thread. */
  workers?: number;
  /** Called after each finished batch with (done, total), for a progress bar. */
  onProgress?: (done: number, total: number) => void;
}

const INLINE_BELOW = 48;
// Large enough that a batch of .xz or .zst files costs one xz(1) or zstd(1) run (see stream-decompress.ts),
// small enough that ~4,000 modules still spread evenly over the workers.
const BATCH = 64;

/** Where the worker code lives: the bundled build ships parse-worker.mjs next to the CLI bundle; under tsx we boot the .ts source. */
function workerEntry(): { url: URL; workerData?: unknown } {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    return {
      url: new URL('./tsx-worker-bootstrap.mjs', here),
      workerData: { entry: new URL('./parse-worker.ts', here).href },
    };
  }
  return { url: new URL('./parse-worker.mjs', here) };
}

function workerCount(files: number, opts: ParseOptions): number {
  const cores = opts.workers ?? Math.max(1, availableParallelism());
  if (cores === 0 || files < INLINE_BELOW) return 0;
  return Math.min(cores, Math.ceil(files / BATCH));
}

/**
 * Parses every file; returns records in input order. A file kmod cannot load is a record too
 * (ModuleRecord.loadError); the call rejects with a typed error naming the file only for what is
 * not the file's content: it vanished (ENOENT), a read failed without an errno, or this system has
 * no decoder for it.
 */
export async function parseModules(files: ParseFile[], opts: ParseOptions = {}): Promise<ModuleRecord[]> {
  const outcomes = await parseModulesSettled(files, opts);
  const records: ModuleRecord[] = new Array(files.length);
  for (let i = 0; i < files.length; i++) {
    const o = outcomes[i]!;
    if (!o.ok) throw outcomeError(files[i]!, o);
    records[i] = o.record;
  }
  return records;
}

/** Like parseModules, but returns each file's outcome instead of failing on the first error. */
export async function parseModulesSettled(files: ParseFile[], opts: ParseOptions = {}): Promise<ParseOutcome[]> {
  const out: ParseOutcome[] = new Array(files.length);
  const nWorkers = workerCount(files.length, opts);
  if (nWorkers === 0) {
    const { parseBatch } = await import('./parse-batch.ts');
    for (let start = 0; start < files.length; start += BATCH) {
      const r = await parseBatch(files.slice(start, start + BATCH));
      for (let j = 0; j < r.length; j++) out[start + j] = r[j]!;
      opts.onProgress?.(start + r.length, files.length);
    }
    return out;
  }
  const job = (id: number, start: number, end: number): ParseJob => ({ id, kind: 'records', files: files.slice(start, end) });
  await inWorkers<ParseReply>(files.length, nWorkers, opts, job, (start, reply) => {
    for (let j = 0; j < reply.results.length; j++) out[start + j] = reply.results[j]!;
  });
  return out;
}

/** Why parseIntoSet left files out: the first failure and the first abort in file order (index into `files`). */
export interface IntoSetResult {
  failure?: { index: number; failure: ParseFailure };
  aborts?: { index: number; assertion: string; detail: string | undefined };
}

/**
 * Parses every file into `set`: each file's module appended in file order (its slot the set's next
 * one), as kmod `kmodMajor` reads it, through chunks the workers lay out (parse-chunk.ts) and this
 * thread appends as they come, in order. A file that stops the merge (parseModules' errors) or on
 * which kmod's depmod dies is left out and reported, the first of each kind; the caller decides.
 */
export async function parseIntoSet(set: ModuleSet, files: ChunkFile[], kmodMajor: number, opts: ParseOptions = {}): Promise<IntoSetResult> {
  const result: IntoSetResult = {};
  const append = (start: number, p: ParsedChunk): void => {
    const order: number[] = [];
    for (let j = 0; j < p.slotOf.length; j++) if (p.slotOf[j]! >= 0) order.push(p.slotOf[j]!);
    set.appendChunk(p.chunk, order);
    for (const f of p.failures) {
      const index = start + f.i;
      if ('failure' in f) {
        if (result.failure === undefined || index < result.failure.index) result.failure = { index, failure: f.failure };
      } else if (result.aborts === undefined || index < result.aborts.index) result.aborts = { index, assertion: f.aborts, detail: f.detail };
    }
  };
  const nWorkers = workerCount(files.length, opts);
  if (nWorkers === 0) {
    const { parseChunk } = await import('./parse-chunk.ts');
    for (let start = 0; start < files.length; start += BATCH) {
      append(start, await parseChunk(files.slice(start, start + BATCH), kmodMajor));
      opts.onProgress?.(Math.min(files.length, start + BATCH), files.length);
    }
    return result;
  }
  // Batches finish in any order; each is appended once those before it are.
  const waiting = new Map<number, ChunkReply>();
  let next = 0;
  const job = (id: number, start: number, end: number): ChunkJob => ({ id, kind: 'chunk', files: files.slice(start, end), kmodMajor });
  await inWorkers<ChunkReply>(files.length, nWorkers, opts, job, (_start, reply) => {
    waiting.set(reply.id, reply);
    for (let r = waiting.get(next); r !== undefined; r = waiting.get(next)) {
      waiting.delete(next);
      append(next * BATCH, r);
      next++;
    }
  });
  return result;
}

/**
 * Runs the batches of `total` files (BATCH each, batch `id` starting at id * BATCH) on `nWorkers`
 * workers, each handed the next batch when it answers; `onReply` sees every answer as it comes.
 */
function inWorkers<R extends { id: number }>(
  total: number,
  nWorkers: number,
  opts: ParseOptions,
  job: (id: number, start: number, end: number) => ParseJob | ChunkJob,
  onReply: (start: number, reply: R) => void,
): Promise<void> {
  const { url, workerData } = workerEntry();
  let nextId = 0;
  let done = 0;
  const workers: Worker[] = [];
  return new Promise((resolve, reject) => {
    let finished = false;
    const finish = (err?: unknown): void => {
      if (finished) return;
      finished = true;
      for (const w of workers) void w.terminate();
      if (err !== undefined) reject(err);
      else resolve();
    };
    const feed = (w: Worker): void => {
      const start = nextId * BATCH;
      if (start >= total) return;
      w.postMessage(job(nextId++, start, Math.min(total, start + BATCH)));
    };
    for (let i = 0; i < nWorkers; i++) {
      const w = new Worker(url, { workerData });
      workers.push(w);
      w.on('message', (reply: R) => {
        const start = reply.id * BATCH;
        try {
          onReply(start, reply);
        } catch (err) {
          finish(err);
          return;
        }
        done += Math.min(BATCH, total - start);
        opts.onProgress?.(done, total);
        if (done === total) finish();
        else feed(w);
      });
      w.on('error', (err) => finish(err));
      feed(w);
    }
  });
}
