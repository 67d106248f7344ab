// Reads, decompresses and parses one batch of module files: the body of a parse worker, and of
// the pool's in-thread path for small updates. Records are made for the database: .modinfo keeps
// only the keys depmod reads (DATABASE_MODINFO_KEYS).
import { parseModule, parseModuleFile, withLoadability } from '../module/parse.ts';
import { DATABASE_MODINFO_KEYS } from '../module/record.ts';
import { readModuleForParse } from './module-read.ts';
import { toParseOutcome, type ParseFile, type ParseOutcome } from './parse-outcome.ts';
import { decompressBatch } from './batch-decompress.ts';

const PARSE_OPTS = { modinfoKeys: DATABASE_MODINFO_KEYS };

export async function parseBatch(files: readonly ParseFile[]): Promise<ParseOutcome[]> {
  const raw = files.map((f) => {
    try {
      return readModuleForParse(f.abs);
    } catch {
      return undefined; // read again below, where the error becomes this file's outcome
    }
  });
  const unpacked = decompressBatch(raw);
  // One file at a time: an image decompressed here (gzip, Node's own zstd, fallbacks) is parsed
  // and dropped before the next is made, instead of a whole batch of images being alive at once.
  const out: ParseOutcome[] = [];
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    const image = unpacked[i];
    out.push(
      await toParseOutcome(f, async () => {
        const stored = raw[i] ?? readModuleForParse(f.abs);
        // A batch-decompressed image is parsed as it is; the stored bytes still tell whether kmod 34 could load it.
        return image !== undefined ? withLoadability(stored, parseModule(image, f.display, PARSE_OPTS)) : parseModuleFile(stored, f.display, PARSE_OPTS);
      }),
    );
    unpacked[i] = undefined;
    raw[i] = undefined;
  }
  return out;
}
