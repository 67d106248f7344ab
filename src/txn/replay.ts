// `depmod-tx replay FILE...`: record a saved log, then commit. A file may be a saved journal
// (JSON lines, as journal.ts writes) or a plain path list (as rpm feeds file triggers); each line
// is taken on its own, so a journal with a damaged line still replays the rest, and the damaged
// line is reported with its file and line number. Plain paths are recorded as "add": the merge
// re-stats each path, so a path whose file is gone is handled as a removal anyway.
import { readFileSync } from 'node:fs';
import { FormatError, InputError } from '../errors.ts';
import { commit, type CommitSummary, type KernelMerge } from './commit.ts';
import { decodeEventLine, type EventOp, type JournalWarning } from './journal.ts';
import { recordEvents } from './record.ts';
import type { PathRefusedError } from './paths.ts';

export interface ReplayOptions {
  root: string;
  files: readonly string[];
  merge: KernelMerge;
  txn?: string;
  lockTimeoutMs?: number;
  now?: () => Date;
}

export interface ReplayResult {
  recorded: number;
  ignored: number;
  refused: PathRefusedError[];
  warnings: JournalWarning[];
  commit: CommitSummary;
}

interface Group {
  op: EventOp;
  package: string | null;
  paths: string[];
}

/**
 * Refuses, once for the whole file, a file that is neither of the two formats: its first non-blank
 * line is neither a JSON object nor an absolute path (a dpkg.log, apt's history.log, a shell
 * script). Taken line by line it would give one refusal per line and record nothing.
 */
export function assertReplayable(text: string, file: string): void {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.trim() !== '');
  if (i < 0) return;
  const first = lines[i]!.replace(/\r$/, '');
  if (first.startsWith('{') || first.startsWith('/')) return;
  const shown = first.length > 60 ? `${first.slice(0, 60)}...` : first;
  throw new FormatError(
    file,
    `not a depmod-tx journal nor a list of module paths (line ${i + 1}: ${JSON.stringify(shown)}); replay takes JSON lines as \`depmod-tx record\` writes them, or absolute module paths one per line; nothing was recorded`,
  );
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

export async function replay(opts: ReplayOptions): Promise<ReplayResult> {
  const now = opts.now ?? (() => new Date());
  const txn = opts.txn ?? `replay-${process.pid}-${now().getTime()}`;
  const out = { recorded: 0, ignored: 0, refused: [] as PathRefusedError[], warnings: [] as JournalWarning[] };
  // Every file is read and checked before anything is recorded: a bad second file records nothing.
  const texts = opts.files.map((file) => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new InputError(file, `cannot read log to replay: ${e.code ?? e.message}`, e.code, { cause: err });
    }
    assertReplayable(text, file);
    return { file, text };
  });
  for (const { file, text } of texts) {
    const p = parseReplayText(text, file);
    out.warnings.push(...p.warnings);
    for (const g of p.groups) {
      const r = await recordEvents({ root: opts.root, op: g.op, package: g.package, txn, paths: g.paths, time: now() });
      out.recorded += r.recorded;
      out.ignored += r.ignored;
      out.refused.push(...r.refused);
    }
  }
  const summary = await commit({ root: opts.root, merge: opts.merge, ...(opts.lockTimeoutMs !== undefined ? { lockTimeoutMs: opts.lockTimeoutMs } : {}), now });
  return { ...out, commit: summary };
}
