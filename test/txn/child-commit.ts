// Child process for the concurrency tests: optionally records events, then commits with a fake
// merge that logs each call (one JSON line, O_APPEND) and lingers to widen race windows.
// argv: ROOT LOGFILE KVER RECORD_COUNT TAG MERGE_MS
import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { commit } from '../../src/txn/commit.ts';
import { recordEvents } from '../../src/txn/record.ts';

const [root, log, kver, nText, tag, msText] = process.argv.slice(2);
if (root === undefined || log === undefined || kver === undefined || tag === undefined) throw new Error('usage: ROOT LOG KVER N TAG MS');
const n = Number(nText ?? '0');
const mergeMs = Number(msText ?? '50');
const paths: string[] = [];
for (let i = 0; i < n; i++) paths.push(`/lib/modules/${kver}/extra/${tag}-${i}.ko`);
if (n > 0) await recordEvents({ root, op: 'add', package: tag, txn: `tx-${tag}`, paths });
process.stdout.write('recorded\n');
const summary = await commit({
  root,
  merge: async (req) => {
    appendFileSync(log, JSON.stringify({ pid: process.pid, kver: req.kver, paths: req.paths }) + '\n');
    await sleep(mergeMs);
    return { changed: true, files: ['modules.dep'], ms: mergeMs, kabi: { unknown: 0, mismatched: 0 } };
  },
});
process.stdout.write(JSON.stringify(summary) + '\n');
