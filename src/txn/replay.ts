// `depmod-tx replay FILE...`: record a saved log, then commit. A file may be a saved journal
// (JSON lines, as journal.ts writes), a plain path list (as rpm feeds file triggers), or a package
// manager's own log (src/txn/logs: dpkg.log, apt's history.log, zypper's history, `dnf history
// info` output, pacman.log); logs/detect.ts decides which.
// Journal and path-list lines are taken one by one, so a journal with a damaged line still
// replays the rest, and the damaged line is reported with its file and line number. Plain paths
// are recorded as "add": the merge re-stats each path, so a path whose file is gone is handled as
// a removal anyway.
// A client log names packages, not files: each package still installed at the end of the
// window (--since) is recorded with its current module files from the root's package database;
// packages removed or upgraded in the window may have taken files no database lists any more, so
// then every kernel whose tree changed is merged too (scan.ts).
import { readFileSync } from 'node:fs';
import { FormatError, InputError } from '../errors.ts';
import { commit, type CommitSummary, type KernelMerge } from './commit.ts';
import { decodeEventLine, type EventOp, type JournalWarning } from './journal.ts';
import type { ClientLogFormat, LogWarning, PackageChange } from './logs/client-log.ts';
import { detectReplayInput } from './logs/detect.ts';
import { installedFiles } from './logs/package-files.ts';
import { recordEvents } from './record.ts';
import type { PathRefusedError } from './paths.ts';
import { mergeUnrecorded } from './scan.ts';

export interface ReplayOptions {
  root: string;
  files: readonly string[];
  merge: KernelMerge;
  txn?: string;
  /** Client logs: only what happened at or after this time. */
  since?: Date;
  lockTimeoutMs?: number;
  now?: () => Date;
  /** Runs after recording, before the commit: kernels to merge besides those with events (weak-updates links it changed). */
  beforeCommit?: () => Promise<ReadonlyMap<string, readonly string[]> | undefined>;
}

/** What a client log contributed. */
export interface LogReplay {
  file: string;
  format: ClientLogFormat['name'];
  /** Package changes in the window. */
  changes: number;
  /** Packages installed at the end of the window, recorded with their current files. */
  installed: string[];
  /** Packages removed in the window, or unknown to the package database now. */
  gone: string[];
}

export interface ReplayResult {
  recorded: number;
  ignored: number;
  refused: PathRefusedError[];
  warnings: Array<JournalWarning | LogWarning>;
  logs: LogReplay[];
  /** Whether kernels were scanned for changes no record names (removals, upgrades). */
  scanned: boolean;
  commit: CommitSummary;
}

interface Group {
  op: EventOp;
  package: string | null;
  paths: string[];
}

/** Splits a saved log into (op, package) groups in first-seen order. Pure apart from its input. */
export function parseReplayText(text: string, file: string): { groups: Group[]; warnings: JournalWarning[] } {
  const groups = new Map<string, Group>();
  const warnings: JournalWarning[] = [];
  const push = (op: EventOp, pkg: string | null, path: string) => {
    const k = `${op}\0${pkg ?? ''}`;
    let g = groups.get(k);
    if (g === undefined) groups.set(k, (g = { op, package: pkg, paths: [] }));
    g.paths.push(path);
  };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let l = lines[i] ?? '';
    if (l.endsWith('\r')) l = l.slice(0, -1);
    if (l.trim() === '') continue;
    if (!l.startsWith('{')) {
      push('add', null, l);
      continue;
    }
    const d = decodeEventLine(l);
    if (!d.ok) {
      warnings.push({ code: 'JOURNAL_LINE_MALFORMED', file, line: i + 1, message: `${file}:${i + 1}: ${d.reason}` });
      continue;
    }
    push(d.event.op, d.event.package, d.event.path);
  }
  return { groups: [...groups.values()], warnings };
}

/** Package changes in the window, and for each package the last one (which decides). Pure. */
export function lastChanges(changes: readonly PackageChange[], since: Date | undefined): { inWindow: PackageChange[]; last: Map<string, PackageChange> } {
  const inWindow = since === undefined ? [...changes] : changes.filter((c) => c.time.getTime() >= since.getTime());
  const last = new Map<string, PackageChange>();
  for (const c of inWindow) last.set(c.package, c);
  return { inWindow, last };
}

export async function replay(opts: ReplayOptions): Promise<ReplayResult> {
  const now = opts.now ?? (() => new Date());
  const txn = opts.txn ?? `replay-${process.pid}-${now().getTime()}`;
  const out = { recorded: 0, ignored: 0, refused: [] as PathRefusedError[], warnings: [] as Array<JournalWarning | LogWarning>, logs: [] as LogReplay[], scanned: false };
  const record = async (op: EventOp, pkg: string | null, paths: string[]) => {
    const r = await recordEvents({ root: opts.root, op, package: pkg, txn, paths, time: now() });
    out.recorded += r.recorded;
    out.ignored += r.ignored;
    out.refused.push(...r.refused);
  };
  // Every file read and recognised before anything is recorded: one bad file stops the replay whole.
  const inputs = opts.files.map((file) => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new InputError(file, `cannot read log to replay: ${e.code ?? e.message}`, e.code, { cause: err });
    }
    return { file, text, input: detectReplayInput(text, file) };
  });
  for (const { file, text, input } of inputs) {
    if (input.kind !== 'client-log') {
      const p = parseReplayText(text, file);
      out.warnings.push(...p.warnings);
      for (const g of p.groups) await record(g.op, g.package, g.paths);
      continue;
    }
    const log = input.format.parse(text, file);
    out.warnings.push(...log.warnings);
    const { inWindow, last } = lastChanges(log.changes, opts.since);
    const present = [...last.values()].filter((c) => c.kind !== 'remove');
    const found = await installedFiles(opts.root, input.format.db, present);
    for (const [pkg, paths] of found.files) await record('add', pkg, paths);
    const gone = [...[...last.values()].filter((c) => c.kind === 'remove').map((c) => c.package), ...found.missing];
    if (gone.length > 0 || inWindow.some((c) => c.kind === 'change')) out.scanned = true;
    out.logs.push({ file, format: input.format.name, changes: inWindow.length, installed: [...found.files.keys()], gone });
  }
  const extra = await opts.beforeCommit?.();
  const summary = await commit({ root: opts.root, merge: opts.merge, ...(opts.lockTimeoutMs !== undefined ? { lockTimeoutMs: opts.lockTimeoutMs } : {}), now, ...(extra ? { extra } : {}) });
  if (out.scanned) summary.kernels.push(...(await mergeUnrecorded({ root: opts.root, merge: opts.merge, done: summary.kernels.map((k) => k.kver) })));
  return { ...out, commit: summary };
}
