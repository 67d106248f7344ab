// Reads, decompresses and parses one batch of module files: the body of a parse worker, and of
// the pool's in-thread path for small updates. Records are made for the database: .modinfo keeps
// only the keys depmod reads (DATABASE_MODINFO_KEYS). A file that cannot be read is a record too
// (kmod's "failed to load symbols from PATH: strerror"), except one that is gone: the merge must
// look at the tree again then (src/merge/merge.ts vanished).
import { failedReading, parseModuleFile, recordFromLoad } from '../module/parse.ts';
import { modnameFromPath } from '../module/decompress.ts';
import { wholeStreamLoad } from '../module/load.ts';
import { DATABASE_MODINFO_KEYS } from '../module/record.ts';
import { strerror } from '../module/strerror.ts';
import { readModuleForParse } from './module-read.ts';
import { toParseOutcome, type ParseFile, type ParseOutcome } from './parse-outcome.ts';
import { decompressBatch } from './batch-decompress.ts';

const PARSE_OPTS = { modinfoKeys: DATABASE_MODINFO_KEYS };

/** A read that failed: the file's record when kmod would have failed the same way, else an outcome that stops the merge. */
function readFailure(f: ParseFile, err: unknown): ParseOutcome {
  const code = (err as { code?: unknown }).code;
  const reason = err instanceof Error ? err.message : String(err);
  if (typeof code !== 'string' || code === 'ENOENT' || !/^E[A-Z0-9]+$/.test(code)) {
    return { ok: false, kind: 'io', message: `${f.display}: ${reason}`, reason, ...(typeof code === 'string' ? { errno: code } : {}) };
  }
  return { ok: true, record: { name: modnameFromPath(f.display), ...failedReading(code, `cannot read the file: ${strerror(code)}`) } };
}

export async function parseBatch(files: readonly ParseFile[]): Promise<ParseOutcome[]> {
  const raw: Array<Uint8Array | undefined> = [];
  const readErrors: unknown[] = [];
  for (const f of files) {
    try {
      raw.push(readModuleForParse(f.abs));
      readErrors.push(undefined);
    } catch (err) {
      raw.push(undefined);
      readErrors.push(err);
    }
  }
  const unpacked = decompressBatch(raw);
  // One file at a time: an image decompressed here (gzip, Node's own zstd, fallbacks) is parsed
  // and dropped before the next is made, instead of a whole batch of images being alive at once.
  const out: ParseOutcome[] = [];
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    const stored = raw[i];
    const image = unpacked[i];
    if (stored === undefined) {
      out.push(readFailure(f, readErrors[i]));
      continue;
    }
    out.push(
      await toParseOutcome(f, async () =>
        image !== undefined ? recordFromLoad(wholeStreamLoad(stored, image), f.display, PARSE_OPTS) : parseModuleFile(stored, f.display, PARSE_OPTS),
      ),
    );
    unpacked[i] = undefined;
    raw[i] = undefined;
  }
  return out;
}
