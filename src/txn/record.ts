// `depmod-tx record`: turn the paths a package manager reports into journal events. Non-module
// paths are dropped silently (rpm and dpkg report every file of a package); escape attempts are
// refused one by one and reported, while the valid paths of the same call are still recorded, so
// one hostile path cannot make a hook lose the real work of its transaction.
import { appendEvents, DEFAULT_JOURNAL_LOCK_MS, newEventId, validateTxnId, type EventOp, type JournalEvent } from './journal.ts';
import { classifyUnderRoot, containmentChecker, PathRefusedError, type ModulePath } from './paths.ts';

export interface RecordRequest {
  root: string;
  op: EventOp;
  package?: string | null;
  /** Transaction id: names the journal file. Default: `manual-<pid>-<ms>`. */
  txn?: string;
  paths: readonly string[];
  /** Event timestamp; the shell's clock by default. */
  time?: Date;
  lockTimeoutMs?: number;
}

export interface RecordResult {
  txn: string;
  journal: string | undefined;
  recorded: number;
  ignored: number;
  refused: PathRefusedError[];
}

export function defaultTxnId(now = new Date()): string {
  return `manual-${process.pid}-${now.getTime()}`;
}

/** What a batch of recorded paths became: events to journal, paths that are no modules, refused paths. */
export interface RecordedBatch {
  events: JournalEvent[];
  ignored: number;
  refused: PathRefusedError[];
}

/**
 * Turns one path of a batch into an event of `batch` (or counts it as ignored or refused). `seen`
 * makes the same path in one batch one event: the merge re-stats it either way. `check` is the
 * batch's containmentChecker (paths.ts), so what it learnt about directories serves the batch.
 */
export function addRecordedPath(
  batch: RecordedBatch,
  path: string,
  event: Omit<JournalEvent, 'path'>,
  ctx: { root: string; check: (mp: ModulePath) => void; seen: Set<string> },
): void {
  let mp;
  try {
    mp = classifyUnderRoot(ctx.root, path, ctx.check);
  } catch (err) {
    if (err instanceof PathRefusedError) {
      batch.refused.push(err);
      return;
    }
    throw err;
  }
  if (mp === undefined) {
    batch.ignored++;
    return;
  }
  if (ctx.seen.has(mp.path)) return;
  ctx.seen.add(mp.path);
  batch.events.push({ ...event, path: mp.path });
}

export async function recordEvents(req: RecordRequest): Promise<RecordResult> {
  const time = req.time ?? new Date();
  const txn = req.txn ?? defaultTxnId(time);
  validateTxnId(txn);
  const batch: RecordedBatch = { events: [], ignored: 0, refused: [] };
  const ctx = { root: req.root, check: containmentChecker(req.root), seen: new Set<string>() };
  for (const path of req.paths) addRecordedPath(batch, path, { op: req.op, package: req.package ?? null, time: time.toISOString(), id: newEventId() }, ctx);
  const journal = batch.events.length > 0 ? await appendEvents(req.root, txn, batch.events, req.lockTimeoutMs ?? DEFAULT_JOURNAL_LOCK_MS) : undefined;
  return { txn, journal, recorded: batch.events.length, ignored: batch.ignored, refused: batch.refused };
}
