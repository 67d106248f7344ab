// libzypp's /var/log/zypp/history (zypp/HistoryLog.cc), as zypper writes it: "|"-separated
// records, local time, the action padded with spaces; lines starting with "#" are comments
// (zypper puts each package's rpm output there).
//   DATE|install|NAME|EDITION|ARCH|REQUESTED-BY|REPO-ALIAS|CHECKSUM|USERDATA|
//   DATE|remove |NAME|EDITION|ARCH|REQUESTED-BY|USERDATA|
//   DATE|command|USER@HOST|'zypper' 'install' ...|USERDATA|     and radd, rremove, patch, ...
// An upgrade is written as the new version's "install" only, so every install may have replaced
// files of an older version: "change", not "install".
import { parseLogTime } from './time.ts';
import { malformed, numberedLines, type ClientLog, type ClientLogFormat } from './client-log.ts';

const RECORD_RE = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\|([a-z-]+) *\|/;

function parse(text: string, file: string): ClientLog {
  const out: ClientLog = { changes: [], warnings: [] };
  for (const [n, l] of numberedLines(text)) {
    if (l === '' || l.startsWith('#')) continue;
    const m = RECORD_RE.exec(l);
    const time = m ? parseLogTime(m[1]!) : undefined;
    if (!m || !time) {
      out.warnings.push(malformed(file, n, 'not a zypp history record'));
      continue;
    }
    if (m[2] !== 'install' && m[2] !== 'remove') continue;
    const f = l.split('|');
    if (!f[2] || !f[3]) {
      out.warnings.push(malformed(file, n, `${m[2]} without a package name and edition`));
      continue;
    }
    out.changes.push({ time, kind: m[2] === 'install' ? 'change' : 'remove', package: f[2], arch: f[4] || null, line: n });
  }
  return out;
}

export const zyppHistory: ClientLogFormat = {
  name: 'zypp-history',
  describe: "zypper's history (/var/log/zypp/history)",
  db: 'rpm',
  recognises: (line) => RECORD_RE.test(line),
  parse,
};
