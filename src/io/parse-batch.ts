// Reads, decompresses and parses one batch of module files, one file at a time: the body of a parse
// worker, and of the pool's in-thread path for small updates. readEach hands each file's readings
// (byte ranges of its image, src/module/parse.ts) to a sink as soon as the file is parsed, and
// drops the image: the records sink (parseBatch) decodes them into ModuleRecords, the column sink
// (parse-chunk.ts) lays them out in a module set. Readings are made for the database: .modinfo
// keeps only the keys depmod reads (DATABASE_MODINFO_KEYS). A file that cannot be read is a module
// kmod cannot load (kmod's "failed to load symbols from PATH: strerror"), except one that is gone:
// the merge must look at the tree again then (src/merge/merge.ts vanished).
import type { Fingerprint } from '../depmod/module-set.ts';
import { detectCompression } from '../module/decompress.ts';
import { loadModuleImages, streamedLoad, type ImageLoad } from '../module/load.ts';
import { failedRawReading, readingsFromLoad, recordFromReadings, type LoadReadings } from '../module/parse.ts';
import { DATABASE_MODINFO_KEYS } from '../module/record.ts';
import { strerror } from '../module/strerror.ts';
import { statSync } from 'node:fs';
import { readModuleFile } from './module-read.ts';
import { failureOf, readFailure, type ParseFailure, type ParseFile, type ParseOutcome } from './parse-outcome.ts';
import { startStream, streamToolFor, type StreamRun, type StreamTool } from './stream-decompress.ts';

/**
 * Where readEach puts each file's result (in any order; `i` is the file's position in the batch). A
 * file may be reported twice (a stream that failed after it is redone file by file): the later
 * report replaces the earlier.
 */
export interface ReadingSink {
  reading(i: number, fp: Fingerprint, readings: LoadReadings): void;
  failure(i: number, failure: ParseFailure): void;
}

const NO_FINGERPRINT: Fingerprint = { size: 0n, mtimeNs: 0n, ctimeNs: 0n, ino: 0n };

/** The identity of a file that could not be opened, as far as stat tells it (nothing: it is read again next time). */
function identityOfUnreadable(abs: string): Fingerprint {
  try {
    const st = statSync(abs, { bigint: true });
    return { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino };
  } catch {
    return NO_FINGERPRINT;
  }
}

/** A file given to a stream run: which one, and how to make its load from the image. */
interface Streamed {
  i: number;
  fp: Fingerprint;
  load: (image: Uint8Array) => ImageLoad;
}

/**
 * Every file of `files` through `sink`, one at a time: each file is read into this thread's read
 * buffer (module-read.ts), and a plain one, or one decompressed in-process, parsed from there; the
 * .xz/.zst files a system tool can take are written into that tool's stream (stream-decompress.ts),
 * whose images are parsed as they come out. Nothing is held per file. When a stream fails
 * somewhere, its files are read again and done one by one.
 */
export async function readEach(files: readonly ParseFile[], sink: ReadingSink): Promise<void> {
  const take = (i: number, fp: Fingerprint, load: () => ImageLoad): void => {
    const f = files[i]!;
    let readings: LoadReadings;
    try {
      readings = readingsFromLoad(load(), f.display, DATABASE_MODINFO_KEYS);
    } catch (err) {
      sink.failure(i, failureOf(f, err));
      return;
    }
    sink.reading(i, fp, readings);
  };
  /** Reads file i; undefined when it could not be (reported). */
  const read = (i: number): ReturnType<typeof readModuleFile> | undefined => {
    const f = files[i]!;
    try {
      return readModuleFile(f.abs);
    } catch (err) {
      const why = readFailure(f, err);
      if (why.ok) sink.reading(i, identityOfUnreadable(f.abs), { base: failedRawReading(why.errno, `cannot read the file: ${strerror(why.errno)}`) });
      else sink.failure(i, why);
      return undefined;
    }
  };
  /** File i alone: loaded (decompressed in-process or by a tool of its own) and parsed. */
  const alone = async (i: number, bytes: Uint8Array, fp: Fingerprint): Promise<void> => {
    let load: ImageLoad;
    try {
      load = await loadModuleImages(bytes, files[i]!.display);
    } catch (err) {
      sink.failure(i, failureOf(files[i]!, err));
      return;
    }
    take(i, fp, () => load);
  };

  const runs = new Map<StreamTool, { run: StreamRun; files: Streamed[] }>();
  for (let i = 0; i < files.length; i++) {
    const r = read(i);
    if (r === undefined) continue;
    try {
      const stream = detectCompression(r.bytes) === 'none' ? undefined : streamToolFor(r.bytes);
      if (stream === undefined) {
        await alone(i, r.bytes, r.fp);
        continue;
      }
      let s = runs.get(stream.tool);
      if (s === undefined) {
        const list: Streamed[] = [];
        const run = await startStream(stream.tool, (k, image) => {
          const f = list[k]!;
          take(f.i, f.fp, () => f.load(image));
        });
        runs.set(stream.tool, (s = { run, files: list }));
      }
      s.files.push({ i, fp: r.fp, load: streamedLoad(r.bytes) });
      await s.run.add(r.bytes, stream.size);
    } finally {
      r.release();
    }
  }
  for (const { run, files: list } of runs.values()) {
    if (await run.end()) continue;
    // The run failed somewhere: each of its files again, alone (its result replaces the stream's).
    for (const f of list) {
      const r = read(f.i);
      if (r === undefined) continue;
      try {
        await alone(f.i, r.bytes, r.fp);
      } finally {
        r.release();
      }
    }
  }
}

/** The records of a batch of files (ModuleRecord, decoded: `check`, the update path), in order. */
export async function parseBatch(files: readonly ParseFile[]): Promise<ParseOutcome[]> {
  const out: ParseOutcome[] = new Array(files.length);
  await readEach(files, {
    reading: (i, _fp, r) => {
      out[i] = { ok: true, record: recordFromReadings(r, files[i]!.display) };
    },
    failure: (i, failure) => {
      out[i] = failure;
    },
  });
  return out;
}
