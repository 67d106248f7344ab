// The journal: what package transactions touched, waiting for a commit.
//
// Layout: ROOT/var/lib/depmod-tx/journal/TXID.jsonl, one JSON object per line:
//   {"op":"add"|"remove","path":"/lib/modules/KVER/...","package":"NAME","time":"ISO-8601","id":"HEX"}
// Files 0644, directories 0755. `id` is unique per event; a line without one (written by hand) is
// identified by its exact text. Not a kmod format: kmod has no journal.
//
// Removal of processed entries. One file per transaction holds events of every kernel it touched,
// and kernels commit in parallel, so removal cannot be "delete the file" nor "truncate to the
// offset we read": each commit removes exactly the ids it merged, by rewriting the file's remaining
// lines to a temporary name and renaming it over the original (unlink when nothing remains).
// Every append and every rewrite runs under the journal lock, so an append can never land in an
// inode that a rewrite is replacing. Appends are O_APPEND + fsync; a line left half-written by a
// killed recorder is reported as malformed once and moved to journal/rejected/TXID.jsonl on the
// next rewrite, never silently lost; the next append starts on a fresh line.
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { IoError, UsageError } from '../errors.ts';
import { crashPoint, fsyncDir, sweepStaleTemps, writeDurable } from '../io/atomic.ts';
import { stateDirs } from '../cache/meta.ts';
import { withLock } from '../io/lock.ts';
import { classifyModulePath, PathRefusedError, type ModulePath } from './paths.ts';

/** The journal's lock: held for milliseconds around an append or a rewrite. */
export function journalLockFile(root: string): string {
  return join(stateDirs(root).lib, 'journal.lock');
}

export type EventOp = 'add' | 'remove';

export interface JournalEvent {
  op: EventOp;
  path: string;
  package: string | null;
  time: string;
  id: string;
}

/** An event read back, with where it came from. */
export interface PendingEvent extends JournalEvent {
  file: string;
  line: number;
  /** Identity used to remove exactly this line later. */
  key: string;
  /** The line as stored, so a rewrite keeps the events it does not remove byte for byte. */
  raw: string;
  module: ModulePath;
}

/** A coded warning (node-tar style): the input is damaged but the rest is still processed. */
export interface JournalWarning {
  code: 'JOURNAL_LINE_MALFORMED' | 'JOURNAL_UNREADABLE';
  file: string;
  line?: number;
  message: string;
}

export const DEFAULT_JOURNAL_LOCK_MS = 30_000;

export function journalDir(root: string): string {
  return join(stateDirs(root).lib, 'journal');
}

const TXN_RE = /^[A-Za-z0-9_+:@-][A-Za-z0-9_.+:@-]{0,127}$/;

export function validateTxnId(txn: string): void {
  if (!TXN_RE.test(txn)) throw new UsageError(`transaction id ${JSON.stringify(txn)}: use 1-128 of [A-Za-z0-9_.+:@-], not starting with '.'`);
}

export function newEventId(): string {
  return randomBytes(8).toString('hex');
}

export function formatEvent(e: JournalEvent): string {
  return JSON.stringify({ op: e.op, path: e.path, package: e.package, time: e.time, id: e.id }) + '\n';
}

/** Reasons a decoded line is not a usable event, or the event. Pure. */
export function decodeEventLine(text: string): { ok: true; event: JournalEvent; module: ModulePath } | { ok: false; reason: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `not JSON (${(err as Error).message})` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, reason: 'not a JSON object' };
  const o = v as Record<string, unknown>;
  if (o.op !== 'add' && o.op !== 'remove') return { ok: false, reason: `"op" must be "add" or "remove"` };
  if (typeof o.path !== 'string') return { ok: false, reason: `"path" must be a string` };
  if (o.package !== undefined && o.package !== null && typeof o.package !== 'string') return { ok: false, reason: `"package" must be a string` };
  if (o.id !== undefined && typeof o.id !== 'string') return { ok: false, reason: `"id" must be a string` };
  let module: ModulePath | undefined;
  try {
    module = classifyModulePath(o.path);
  } catch (err) {
    if (err instanceof PathRefusedError) return { ok: false, reason: err.message };
    throw err;
  }
  if (module === undefined) return { ok: false, reason: `${JSON.stringify(o.path)} is not a kernel module under (/usr)/lib/modules/KVER/` };
  const event: JournalEvent = {
    op: o.op,
    path: o.path,
    package: typeof o.package === 'string' ? o.package : null,
    time: typeof o.time === 'string' ? o.time : '',
    id: typeof o.id === 'string' ? o.id : '',
  };
  return { ok: true, event, module };
}

/** Splits one journal file's text into events and warnings (line numbers 1-based). Pure. */
export function parseJournalText(text: string, file: string): { events: PendingEvent[]; warnings: JournalWarning[]; malformed: string[] } {
  const events: PendingEvent[] = [];
  const warnings: JournalWarning[] = [];
  const malformed: string[] = [];
  const lines = text.split('\n');
  // A final piece without '\n' is a line cut short by a killed writer; it is still a line.
  if (lines[lines.length - 1] === '') lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] ?? '';
    if (raw.trim() === '') continue;
    const d = decodeEventLine(raw);
    if (!d.ok) {
      warnings.push({ code: 'JOURNAL_LINE_MALFORMED', file, line: i + 1, message: `${file}:${i + 1}: ${d.reason}` });
      malformed.push(raw);
      continue;
    }
    events.push({ ...d.event, file, line: i + 1, key: d.event.id !== '' ? `id:${d.event.id}` : `text:${raw}`, raw, module: d.module });
  }
  return { events, warnings, malformed };
}

