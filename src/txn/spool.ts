// The spool: what the package managers' hooks collected in shell, before any Node.js process runs
// (hooks/depmod-tx-hook). A transaction that touches no module file starts no Node.js process, so
// the hooks cannot call `depmod-tx record`; they write here, and the commit at the end of the
// transaction (the one Node.js process) ingests the spool into the journal (journal.ts) first.
//
// Layout: ROOT/var/lib/depmod-tx/spool/, one file per hook call, 0644:
//   NS-PID.SOURCE.spool   a complete file (NS: the hook's clock in ns, which orders the files;
//                         PID: the hook's pid; SOURCE: rpm, apt, pacman)
//   .PID.tmp              being written by hook PID; renamed to the name above once complete. One
//                         whose PID is gone was left by a killed hook: removed, and the commit
//                         merges every kernel whose tree changed (the scan finds what it named)
// Text, one record per line:
//   depmod-tx-spool 1 SOURCE      magic, format version, who wrote it
//   add PACKAGE PATH              PATH (the rest of the line, spaces kept) is installed by PACKAGE
//   remove PACKAGE PATH           PATH is taken away by PACKAGE
//   deb PACKAGE FILE              apt: the .deb PACKAGE unpacks; its payload's paths are adds, listed
//                                 here at ingest (the .deb stays in apt's cache until the run ends)
//   end COUNT                     COUNT record lines came before: the file is complete
// PACKAGE is `-` when unknown. A file without the magic, of another version, with a line that is no
// record, or without a matching `end` line is torn or foreign: it is never half-read. The commit moves
// it to spool/rejected/ (kept for inspection), reports a FormatError naming it (exit 65) and scans.
// Not a kmod format.
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { stateDirs } from '../cache/meta.ts';
import { DepmodTxError, FormatError, InputError } from '../errors.ts';
import { crashPoint, pidAlive } from '../io/atomic.ts';
import { appendEvents, DEFAULT_JOURNAL_LOCK_MS } from './journal.ts';
import { containmentChecker, type PathRefusedError } from './paths.ts';
import { addRecordedPath, type RecordedBatch } from './record.ts';

export const SPOOL_MAGIC = 'depmod-tx-spool';
export const SPOOL_VERSION = 1;

export type SpoolOp = 'add' | 'remove' | 'deb';

export interface SpoolRecord {
  op: SpoolOp;
  /** null for `-`. */
  package: string | null;
  path: string;
  /** 1-based line number in the file. */
  line: number;
}

export interface SpoolFile {
  source: string;
  records: SpoolRecord[];
}

/** NS-PID.SOURCE.spool: complete files. */
const SPOOL_NAME = /^([0-9]{1,20})-([0-9]{1,10})\.([a-z][a-z0-9-]{0,31})\.spool$/;
/** .PID.tmp: being written by PID. */
const TEMP_NAME = /^\.([0-9]{1,10})\.tmp$/;

export function spoolDir(root: string): string {
  return join(stateDirs(root).lib, 'spool');
}

/** Parses one spool file's text; throws FormatError naming `file` when it is torn or foreign. Pure. */
export function parseSpool(text: string, file: string): SpoolFile {
  const lines = text.split('\n');
  // A complete file ends with "end COUNT\n": the split leaves one empty piece after it.
  if (lines.length < 3 || lines[lines.length - 1] !== '') throw new FormatError(file, 'torn spool file: it does not end with a complete "end" line');
  lines.pop();
  const head = /^depmod-tx-spool ([0-9]+) ([a-z][a-z0-9-]{0,31})$/.exec(lines[0] ?? '');
  if (head === null) throw new FormatError(file, `not a depmod-tx spool file (line 1 is not "${SPOOL_MAGIC} VERSION SOURCE")`);
  if (Number(head[1]) !== SPOOL_VERSION) throw new FormatError(file, `spool format version ${head[1]} (this depmod-tx reads ${SPOOL_VERSION})`);
  const tail = /^end ([0-9]{1,9})$/.exec(lines[lines.length - 1] ?? '');
  if (tail === null) throw new FormatError(file, 'torn spool file: the last line is not "end COUNT"');
  const records: SpoolRecord[] = [];
  for (let i = 1; i < lines.length - 1; i++) {
    const m = /^(add|remove|deb) (\S+) (\/.*)$/.exec(lines[i]!);
    if (m === null) throw new FormatError(file, `line ${i + 1}: not a spool record (OP PACKAGE /PATH)`);
    records.push({ op: m[1] as SpoolOp, package: m[2] === '-' ? null : m[2]!, path: m[3]!, line: i + 1 });
  }
  if (records.length !== Number(tail[1])) throw new FormatError(file, `torn spool file: "end ${tail[1]}" after ${records.length} record(s)`);
  return { source: head[2]!, records };
}

export interface SpoolIngest {
  /** Spool files ingested into the journal. */
  files: number;
  recorded: number;
  ignored: number;
  refused: PathRefusedError[];
  /** Spool files refused (torn, foreign), .deb files that could not be listed: the message names the file. */
  errors: DepmodTxError[];
  /** Notes that are not errors (a killed hook's temporary file removed). */
  warnings: string[];
  /** Something the hooks collected may be lost: the commit must merge every kernel whose tree changed. */
  scan: boolean;
}

export interface IngestOptions {
  root: string;
  /** The paths a .deb installs (default: collect-deb.ts's listDebPayload, loaded only when a deb record exists). */
  listDeb?: (file: string) => Promise<string[]>;
  lockTimeoutMs?: number;
}

