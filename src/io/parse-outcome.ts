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

export type ParseFailure = Extract<ParseOutcome, { ok: false }>;

/** What stops a merge about `f`, from what was thrown while loading or parsing it. */
export function failureOf(f: ParseFile, err: unknown): ParseFailure {
  if (err instanceof FormatError) return { ok: false, kind: 'format', message: err.message, reason: err.reason };
  if (err instanceof DecoderUnavailableError) return { ok: false, kind: 'decoder', message: err.message, reason: err.reason };
  const code = (err as { code?: string }).code;
  if (err instanceof DepmodTxError) return { ok: false, kind: 'format', message: err.message, reason: err.message };
  const reason = err instanceof Error ? err.message : String(err);
  if (code !== undefined) return { ok: false, kind: 'io', message: `${f.display}: ${reason}`, reason, errno: code };
  return { ok: false, kind: 'format', message: `${f.display}: ${reason}`, reason };
}

/**
 * A file that could not be read: its errno when kmod would have failed the same way (the file is
 * then a module kmod cannot load), else what stops the merge (it vanished: the merge must look at
 * the tree again, src/merge/merge.ts vanished; a failure without an errno).
 */
export function readFailure(f: ParseFile, err: unknown): { ok: true; errno: string } | ParseFailure {
  const code = (err as { code?: unknown }).code;
  const reason = err instanceof Error ? err.message : String(err);
  if (typeof code !== 'string' || code === 'ENOENT' || !/^E[A-Z0-9]+$/.test(code)) {
    return { ok: false, kind: 'io', message: `${f.display}: ${reason}`, reason, ...(typeof code === 'string' ? { errno: code } : {}) };
  }
  return { ok: true, errno: code };
}

export function outcomeError(f: ParseFile, o: Extract<ParseOutcome, { ok: false }>): DepmodTxError {
  if (o.kind === 'decoder') return new DecoderUnavailableError(f.display, o.reason);
  return o.kind === 'io' ? new IoError(f.display, o.reason, o.errno) : new FormatError(f.display, o.reason);
}