function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
}

function journalFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new IoError(dir, `cannot list journal: ${(err as Error).message}`, (err as NodeJS.ErrnoException).code, { cause: err });
  }
  return names.filter((n) => n.endsWith('.jsonl') && !n.startsWith('.')).sort().map((n) => join(dir, n));
}

function appendLocked(file: string, text: string): void {
  const fd = openSync(file, 'a+', 0o644);
  try {
    let data = Buffer.from(text, 'utf8');
    const size = fstatSync(fd).size;
    if (size > 0) {
      const last = Buffer.alloc(1);
      readSync(fd, last, 0, 1, size - 1);
      if (last[0] !== 0x0a) data = Buffer.concat([Buffer.from('\n'), data]);
    }
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    crashPoint('journal:before-append-fsync');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Appends events to journal/TXID.jsonl, durably, under the journal lock. */
export async function appendEvents(root: string, txn: string, events: readonly JournalEvent[], lockTimeoutMs = DEFAULT_JOURNAL_LOCK_MS): Promise<string> {
  validateTxnId(txn);
  const dir = journalDir(root);
  const file = join(dir, `${txn}.jsonl`);
  if (events.length === 0) return file;
  ensureDir(dir);
  const text = events.map(formatEvent).join('');
  await withLock(journalLockFile(root), lockTimeoutMs, () => {
    try {
      appendLocked(file, text);
      crashPoint('journal:before-append-dir-fsync');
      fsyncDir(dir);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new IoError(file, `cannot append to journal: ${e.message}`, e.code, { cause: err });
    }
  });
  return file;
}

export interface JournalSnapshot {
  events: PendingEvent[];
  warnings: JournalWarning[];
}

function readAllUnlocked(root: string): JournalSnapshot {
  const events: PendingEvent[] = [];
  const warnings: JournalWarning[] = [];
  for (const file of journalFiles(journalDir(root))) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      warnings.push({ code: 'JOURNAL_UNREADABLE', file, message: `${file}: cannot read: ${(err as Error).message}` });
      continue;
    }
    const p = parseJournalText(text, file);
    events.push(...p.events);
    warnings.push(...p.warnings);
  }
  return { events, warnings };
}

/** Every pending event of every transaction, read under the journal lock (a consistent snapshot). */
export async function readJournal(root: string, lockTimeoutMs = DEFAULT_JOURNAL_LOCK_MS): Promise<JournalSnapshot> {
  if (journalFiles(journalDir(root)).length === 0) return { events: [], warnings: [] };
  return withLock(journalLockFile(root), lockTimeoutMs, () => readAllUnlocked(root));
}

/**
 * Removes exactly the given events (by key, per file) from the journal, under the journal lock.
 * Malformed lines met on the way move to journal/rejected/ (they were reported when read).
 */
export async function removeEvents(root: string, processed: readonly PendingEvent[], lockTimeoutMs = DEFAULT_JOURNAL_LOCK_MS): Promise<void> {
  if (processed.length === 0) return;
  const byFile = new Map<string, Set<string>>();
  for (const e of processed) {
    let s = byFile.get(e.file);
    if (s === undefined) byFile.set(e.file, (s = new Set()));
    s.add(e.key);
  }
  const dir = journalDir(root);
  await withLock(journalLockFile(root), lockTimeoutMs, () => {
    sweepStaleTemps(dir, /^\..+\.jsonl\.(\d+)\.tmp$/);
    for (const [file, keys] of byFile) {
      const base = file.slice(dir.length + 1);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw new IoError(file, `cannot read journal: ${(err as Error).message}`, (err as NodeJS.ErrnoException).code, { cause: err });
      }
      const parsed = parseJournalText(text, file);
      const keep = parsed.events.filter((e) => !keys.has(e.key));
      try {
        if (parsed.malformed.length > 0) {
          const rej = join(dir, 'rejected');
          crashPoint(`journal:before-reject:${base}`);
          ensureDir(rej);
          appendLocked(join(rej, file.slice(dir.length + 1)), parsed.malformed.map((l) => l + '\n').join(''));
        }
        if (keep.length === 0) {
          crashPoint(`journal:before-unlink:${base}`);
          unlinkSync(file);
        } else {
          const tmp = join(dir, `.${file.slice(dir.length + 1)}.${process.pid}.tmp`);
          try {
            unlinkSync(tmp);
          } catch {
            /* left over from a killed commit of this pid number, or absent */
          }
          crashPoint(`journal:before-rewrite-temp:${base}`);
          writeDurable(tmp, Buffer.from(keep.map((e) => e.raw + '\n').join(''), 'utf8'));
          crashPoint(`journal:before-rewrite-rename:${base}`);
          renameSync(tmp, file);
        }
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new IoError(file, `cannot rewrite journal: ${e.message}`, e.code, { cause: err });
      }
    }
    crashPoint('journal:before-dir-fsync');
    fsyncDir(dir);
  });
}
