// A parse result that can cross a worker boundary: errors become plain data and are turned back
// into typed errors by the pool, so a broken module names its file whichever thread read it.
import { DecoderUnavailableError, DepmodTxError, FormatError, IoError } from '../errors.ts';
import type { ModuleRecord } from '../module/record.ts';

export interface ParseFile {
  /** Absolute path to read. */
  abs: string;
  /** Path used in messages (relative to the module directory, as the user knows it). */
  display: string;
}

export type ParseOutcome =
  | { ok: true; record: ModuleRecord }
  | { ok: false; kind: 'format' | 'io' | 'decoder'; message: string; reason: string; errno?: string };

export async function toParseOutcome(f: ParseFile, parse: () => Promise<ModuleRecord>): Promise<ParseOutcome> {
  try {
    return { ok: true, record: await parse() };
  } catch (err) {
    if (err instanceof FormatError) return { ok: false, kind: 'format', message: err.message, reason: err.reason };
    if (err instanceof DecoderUnavailableError) return { ok: false, kind: 'decoder', message: err.message, reason: err.reason };
    const code = (err as { code?: string }).code;
    if (err instanceof DepmodTxError) return { ok: false, kind: 'format', message: err.message, reason: err.message };
    const reason = err instanceof Error ? err.message : String(err);
    if (code !== undefined) return { ok: false, kind: 'io', message: `${f.display}: ${reason}`, reason, errno: code };
    return { ok: false, kind: 'format', message: `${f.display}: ${reason}`, reason };
  }
}

export function outcomeError(f: ParseFile, o: Extract<ParseOutcome, { ok: false }>): DepmodTxError {
  if (o.kind === 'decoder') return new DecoderUnavailableError(f.display, o.reason);
  return o.kind === 'io' ? new IoError(f.display, o.reason, o.errno) : new FormatError(f.display, o.reason);
}
