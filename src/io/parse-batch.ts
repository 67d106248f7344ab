// Reads, decompresses and parses one batch of module files: the body of a parse worker, and of
// the pool's in-thread path for small updates.
import { parseModuleFile } from '../module/parse.ts';
import { readModuleForParse } from './module-read.ts';
import { toParseOutcome, type ParseFile, type ParseOutcome } from './parse-outcome.ts';
import { decompressBatch } from './batch-decompress.ts';

export async function parseBatch(files: readonly ParseFile[]): Promise<ParseOutcome[]> {
  const raw = files.map((f) => {
    try {
      return readModuleForParse(f.abs);
    } catch {
      return undefined; // read again below, where the error becomes this file's outcome
    }
  });
  const unpacked = decompressBatch(raw);
  return Promise.all(
    files.map((f, i) => toParseOutcome(f, async () => parseModuleFile(unpacked[i] ?? raw[i] ?? readModuleForParse(f.abs), f.display))),
  );
}