/** Spool file names in order, or none (no spool directory: nothing was collected). */
function spoolEntries(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new InputError(dir, `cannot list the spool: ${(err as Error).message}`, (err as NodeJS.ErrnoException).code, { cause: err });
  }
}

/** Whether the spool holds anything for a commit (a complete file or a killed hook's temporary file). */
export function spoolPending(root: string): boolean {
  return spoolEntries(spoolDir(root)).some((n) => SPOOL_NAME.test(n) || TEMP_NAME.test(n));
}

/** How many complete spool files wait for a commit. */
export function spoolFiles(root: string): number {
  return spoolEntries(spoolDir(root)).filter((n) => SPOOL_NAME.test(n)).length;
}

function reject(dir: string, name: string): void {
  mkdirSync(join(dir, 'rejected'), { recursive: true, mode: 0o755 });
  renameSync(join(dir, name), join(dir, 'rejected', name));
}

async function defaultListDeb(file: string): Promise<string[]> {
  const { listDebPayload } = await import('./collect-deb.ts');
  return (await listDebPayload(file)).paths;
}

/** How many .deb files are listed at once: each listing waits mostly on an xz(1) of its control member. */
const DEB_LISTINGS_AT_ONCE = 4;

/** The paths of each .deb (or why it cannot be listed), DEB_LISTINGS_AT_ONCE at a time. */
async function listDebs(files: readonly string[], listDeb: (file: string) => Promise<string[]>): Promise<Map<string, string[] | Error>> {
  const out = new Map<string, string[] | Error>();
  const queue = [...new Set(files)];
  const worker = async (): Promise<void> => {
    for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
      try {
        out.set(f, await listDeb(f));
      } catch (err) {
        out.set(f, err instanceof Error ? err : new Error(String(err)));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(DEB_LISTINGS_AT_ONCE, queue.length) }, worker));
  return out;
}

/**
 * Moves every complete spool file into the journal (one journal file per spool file, named after
 * it), then deletes it. Event ids are the spool file's name and line, so a file ingested twice (a
 * commit killed between the journal's fsync and the unlink) gives the same events again, which the
 * merge of their kernel removes together.
 */
export async function ingestSpool(opts: IngestOptions): Promise<SpoolIngest> {
  const dir = spoolDir(opts.root);
  const out: SpoolIngest = { files: 0, recorded: 0, ignored: 0, refused: [], errors: [], warnings: [], scan: false };
  const listDeb = opts.listDeb ?? defaultListDeb;
  for (const name of spoolEntries(dir)) {
    const file = join(dir, name);
    const temp = TEMP_NAME.exec(name);
    if (temp !== null) {
      if (pidAlive(Number(temp[1]))) continue;
      try {
        unlinkSync(file);
      } catch {
        /* another commit removed it */
      }
      out.warnings.push(`${file}: left by a hook that was killed while writing it; removed, and every kernel whose tree changed is merged`);
      out.scan = true;
      continue;
    }
    if (name === 'rejected' && statSync(file, { throwIfNoEntry: false })?.isDirectory()) continue;
    const named = SPOOL_NAME.exec(name);
    let spool: SpoolFile;
    try {
      if (named === null) throw new FormatError(file, 'not a spool file name (NS-PID.SOURCE.spool)');
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // ingested by a concurrent commit
        throw new InputError(file, `cannot read: ${(err as Error).message}`, (err as NodeJS.ErrnoException).code, { cause: err });
      }
      spool = parseSpool(text, file);
    } catch (err) {
      if (!(err instanceof DepmodTxError)) throw err;
      out.errors.push(err);
      out.scan = true;
      try {
        reject(dir, name);
      } catch {
        /* left in place: reported again by the next commit */
      }
      continue;
    }
    const base = name.slice(0, -'.spool'.length);
    const time = new Date(Number(BigInt(named![1]!) / 1_000_000n)).toISOString();
    const batch: RecordedBatch = { events: [], ignored: 0, refused: [] };
    const ctx = { root: opts.root, check: containmentChecker(opts.root), seen: new Set<string>() };
    const listed = await listDebs(spool.records.filter((r) => r.op === 'deb').map((r) => r.path), listDeb);
    for (const r of spool.records) {
      if (r.op !== 'deb') {
        addRecordedPath(batch, r.path, { op: r.op, package: r.package, time, id: `${base}:${r.line}` }, ctx);
        continue;
      }
      const paths = listed.get(r.path)!;
      if (paths instanceof Error) {
        // The .deb is gone (an interrupted run, apt's cache cleaned) or damaged: what it installed is
        // found by the scan, as after a plain dpkg -i.
        out.errors.push(paths instanceof DepmodTxError ? paths : new InputError(r.path, `cannot list the package (${file}:${r.line}): ${paths.message}`));
        out.scan = true;
        continue;
      }
      paths.forEach((p, k) => addRecordedPath(batch, p, { op: 'add', package: r.package, time, id: `${base}:${r.line}:${k}` }, ctx));
    }
    if (batch.events.length > 0) await appendEvents(opts.root, `spool-${base}`, batch.events, opts.lockTimeoutMs ?? DEFAULT_JOURNAL_LOCK_MS);
    crashPoint(`spool:before-unlink:${name}`);
    try {
      unlinkSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new InputError(file, `cannot remove the ingested spool file: ${(err as Error).message}`, (err as NodeJS.ErrnoException).code, { cause: err });
    }
    out.files++;
    out.recorded += batch.events.length;
    out.ignored += batch.ignored;
    out.refused.push(...batch.refused);
  }
  return out;
}
