// `depmod-tx status`: pending journal events per kernel, and the last commit result per kernel.
// Last results live in ROOT/var/lib/depmod-tx/status.json:
//   {"version":1,"kernels":{"KVER":{"at":"ISO-8601", ...KernelResult}}}
// rewritten atomically (temp + fsync + rename) at the end of each commit, under the journal lock
// so two commits finishing together merge their kernels instead of overwriting each other.
import { mkdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { stateDirs } from '../cache/meta.ts';
import { crashPoint, fsyncDir, sweepStaleTemps, writeDurable } from '../io/atomic.ts';
import { kernelRemoved } from '../io/tree.ts';
import { withLock } from '../io/lock.ts';
import { journalLockFile } from './journal.ts';
import { DEFAULT_JOURNAL_LOCK_MS, readJournal, type JournalWarning } from './journal.ts';
import { spoolFiles } from './spool.ts';
import type { KernelResult } from './commit.ts';

export interface LastResult extends KernelResult {
  at: string;
}

export interface StateFile {
  version: 1;
  kernels: Record<string, LastResult>;
}

export interface KernelPending {
  kver: string;
  events: number;
  add: number;
  remove: number;
  transactions: string[];
  packages: string[];
}

export interface StatusReport {
  pending: KernelPending[];
  /** Spool files the hooks wrote that no commit has ingested yet (src/txn/spool.ts). */
  spooled: number;
  last: Record<string, LastResult>;
  warnings: JournalWarning[];
}

export function statusFile(root: string): string {
  return join(stateDirs(root).lib, 'status.json');
}

function readState(file: string): StateFile {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (typeof v === 'object' && v !== null && (v as StateFile).version === 1 && typeof (v as StateFile).kernels === 'object') return v as StateFile;
  } catch {
    /* missing or damaged: a status file is informational, start afresh */
  }
  return { version: 1, kernels: {} };
}

export async function writeLastResults(root: string, results: readonly KernelResult[], at: Date, lockTimeoutMs = DEFAULT_JOURNAL_LOCK_MS): Promise<void> {
  const file = statusFile(root);
  const dir = stateDirs(root).lib;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  await withLock(journalLockFile(root), lockTimeoutMs, () => {
    const state = readState(file);
    for (const r of results) {
      // "nothing" means a concurrent commit did the work; its result is the one worth keeping.
      if (r.status === 'nothing' && state.kernels[r.kver] !== undefined) continue;
      state.kernels[r.kver] = { ...r, at: at.toISOString() };
    }
    sweepStaleTemps(dir, /^\.status\.json\.(\d+)\.tmp$/);
    const tmp = join(dir, `.status.json.${process.pid}.tmp`);
    try {
      unlinkSync(tmp);
    } catch {
      /* absent */
    }
    crashPoint('status:before-temp');
    writeDurable(tmp, Buffer.from(JSON.stringify(state, null, 2) + '\n', 'utf8'));
    crashPoint('status:before-rename');
    renameSync(tmp, file);
    crashPoint('status:before-dir-fsync');
    fsyncDir(dir);
  });
}

export async function status(opts: { root: string; lockTimeoutMs?: number; now?: () => Date }): Promise<StatusReport> {
  const snap = await readJournal(opts.root, opts.lockTimeoutMs ?? DEFAULT_JOURNAL_LOCK_MS);
  const byK = new Map<string, KernelPending & { txs: Set<string>; pkgs: Set<string> }>();
  for (const e of snap.events) {
    const k = e.module.kver;
    let p = byK.get(k);
    if (p === undefined) byK.set(k, (p = { kver: k, events: 0, add: 0, remove: 0, transactions: [], packages: [], txs: new Set(), pkgs: new Set() }));
    p.events++;
    if (e.op === 'add') p.add++;
    else p.remove++;
    p.txs.add(e.file.slice(e.file.lastIndexOf('/') + 1).replace(/\.jsonl$/, ''));
    if (e.package !== null) p.pkgs.add(e.package);
  }
  const pending = [...byK.values()].map(({ txs, pkgs, ...p }) => ({ ...p, transactions: [...txs], packages: [...pkgs] }));
  // A kernel purged since its last commit (no trigger ran for it, or it ran before the directory
  // went): its last result describes a database that no longer exists.
  const last = readState(statusFile(opts.root)).kernels;
  const noticed = (opts.now ?? (() => new Date()))().toISOString();
  for (const [kver, l] of Object.entries(last)) {
    if (l.status !== 'removed' && kernelRemoved(opts.root, kver)) last[kver] = { kver, status: 'removed', events: 0, wallMs: 0, at: noticed };
  }
  return { pending, spooled: spoolFiles(opts.root), last, warnings: snap.warnings };
}
