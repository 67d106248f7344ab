// Child for the crash test: commit with the real update merge. DEPMOD_TX_CRASH_AT in the
// environment makes src/io/atomic.ts SIGKILL this process at that step.  argv: ROOT
import { commit } from '../../src/txn/commit.ts';
import { updateMerge } from '../../src/txn/merge-adapter.ts';

const root = process.argv[2];
if (root === undefined) throw new Error('usage: ROOT');
const s = await commit({ root, merge: updateMerge({ workers: 2 }) });
process.stdout.write(JSON.stringify(s) + '\n');
