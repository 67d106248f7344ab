import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheFile } from '../../src/cache/store.ts';
import { commit, formatKernelResult, type KernelMerge, type MergeRequest } from '../../src/txn/commit.ts';
import { journalDir, readJournal } from '../../src/txn/journal.ts';
import { recordEvents } from '../../src/txn/record.ts';
import { status } from '../../src/txn/status.ts';

const CHILD = fileURLToPath(new URL('./child-commit.ts', import.meta.url));

function tempRoot(t: { after(fn: () => void): void }, kvers: string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'depmod-tx-commit-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  // An installed kernel ships modules.order: without it (and without modules) commit takes the kernel for removed.
  for (const k of kvers) {
    mkdirSync(join(root, 'lib/modules', k, 'kernel'), { recursive: true });
    writeFileSync(join(root, 'lib/modules', k, 'modules.order'), '');
  }
  return root;
}

function countingMerge(): { merge: KernelMerge; calls: MergeRequest[] } {
  const calls: MergeRequest[] = [];
  return {
    calls,
    merge: async (req) => {
      calls.push(req);
      return { changed: true, files: ['modules.dep', 'modules.dep.bin'], ms: 3, kabi: { unknown: 1, mismatched: 0 } };
    },
  };
}

test('a transaction touching two kernels runs one merge per kernel and clears the journal', async (t) => {
  const root = tempRoot(t, ['6.1.0-a', '6.1.0-b']);
  await recordEvents({ root, op: 'add', package: 'p1', txn: 'tx', paths: ['/lib/modules/6.1.0-a/kernel/x.ko', '/lib/modules/6.1.0-b/kernel/x.ko'] });
  await recordEvents({ root, op: 'remove', package: 'p2', txn: 'tx', paths: ['/lib/modules/6.1.0-a/kernel/old.ko', '/lib/modules/6.1.0-a/kernel/x.ko'] });
  const { merge, calls } = countingMerge();
  const s = await commit({ root, merge });
  assert.equal(calls.length, 2);
  const a = calls.find((c) => c.kver === '6.1.0-a');
  assert.deepEqual(a, { root, kver: '6.1.0-a', moddir: '/lib/modules/6.1.0-a', paths: ['/lib/modules/6.1.0-a/kernel/x.ko', '/lib/modules/6.1.0-a/kernel/old.ko'] });
  assert.deepEqual(calls.find((c) => c.kver === '6.1.0-b')?.paths, ['/lib/modules/6.1.0-b/kernel/x.ko']);
  assert.deepEqual(s.kernels.map((k) => [k.kver, k.status, k.events]).sort(), [['6.1.0-a', 'merged', 3], ['6.1.0-b', 'merged', 1]]);
  assert.match(formatKernelResult(s.kernels[0]!), /changed 2 file\(s\).*KABI: 1 unknown symbol\(s\), 0 CRC mismatch\(es\)/);
  assert.equal((await readJournal(root)).events.length, 0);
  assert.equal(existsSync(join(journalDir(root), 'tx.jsonl')), false);
  // Nothing pending: no merge at all.
  await commit({ root, merge });
  assert.equal(calls.length, 2);
  const st = await status({ root });
  assert.deepEqual(st.pending, []);
  assert.equal(st.last['6.1.0-a']?.status, 'merged');
});

test('a merge that throws keeps its events; other kernels still commit', async (t) => {
  const root = tempRoot(t, ['good', 'bad']);
  await recordEvents({ root, op: 'add', txn: 'tx', paths: ['/lib/modules/good/a.ko', '/lib/modules/bad/a.ko'] });
  const s = await commit({
    root,
    merge: async (req) => {
      if (req.kver === 'bad') throw new Error('disk on fire');
      return { changed: false, files: [], ms: 1, kabi: { unknown: 0, mismatched: 0 } };
    },
  });
  const bad = s.kernels.find((k) => k.kver === 'bad');
  assert.equal(bad?.status, 'failed');
  assert.match(bad?.error ?? '', /disk on fire/);
  assert.match(formatKernelResult(bad!), /FAILED.*1 event\(s\) kept/);
  const left = (await readJournal(root)).events;
  assert.deepEqual(left.map((e) => e.path), ['/lib/modules/bad/a.ko']);
  const st = await status({ root });
  assert.deepEqual(st.pending.map((p) => [p.kver, p.events]), [['bad', 1]]);
  assert.equal(st.last.bad?.status, 'failed');
  const { merge, calls } = countingMerge();
  await commit({ root, merge });
  assert.deepEqual(calls.map((c) => c.paths), [['/lib/modules/bad/a.ko']]);
});

