// The KABI part of a kernel's one-line summary, for `update`/`rebuild` (src/cli/merge-report.ts)
// and `commit` (src/txn/commit.ts) alike.
import type { KabiBasis } from '../depmod/compute.ts';

export function kabiSummary(against: KabiBasis, unknown: number, mismatched: number): string {
  if (against === 'none') return 'KABI: not checked';
  const found = unknown + mismatched === 0 ? 'ok' : `${unknown} unknown symbol(s), ${mismatched} CRC mismatch(es)`;
  return against === 'modules' ? `KABI: ${found} between modules (no symvers found: kernel symbols not checked)` : `KABI: ${found}`;
}
