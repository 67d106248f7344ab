// pacman's /var/log/pacman.log (libalpm's log callback): one line per message,
//   [2026-12-01T10:25:32+0000] [ALPM] installed NAME (VERSION)
//   [...] [ALPM] upgraded|downgraded NAME (OLD -> NEW)      reinstalled NAME (VERSION)
//   [...] [ALPM] removed NAME (VERSION)
//   [...] [PACMAN] Running '...'   [...] [ALPM-SCRIPTLET] hook output   [...] [ALPM] transaction started
// pacman 6 writes ISO 8601 with the offset; pacman 5 and older "[YYYY-MM-DD HH:MM]" in local time.
// A message that continues on the next line (hook output with a newline) has no prefix.
import { parseLogTime } from './time.ts';
import { malformed, numberedLines, type ChangeKind, type ClientLog, type ClientLogFormat } from './client-log.ts';

const LINE_RE = /^\[(\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d)?(?:Z|[+-]\d\d:?\d\d)?)\] \[([A-Z-]+)\] (.*)$/;
const CHANGE_RE = /^(installed|upgraded|downgraded|reinstalled|removed) (\S+) \(/;
const KINDS: Record<string, ChangeKind> = { installed: 'install', upgraded: 'change', downgraded: 'change', reinstalled: 'change', removed: 'remove' };

function parse(text: string, file: string): ClientLog {
  const out: ClientLog = { changes: [], warnings: [] };
  for (const [n, l] of numberedLines(text)) {
    const m = LINE_RE.exec(l);
    // Not a new message: a continuation of the previous one (multi-line hook or scriptlet output).
    if (m === null || m[2] !== 'ALPM') continue;
    const c = CHANGE_RE.exec(m[3]!);
    const time = parseLogTime(m[1]!);
    if (c === null) continue;
    if (time === undefined) {
      out.warnings.push(malformed(file, n, 'the time is not a date'));
      continue;
    }
    out.changes.push({ time, kind: KINDS[c[1]!]!, package: c[2]!, arch: null, line: n });
  }
  return out;
}

export const pacmanLog: ClientLogFormat = {
  name: 'pacman-log',
  describe: "pacman's log (/var/log/pacman.log)",
  db: 'pacman',
  recognises: (line) => LINE_RE.test(line),
  parse,
};