test('a kernel whose module directory vanished is removed: events and cache dropped', async (t) => {
  const root = tempRoot(t, ['keep']);
  await recordEvents({ root, op: 'remove', package: 'linux-image-gone', txn: 'tx', paths: ['/lib/modules/gone/kernel/a.ko', '/lib/modules/keep/a.ko'] });
  mkdirSync(join(root, 'var/cache/depmod-tx'), { recursive: true });
  writeFileSync(cacheFile(root, 'gone'), 'stale');
  const { merge, calls } = countingMerge();
  const s = await commit({ root, merge });
  assert.deepEqual(calls.map((c) => c.kver), ['keep']);
  assert.deepEqual(s.kernels.find((k) => k.kver === 'gone'), { kver: 'gone', status: 'removed', events: 1, wallMs: s.kernels.find((k) => k.kver === 'gone')!.wallMs });
  assert.equal(existsSync(cacheFile(root, 'gone')), false);
  assert.equal((await readJournal(root)).events.length, 0);
});

test('a malformed journal line is reported by commit while the rest is merged', async (t) => {
  const root = tempRoot(t, ['6.1']);
  await recordEvents({ root, op: 'add', txn: 'tx', paths: ['/lib/modules/6.1/a.ko'] });
  const file = join(journalDir(root), 'tx.jsonl');
  appendFileSync(file, 'garbage\n');
  await recordEvents({ root, op: 'add', txn: 'tx', paths: ['/lib/modules/6.1/b.ko'] });
  const { merge, calls } = countingMerge();
  const s = await commit({ root, merge });
  assert.deepEqual(calls.map((c) => c.paths), [['/lib/modules/6.1/a.ko', '/lib/modules/6.1/b.ko']]);
  assert.deepEqual(s.warnings.map((w) => [w.file, w.line]), [[file, 2]]);
  assert.match(s.warnings[0]!.message, /tx\.jsonl:2: not JSON/);
});

interface Child {
  out: string;
  code: number | null;
}
function runChild(args: string[], onStdout?: (s: string, kill: () => void) => void): Promise<Child> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      onStdout?.(out, () => c.kill('SIGKILL'));
    });
    c.on('error', reject);
    c.on('close', (code) => resolve({ out, code }));
  });
}

function mergedPaths(log: string): string[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8').trimEnd().split('\n').flatMap((l) => (JSON.parse(l) as { paths: string[] }).paths);
}

test('four concurrent commit processes on one kernel: every event merged exactly once', async (t) => {
  const root = tempRoot(t, ['6.1']);
  const log = join(root, 'merges.jsonl');
  const expected: string[] = [];
  const pre: string[] = [];
  for (let i = 0; i < 20; i++) pre.push(`/lib/modules/6.1/extra/pre-${i}.ko`);
  await recordEvents({ root, op: 'add', txn: 'pre', paths: pre });
  expected.push(...pre);
  const children = [];
  for (let c = 0; c < 5; c++) {
    for (let i = 0; i < 15; i++) expected.push(`/lib/modules/6.1/extra/c${c}-${i}.ko`);
    children.push(runChild([root, log, '6.1', '15', `c${c}`, '80']));
  }
  const results = await Promise.all(children);
  for (const r of results) assert.equal(r.code, 0, r.out);
  // Whatever a child recorded after the last merge started is merged by one more commit.
  const { merge } = countingMerge();
  const fin = await commit({ root, merge: async (req) => (appendFileSync(log, JSON.stringify({ pid: process.pid, kver: req.kver, paths: req.paths }) + '\n'), merge(req)) });
  assert.equal(fin.warnings.length, 0);
  const merged = mergedPaths(log);
  assert.equal(merged.length, new Set(merged).size, 'no event merged twice');
  assert.deepEqual([...merged].sort(), [...expected].sort());
  assert.equal((await readJournal(root)).events.length, 0);
});

test('a commit killed mid-merge loses nothing and leaves no stale lock', async (t) => {
  const root = tempRoot(t, ['6.1']);
  const log = join(root, 'merges.jsonl');
  await recordEvents({ root, op: 'add', txn: 'tx', paths: ['/lib/modules/6.1/a.ko', '/lib/modules/6.1/b.ko'] });
  // The child's merge sleeps 60 s; it is SIGKILLed once its merge has started (logged).
  const r = await runChild([root, log, '6.1', '0', 'victim', '60000'], (out, kill) => {
    if (out.includes('recorded')) {
      const poll = setInterval(() => {
        if (mergedPaths(log).length > 0) {
          clearInterval(poll);
          kill();
        }
      }, 20);
    }
  });
  assert.equal(r.code, null);
  assert.deepEqual(mergedPaths(log), ['/lib/modules/6.1/a.ko', '/lib/modules/6.1/b.ko']);
  assert.equal((await readJournal(root)).events.length, 2, 'events survive the killed merge');
  const { merge, calls } = countingMerge();
  const t0 = Date.now();
  const s = await commit({ root, merge, lockTimeoutMs: 10_000 });
  assert.ok(Date.now() - t0 < 5_000, 'the dead holder released the kernel lock');
  assert.equal(s.kernels[0]?.status, 'merged');
  assert.deepEqual(calls.map((c) => c.paths), [['/lib/modules/6.1/a.ko', '/lib/modules/6.1/b.ko']]);
});
