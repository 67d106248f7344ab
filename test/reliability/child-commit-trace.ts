// Child for the concurrency test: `commit` with the real update merge, each merge held for HOLD_MS
// and reported as a JSON line {kver, pid, start, end} (wall-clock ms) so the parent can check that
// merges of one kernel never overlap; a {started} line when each merge begins, a {holding} line when it has finished and the lock is held. Last line: the summary.  argv: ROOT HOLD_MS
import { commit } from '../../src/txn/commit.ts';
import { updateMerge } from '../../src/txn/merge-adapter.ts';

const [root, hold] = process.argv.slice(2);
if (root === undefined) throw new Error('usage: ROOT HOLD_MS');
const real = updateMerge({ workers: 1 });
const s = await commit({
  root,
  lockTimeoutMs: 120_000,
  merge: async (req) => {
    const start = Date.now();
    process.stdout.write(`${JSON.stringify({ started: true, kver: req.kver, pid: process.pid, start })}\n`);
    const r = await real(req);
    // The merge is done and the lock still held: the parent may now change the tree and the journal.
    process.stdout.write(`${JSON.stringify({ holding: true, kver: req.kver, pid: process.pid })}\n`);
    await new Promise((res) => setTimeout(res, Number(hold ?? 0)));
    process.stdout.write(`${JSON.stringify({ trace: true, kver: req.kver, pid: process.pid, start, end: Date.now() })}\n`);
    return r;
  },
});
process.stdout.write(`${JSON.stringify(s)}\n`);
