// Exit codes of every depmod-tx command, in one place. Errors map by kind (src/errors.ts);
// the numbers follow BSD sysexits(3) so scripts can tell "your input is broken" from
// "the system refused" from "try again later". KABI under --strict is 3, as DESIGN.md fixes.
import { DepmodTxError, type ErrorKind } from '../errors.ts';

export const EXIT = {
  ok: 0,
  /** --strict and the KABI check found unresolved symbols or CRC mismatches (the database was still written). */
  kabi: 3,
  usage: 64, // EX_USAGE
  format: 65, // EX_DATAERR: a module, index, symvers, journal or package file is malformed
  noinput: 66, // EX_NOINPUT: a named file or module directory does not exist / cannot be read
  internal: 70, // EX_SOFTWARE: a bug in depmod-tx
  io: 74, // EX_IOERR: writing failed (ENOSPC, EROFS, EACCES); the old database is left as it was
  state: 75, // EX_TEMPFAIL: lock held too long, cache/journal state problem; retry later
  config: 78, // EX_CONFIG: depmod.d or depmod-tx configuration
} as const;

const byKind: Record<ErrorKind, number> = {
  usage: EXIT.usage,
  format: EXIT.format,
  config: EXIT.config,
  state: EXIT.state,
  io: EXIT.io,
  kabi: EXIT.kabi,
};

export function exitCodeFor(err: unknown): number {
  if (err instanceof DepmodTxError) return byKind[err.kind];
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return EXIT.noinput;
  if (code === 'ENOSPC' || code === 'EROFS' || code === 'EACCES' || code === 'EPERM' || code === 'EIO') return EXIT.io;
  return EXIT.internal;
}

/** The table printed by --help and copied into the README. */
export const EXIT_CODE_HELP = `Exit codes:
  0   success
  3   --strict: KABI check failed (unknown symbols or CRC mismatches); database still written
  64  usage error
  65  malformed input file (module, index, symvers, journal, package)
  66  input file or module directory missing or unreadable
  70  internal error (a bug: please report)
  74  write failed (disk full, read-only, permission); the old database is left as it was
  75  temporary failure (lock held by another depmod-tx); retry
  78  configuration error (depmod.d)`;
