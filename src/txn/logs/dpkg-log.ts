// dpkg's /var/log/dpkg.log (dpkg(1), --log): one line per event, local time,
//   YYYY-MM-DD HH:MM:SS startup TYPE COMMAND
//   YYYY-MM-DD HH:MM:SS status STATE PKG INSTALLED-VERSION
//   YYYY-MM-DD HH:MM:SS ACTION PKG INSTALLED-VERSION AVAILABLE-VERSION
//   YYYY-MM-DD HH:MM:SS conffile FILENAME DECISION
// ACTION is install, upgrade, configure, trigproc, disappear, remove or purge; PKG is NAME:ARCH;
// a missing version is "<none>". Only install/upgrade/remove/purge/disappear change files.
import { localTime } from './time.ts';
import { malformed, numberedLines, splitArchQualified, type ChangeKind, type ClientLog, type ClientLogFormat } from './client-log.ts';

const LINE_RE = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) (\S+)(?: (.*))?$/;
const KNOWN = new Set(['startup', 'status', 'conffile', 'configure', 'trigproc', 'install', 'upgrade', 'remove', 'purge', 'disappear']);

function kindOf(action: string, installedVersion: string): ChangeKind | undefined {
  switch (action) {
    case 'install':
      return installedVersion === '<none>' ? 'install' : 'change';
    case 'upgrade':
      return 'change';
    case 'remove':
    case 'purge':
    case 'disappear':
      return 'remove';
    default:
      return undefined;
  }
}

function parse(text: string, file: string): ClientLog {
  const out: ClientLog = { changes: [], warnings: [] };
  for (const [n, l] of numberedLines(text)) {
    if (l === '') continue;
    const m = LINE_RE.exec(l);
    const time = m && localTime(+m[1]!, +m[2]!, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
    if (!m || !time || !KNOWN.has(m[7]!)) {
      out.warnings.push(malformed(file, n, 'not a dpkg.log line'));
      continue;
    }
    const [pkg, installed] = (m[8] ?? '').split(' ');
    const kind = kindOf(m[7]!, installed ?? '');
    if (kind === undefined) continue;
    if (!pkg) {
      out.warnings.push(malformed(file, n, `${m[7]} without a package`));
      continue;
    }
    out.changes.push({ time, kind, ...splitArchQualified(pkg), line: n });
  }
  return out;
}

export const dpkgLog: ClientLogFormat = {
  name: 'dpkg-log',
  describe: "dpkg's log (/var/log/dpkg.log)",
  db: 'dpkg',
  recognises: (line) => {
    const m = LINE_RE.exec(line);
    return m !== null && KNOWN.has(m[7]!);
  },
  parse,
};
