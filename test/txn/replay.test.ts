import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MergeRequest } from '../../src/txn/commit.ts';
import { parsePathList } from '../../src/txn/collect-rpm.ts';
import { journalDir, readJournal } from '../../src/txn/journal.ts';
import { recordEvents } from '../../src/txn/record.ts';
import { replay } from '../../src/txn/replay.ts';

function setup(t: { after(fn: () => void): void }): { root: string; calls: MergeRequest[]; merge: (r: MergeRequest) => Promise<{ changed: boolean; files: string[]; ms: number; kabi: { unknown: number; mismatched: number } }> } {
  const root = mkdtempSync(join(tmpdir(), 'depmod-tx-replay-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  // Installed kernels: each ships modules.order (a directory without it and without modules is a removed kernel's).
  for (const k of ['6.1.0-a', '6.1.0-b']) {
    mkdirSync(join(root, 'lib/modules', k), { recursive: true });
    writeFileSync(join(root, 'lib/modules', k, 'modules.order'), '');
  }
  const calls: MergeRequest[] = [];
  return { root, calls, merge: async (r) => (calls.push(r), { changed: calls.length <= 2, files: [], ms: 1, kabi: { unknown: 0, mismatched: 0 } }) };
}

// What rpm writes to a %filetriggerin scriptlet's stdin for a package owning files under
// /lib/modules and /usr/lib/modules: every matching path of that package, one per line.
const RPM_STDIN = [
  '/usr/lib/modules/6.1.0-a',
  '/usr/lib/modules/6.1.0-a/extra',
  '/usr/lib/modules/6.1.0-a/extra/nvidia.ko.xz',
  '/usr/lib/modules/6.1.0-a/extra/nvidia-drm.ko.xz',
  '/lib/modules/6.1.0-b/extra/nvidia.ko.zst',
  '/lib/modules/6.1.0-b/weak-updates/name with space.ko',
  '',
].join('\n');

test('rpm file-trigger stdin lists: one path per line, spaces kept', () => {
  assert.deepEqual(parsePathList('/a b.ko\r\n\n/c.ko'), ['/a b.ko', '/c.ko']);
  assert.equal(parsePathList(RPM_STDIN).length, 6);
});

test('replay of a plain rpm path list records and commits one merge per kernel; a second replay merges again but the journal stays clean', async (t) => {
  const { root, calls, merge } = setup(t);
  const log = join(root, 'rpm-stdin.txt');
  writeFileSync(log, RPM_STDIN);
  const r = await replay({ root, files: [log], merge });
  assert.equal(r.recorded, 4);
  assert.equal(r.ignored, 2);
  assert.deepEqual(calls.map((c) => [c.kver, c.moddir, c.paths]).sort(), [
    ['6.1.0-a', '/lib/modules/6.1.0-a', ['/usr/lib/modules/6.1.0-a/extra/nvidia.ko.xz', '/usr/lib/modules/6.1.0-a/extra/nvidia-drm.ko.xz']],
    ['6.1.0-b', '/lib/modules/6.1.0-b', ['/lib/modules/6.1.0-b/extra/nvidia.ko.zst', '/lib/modules/6.1.0-b/weak-updates/name with space.ko']],
  ]);
  assert.equal((await readJournal(root)).events.length, 0);
  const again = await replay({ root, files: [log], merge });
  assert.deepEqual(again.commit.kernels.map((k) => k.changed), [false, false]);
  assert.equal((await readJournal(root)).events.length, 0);
});

test('replay of a saved journal with a damaged line reports file:line and processes the rest', async (t) => {
  const { root, calls, merge } = setup(t);
  // A journal saved from another machine: written by record, then damaged in transit.
  const other = mkdtempSync(join(tmpdir(), 'depmod-tx-replay-src-'));
  t.after(() => rmSync(other, { recursive: true, force: true }));
  await recordEvents({ root: other, op: 'add', package: 'kmod-foo', txn: 'saved', paths: ['/lib/modules/6.1.0-a/extra/foo.ko'] });
  await recordEvents({ root: other, op: 'remove', package: 'kmod-bar', txn: 'saved', paths: ['/lib/modules/6.1.0-b/extra/bar.ko'] });
  const saved = join(journalDir(other), 'saved.jsonl');
  const lines = readFileSync(saved, 'utf8').split('\n');
  writeFileSync(saved, [lines[0], '{"op":"add","path":"/lib/modules/6.1.0-a/../../../etc/passwd.ko"}', '{truncated', lines[1], ''].join('\n'));
  const r = await replay({ root, files: [saved], merge });
  assert.deepEqual(r.warnings.map((w) => [w.file, w.line]), [[saved, 2], [saved, 3]]);
  assert.match(r.warnings[0]!.message, /refused: contains a '\.\.' segment/);
  assert.equal(r.recorded, 2);
  assert.deepEqual(calls.map((c) => [c.kver, c.paths]).sort(), [['6.1.0-a', ['/lib/modules/6.1.0-a/extra/foo.ko']], ['6.1.0-b', ['/lib/modules/6.1.0-b/extra/bar.ko']]]);
});
