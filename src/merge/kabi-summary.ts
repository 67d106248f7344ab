// The findings part of a kernel's report — KABI counts and the modules kmod cannot load — for
// `update`/`rebuild` (src/cli/merge-report.ts) and `commit`/`status` (src/txn, src/cli/txn.ts) alike.
import type { KabiBasis, LoadFinding } from '../depmod/compute.ts';

export function kabiSummary(against: KabiBasis, unknown: number, mismatched: number): string {
  if (against === 'none') return 'KABI: not checked';
  const found = unknown + mismatched === 0 ? 'ok' : `${unknown} unknown symbol(s), ${mismatched} CRC mismatch(es)`;
  return against === 'modules' ? `KABI: ${found} between modules (no symvers found: kernel symbols not checked)` : `KABI: ${found}`;
}

/** A module kmod cannot load, as --json, commit results and status.json carry it. */
export interface UnreadableEntry {
  kind: 'unreadable';
  module: string;
  /** The file as depmod names it (absolute). */
  path: string;
  /** What depmod prints for it (strerror: "Invalid argument", "Exec format error", ...). */
  reason: string;
  /** What is wrong with the file, in depmod-tx's words. */
  detail: string;
}

export function unreadableEntry(f: LoadFinding): UnreadableEntry {
  return { kind: 'unreadable', module: f.module, path: f.modulePath, reason: f.error, detail: f.detail };
}

/** "2 unreadable module(s): /lib/.../a.ko (Invalid argument), ..." for a one-line summary; '' when there are none. */
export function unreadableSummary(entries: readonly UnreadableEntry[]): string {
  if (entries.length === 0) return '';
  return `${entries.length} unreadable module(s), listed without dependencies: ${entries.map((e) => `${e.path} (${e.reason})`).join(', ')}`;
}
