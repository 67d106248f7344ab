// A batch of module files parsed straight into module-set columns (a chunk): what a parse worker
// sends back on a cold build. Each file's reading is laid out by the module set's encoder
// (ModuleSet.addReading) as soon as it is parsed, in a set of the worker's own (symbol ids local to
// it), and its image dropped; no record object outlives its file or crosses threads. The chunk's
// arrays are transferred, not copied; the receiving thread appends them in file order
// (ModuleSet.appendChunk, parse-pool.ts parseIntoSet).
import { chunkBuffers, ModuleSet, type ModuleChunk } from '../depmod/module-set.ts';
import { readingForKmod } from '../module/parse.ts';
import { readEach } from './parse-batch.ts';
import type { ParseFailure, ParseFile } from './parse-outcome.ts';

export interface ChunkFile extends ParseFile {
  /** The module's modules.order position (ModuleSet sortIdx). */
  sortIdx: number;
}

/** A file that is not in the chunk, and why. */
export type ChunkFailure =
  | { i: number; failure: ParseFailure }
  /** kmod's depmod dies on this file (KmodAbortError): the reading's assertion and detail. */
  | { i: number; aborts: string; detail: string | undefined };

export interface ParsedChunk {
  chunk: ModuleChunk;
  /** Per file of the batch, its slot in the chunk; -1 for a file in `failures`. */
  slotOf: Int32Array;
  failures: ChunkFailure[];
}

/** Parses `files` into one chunk, each file as kmod `kmodMajor` reads it. */
export async function parseChunk(files: readonly ChunkFile[], kmodMajor: number): Promise<ParsedChunk> {
  const set = new ModuleSet(files.length);
  const slotOf = new Int32Array(files.length).fill(-1);
  // By file: a file reported again replaces its earlier report (its earlier slot is left unused).
  const failures = new Map<number, ChunkFailure>();
  await readEach(files, {
    reading: (i, fp, readings) => {
      const { reading, byKmod } = readingForKmod(readings, kmodMajor);
      failures.delete(i);
      slotOf[i] = -1;
      if (reading.kmodAborts !== undefined) failures.set(i, { i, aborts: reading.kmodAborts, detail: reading.loadDetail });
      else slotOf[i] = set.addReading(files[i]!.display, fp, reading, readings.zstdUnsized === true, files[i]!.sortIdx, byKmod);
    },
    failure: (i, failure) => {
      slotOf[i] = -1;
      failures.set(i, { i, failure });
    },
  });
  return { chunk: set.toChunk(), slotOf, failures: [...failures.values()] };
}

/** The buffers postMessage moves instead of copying. */
export function parsedChunkTransfer(p: ParsedChunk): ArrayBuffer[] {
  return [...chunkBuffers(p.chunk), p.slotOf.buffer as ArrayBuffer];
}
