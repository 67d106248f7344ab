// `depmod-tx record`: turn the paths a package manager reports into journal events. Non-module
// paths are dropped silently (rpm and dpkg report every file of a package); escape attempts are
// refused one by one and reported, while the valid paths of the same call are still recorded, so
// one hostile path cannot make a hook lose the real work of its transaction.
import { appendEvents, DEFAULT_JOURNAL_LOCK_MS, newEventId, validateTxnId, type EventOp, type JournalEvent } from './journal.ts';
import { classifyUnderRoot, containmentChecker, PathRefusedError } from './paths.ts';

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

export async function recordEvents(req: RecordRequest): Promise<RecordResult> {
  const time = req.time ?? new Date();
  const txn = req.txn ?? defaultTxnId(time);
  validateTxnId(txn);
  const events: JournalEvent[] = [];
  const refused: PathRefusedError[] = [];
  let ignored = 0;
  const seen = new Set<string>();
  const check = containmentChecker(req.root);
  for (const path of req.paths) {
    let mp;
    try {
      mp = classifyUnderRoot(req.root, path, check);
    } catch (err) {
      if (err instanceof PathRefusedError) {
        refused.push(err);
        continue;
      }
      throw err;
    }
    if (mp === undefined) {
      ignored++;
      continue;
    }
    // The same path twice in one call is one event: the merge re-stats it either way.
    if (seen.has(mp.path)) continue;
    seen.add(mp.path);
    events.push({ op: req.op, path: mp.path, package: req.package ?? null, time: time.toISOString(), id: newEventId() });
  }
  const journal = events.length > 0 ? await appendEvents(req.root, txn, events, req.lockTimeoutMs ?? DEFAULT_JOURNAL_LOCK_MS) : undefined;
  return { txn, journal, recorded: events.length, ignored, refused };
}
