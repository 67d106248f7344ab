// Exit codes of every depmod-tx command, in one place. Errors map by kind (src/errors.ts);
// the numbers follow BSD sysexits(3) so scripts can tell "your input is broken" from
// "the system refused" from "try again later". KABI under --strict is 3, as DESIGN.md fixes;
// modules kmod cannot load under --strict are 4 (and win over 3: a module without its dependencies
// is worse than a CRC warning).
// EXIT_CODES is the one table --help, the man page and README's "Exit codes" show.
import { DepmodTxError, type ErrorKind } from '../errors.ts';

export const EXIT = {
  ok: 0,
  /** --strict and the KABI check found unresolved symbols or CRC mismatches (the database was still written). */
  kabi: 3,
  /** --strict and some module files could not be read or parsed (listed without dependencies, as kmod does; the database was still written). */
  unreadable: 4,
  usage: 64, // EX_USAGE
  format: 65, // EX_DATAERR: a module, index, symvers, journal, spool or package file is malformed
  noinput: 66, // EX_NOINPUT: a named file or module directory does not exist / cannot be read
  internal: 70, // EX_SOFTWARE: a bug in depmod-tx
  io: 74, // EX_IOERR: writing failed (ENOSPC, EROFS, EACCES); the old database is left as it was
  state: 75, // EX_TEMPFAIL: lock held by another depmod-tx; retry later
  config: 78, // EX_CONFIG: depmod.d or depmod-tx configuration
} as const;

export const EXIT_CODES: ReadonlyArray<{ code: number; meaning: string }> = [
  { code: EXIT.ok, meaning: 'success' },
  { code: EXIT.kabi, meaning: '`--strict`: the KABI check found unknown symbols or CRC mismatches (in this merge or known from an earlier one); the database was still written' },
  {
    code: EXIT.unreadable,
    meaning:
      "`--strict`: some module files could not be read or parsed (kmod's \"failed to load symbols\"; in this merge or known from an earlier one); they are listed without dependencies, as kmod's depmod lists them, and the database was still written",
  },
  { code: EXIT.usage, meaning: 'usage error (unknown option, bad kernel version, a refused path)' },
  {
    code: EXIT.format,
    meaning:
      "malformed input file (a module named to `inspect` or `check`, index, symvers, journal, spool, package, a file given to replay that is no journal or path list; a module kmod's depmod aborts on); the message names the file",
  },
  { code: EXIT.noinput, meaning: 'input file or module directory missing or unreadable' },
  { code: EXIT.internal, meaning: 'internal error (a bug: please report it)' },
  { code: EXIT.io, meaning: 'write failed (disk full, read-only, permission); the old database is left as it was' },
  { code: EXIT.state, meaning: 'temporary failure (a lock held by another depmod-tx past `--lock-timeout`); retry' },
  { code: EXIT.config, meaning: 'configuration error (a `--config` path that does not exist)' },
];

const byKind: Record<ErrorKind, number> = {
  usage: EXIT.usage,
  format: EXIT.format,
  config: EXIT.config,
  noinput: EXIT.noinput,
  state: EXIT.state,
  io: EXIT.io,
  kabi: EXIT.kabi,
};

export function exitCodeForKind(kind: ErrorKind): number {
  return byKind[kind];
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof DepmodTxError) return byKind[err.kind];
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return EXIT.noinput;
  if (code === 'ENOSPC' || code === 'EROFS' || code === 'EACCES' || code === 'EPERM' || code === 'EIO') return EXIT.io;
  return EXIT.internal;
}

/** The table printed at the end of --help, wrapped to `width` with continuation lines under the text. */
export function exitCodeHelp(width = 80): string {
  const indent = 6;
  const rows = EXIT_CODES.map((e) => {
    const lines: string[] = [];
    let line = `  ${String(e.code).padEnd(3)} `;
    for (const word of e.meaning.replaceAll('`', '').split(' ')) {
      if (line.length > indent && line.length + word.length > width) {
        lines.push(line.trimEnd());
        line = ' '.repeat(indent);
      }
      line += `${word} `;
    }
    lines.push(line.trimEnd());
    return lines.join('\n');
  });
  return `Exit codes:\n${rows.join('\n')}`;
}
