// What `dnf history info ID` (dnf 4, dnf/cli/output.py) prints, saved to a file; several saved
// outputs may follow each other. One block per transaction (or per merged range "A..B"):
//   Transaction ID : 3
//   Begin time     : Tue Dec  1 10:20:06 2026       strftime("%c"): run dnf with LC_ALL=C
//   ...
//   Packages Altered:
//       ACTION NEVRA @REPO                          " ** " instead of 4 spaces: not completed
//   Scriptlet output:
//      1 ...
// ACTION is Install, Dep-Install, Upgrade, Downgrade, Reinstall, Obsoleting (the new side),
// Upgraded, Downgraded, Reinstalled (the old side, whose files may be gone), Removed, Erase,
// Obsoleted, or Reason Change.
import { localTime, parseLogTime } from './time.ts';
import { malformed, numberedLines, type ChangeKind, type ClientLog, type ClientLogFormat } from './client-log.ts';

const ID_RE = /^Transaction ID\s*:\s*\d+(?:\.\.\d+)?\s*$/;
const FIELD_RE = /^([A-Za-z][A-Za-z -]*?)\s*:\s?(.*)$/;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
// The C locale's %c: "Tue Dec  1 10:20:06 2026".
const CTIME_RE = /^[A-Z][a-z]{2} ([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4})$/;
const ACTIONS: Record<string, ChangeKind | 'old-side' | 'none'> = {
  Install: 'install', 'Dep-Install': 'install', Upgrade: 'change', Downgrade: 'change', Reinstall: 'change', Obsoleting: 'change',
  Upgraded: 'old-side', Downgraded: 'old-side', Reinstalled: 'old-side',
  Removed: 'remove', Erase: 'remove', Obsoleted: 'remove', 'Reason Change': 'none',
};
const ITEM_RE = /^(?: {4}| \*\* )(Reason Change|\S+)\s+(\S+)(?:\s+\S+)?\s*$/;
// NAME-[EPOCH:]VERSION-RELEASE.ARCH
const NEVRA_RE = /^(.+)-(?:\d+:)?[^-:]+-[^-]+\.([^.]+)$/;

function beginTime(text: string): Date | undefined {
  const m = CTIME_RE.exec(text.trim());
  if (m === null) return parseLogTime(text);
  const mo = MONTHS.indexOf(m[1]!);
  return mo < 0 ? undefined : localTime(+m[6]!, mo + 1, +m[2]!, +m[3]!, +m[4]!, +m[5]!);
}

function parse(text: string, file: string): ClientLog {
  const out: ClientLog = { changes: [], warnings: [] };
  let time: Date | undefined;
  let section = '';
  for (const [n, l] of numberedLines(text)) {
    if (l.trim() === '') continue;
    if (ID_RE.test(l)) {
      time = undefined;
      section = '';
      continue;
    }
    if (!/^\s/.test(l)) {
      const f = FIELD_RE.exec(l);
      section = f?.[1] ?? '';
      if (section === 'Begin time') {
        time = beginTime(f![2]!);
        if (time === undefined) out.warnings.push(malformed(file, n, 'Begin time is not a date dnf prints in the C locale (save the output with LC_ALL=C)'));
      }
      continue;
    }
    if (section !== 'Packages Altered') continue;
    const m = ITEM_RE.exec(l);
    const action = m ? ACTIONS[m[1]!] : undefined;
    const nevra = m ? NEVRA_RE.exec(m[2]!) : null;
    if (!m || action === undefined || nevra === null || time === undefined) {
      out.warnings.push(malformed(file, n, time === undefined ? 'package line without a Begin time before it' : 'not a "Packages Altered" line (ACTION NAME-VERSION-RELEASE.ARCH @REPO)'));
      continue;
    }
    // The old side of an upgrade names the version that left; the new side names the package.
    if (action === 'none') continue;
    out.changes.push({ time, kind: action === 'old-side' ? 'change' : action, package: nevra[1]!, arch: nevra[2]!, line: n });
  }
  return out;
}

export const dnfHistory: ClientLogFormat = {
  name: 'dnf-history',
  describe: "the output of 'dnf history info ID'",
  db: 'rpm',
  recognises: (line) => ID_RE.test(line),
  parse,
};
