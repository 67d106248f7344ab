// Parses many module files across all cores with worker_threads. Small jobs (an incremental
// update touching a handful of modules) are parsed in the calling thread: starting workers costs
// more than it saves below a few dozen files.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ModuleRecord } from '../module/record.ts';
import { outcomeError, type ParseFile, type ParseOutcome } from './parse-outcome.ts';

export interface ParseJob {
  id: number;
  files: ParseFile[];
}
export interface ParseReply {
  id: number;
  results: ParseOutcome[];
}

export interface ParseOptions {
  /** Worker count; default: available cores. 0 parses in this thread. */
  workers?: number;
  /** Called after each finished batch with (done, total), for a progress bar. */
  onProgress?: (done: number, total: number) => void;
}

const INLINE_BELOW = 48;
// Large enough that a batch of .xz or .zst files costs one xz(1) or zstd(1) run of a few MB (see batch-decompress.ts), small
// enough that ~4,000 modules still spread evenly over the workers.
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
  const cores = opts.workers ?? Math.max(1, availableParallelism());
  if (cores === 0 || files.length < INLINE_BELOW) return parseInline(files, opts);
  return parseInWorkers(files, Math.min(cores, Math.ceil(files.length / BATCH)), opts);
}

async function parseInline(files: ParseFile[], opts: ParseOptions): Promise<ParseOutcome[]> {
  const { parseBatch } = await import('./parse-batch.ts');
  const out = await parseBatch(files);
  opts.onProgress?.(out.length, files.length);
  return out;
}

function parseInWorkers(files: ParseFile[], nWorkers: number, opts: ParseOptions): Promise<ParseOutcome[]> {
  const out: ParseOutcome[] = new Array(files.length);
  const { url, workerData } = workerEntry();
  let next = 0;
  let done = 0;
  let jobId = 0;
  const starts = new Map<number, number>();
  const workers: Worker[] = [];

  return new Promise((resolve, reject) => {
    let failed = false;
    const finish = (err?: unknown): void => {
      for (const w of workers) void w.terminate();
      if (err) reject(err);
      else resolve(out);
    };
    const feed = (w: Worker): void => {
      if (next >= files.length) return;
      const id = jobId++;
      starts.set(id, next);
      const batch = files.slice(next, next + BATCH);
      next += batch.length;
      w.postMessage({ id, files: batch } satisfies ParseJob);
    };
    for (let i = 0; i < nWorkers; i++) {
      const w = new Worker(url, { workerData });
      workers.push(w);
      w.on('message', (reply: ParseReply) => {
        const start = starts.get(reply.id)!;
        for (let j = 0; j < reply.results.length; j++) out[start + j] = reply.results[j]!;
        done += reply.results.length;
        opts.onProgress?.(done, files.length);
        if (done === files.length) finish();
        else feed(w);
      });
      w.on('error', (err) => {
        if (!failed) {
          failed = true;
          finish(err);
        }
      });
      feed(w);
    }
  });
}
