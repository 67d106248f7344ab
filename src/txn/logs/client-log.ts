// What `replay` reads from a package manager's own record of its transactions: which packages were
// installed, changed or removed, and when. One parser per client's format (dpkg-log.ts,
// apt-history.ts, zypp-history.ts, dnf-history.ts, pacman-log.ts), each a pure function of the
// text; detect.ts decides which one a file is. None of these logs lists files: the packages are
// mapped to their module files through the root's package database (package-files.ts).

/** Which package database names the files of a log's packages. */
export type PackageDb = 'dpkg' | 'rpm' | 'pacman';

/**
 * install: a package that was not there before (nothing of it can have gone);
 * change: upgrade, downgrade, reinstall, or an install that may have replaced an older version
 *   (zypper's history writes an upgrade as "install"): files of the old version may be gone;
 * remove: removed or purged (its files are gone, only the tree can tell which).
 */
export type ChangeKind = 'install' | 'change' | 'remove';

export interface PackageChange {
  time: Date;
  kind: ChangeKind;
  package: string;
  /** Architecture as the log names it ("amd64", "noarch"), when it does. */
  arch: string | null;
  line: number;
}

export interface LogWarning {
  code: 'LOG_LINE_MALFORMED';
  file: string;
  line: number;
  message: string;
}

export interface ClientLog {
  changes: PackageChange[];
  warnings: LogWarning[];
}

export type ClientLogName = 'dpkg-log' | 'apt-history' | 'zypp-history' | 'dnf-history' | 'pacman-log';

export interface ClientLogFormat {
  name: ClientLogName;
  /** For messages: what the file is and where the client writes it. */
  describe: string;
  db: PackageDb;
  /** Whether a file whose first significant line is `line` is in this format. Pure. */
  recognises(line: string): boolean;
  parse(text: string, file: string): ClientLog;
}

/** Lines with 1-based numbers, a trailing CR removed. */
export function numberedLines(text: string): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((l, i) => out.push([i + 1, l.endsWith('\r') ? l.slice(0, -1) : l]));
  return out;
}

export function malformed(file: string, line: number, what: string): LogWarning {
  return { code: 'LOG_LINE_MALFORMED', file, line, message: `${file}:${line}: ${what}` };
}

/** "NAME:ARCH" as dpkg and apt print a package: the name and the architecture (null without one). */
export function splitArchQualified(qualified: string): { package: string; arch: string | null } {
  const colon = qualified.lastIndexOf(':');
  return colon > 0 ? { package: qualified.slice(0, colon), arch: qualified.slice(colon + 1) } : { package: qualified, arch: null };
}
