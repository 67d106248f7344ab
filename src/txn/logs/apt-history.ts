// apt's /var/log/apt/history.log (apt-pkg/deb/dpkgpm.cc writes it): one block per apt run,
//   Start-Date: YYYY-MM-DD  HH:MM:SS          local time, two spaces
//   Commandline: ...  Requested-By: ...      (optional)
//   Install|Upgrade|Downgrade|Reinstall|Remove|Purge: NAME:ARCH (VERSIONS), NAME:ARCH (VERSIONS)...
//   Error: ...                               (optional)
//   End-Date: YYYY-MM-DD  HH:MM:SS
// VERSIONS is "V", "V, automatic" or "OLD, NEW". Blocks are separated by an empty line.
import { parseLogTime } from './time.ts';
import { malformed, numberedLines, splitArchQualified, type ChangeKind, type ClientLog, type ClientLogFormat } from './client-log.ts';

const START_RE = /^Start-Date: (\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d)$/;
const KINDS: Record<string, ChangeKind> = { Install: 'install', Upgrade: 'change', Downgrade: 'change', Reinstall: 'change', Remove: 'remove', Purge: 'remove' };
const FIELD_RE = /^([A-Za-z-]+): ?(.*)$/;
// "NAME:ARCH (VERSIONS)" items; versions never contain ")" (Debian policy 5.6.12).
const ITEM_RE = /\s*([^\s,()]+) \(([^)]*)\)(?:,|$)/y;

function parse(text: string, file: string): ClientLog {
  const out: ClientLog = { changes: [], warnings: [] };
  let time: Date | undefined;
  for (const [n, l] of numberedLines(text)) {
    if (l === '') {
      time = undefined;
      continue;
    }
    const start = START_RE.exec(l);
    if (start) {
      time = parseLogTime(`${start[1]} ${start[2]}`);
      if (time === undefined) out.warnings.push(malformed(file, n, 'Start-Date is not a date'));
      continue;
    }
    const f = FIELD_RE.exec(l);
    if (f === null || time === undefined) {
      out.warnings.push(malformed(file, n, time === undefined ? 'outside a Start-Date block' : 'not a history.log field'));
      continue;
    }
    const kind = KINDS[f[1]!];
    if (kind === undefined) continue;
    const items = f[2]!;
    let at = 0;
    while (at < items.length) {
      ITEM_RE.lastIndex = at;
      const m = ITEM_RE.exec(items);
      if (m === null) break;
      at = ITEM_RE.lastIndex;
      out.changes.push({ time, kind, ...splitArchQualified(m[1]!), line: n });
    }
    if (at < items.length) out.warnings.push(malformed(file, n, `${f[1]}: cannot read the package list from ${JSON.stringify(items.slice(at, at + 40))}`));
  }
  return out;
}

export const aptHistory: ClientLogFormat = {
  name: 'apt-history',
  describe: "apt's history (/var/log/apt/history.log)",
  db: 'dpkg',
  recognises: (line) => START_RE.test(line),
  parse,
};
