import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { journalDir, readJournal, removeEvents } from '../../src/txn/journal.ts';
import { recordEvents } from '../../src/txn/record.ts';

function tempRoot(t: { after(fn: () => void): void }): string {
  const root = mkdtempSync(join(tmpdir(), 'depmod-tx-journal-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

test('record appends one JSON line per module event; non-modules ignored, escapes refused', async (t) => {
  const root = tempRoot(t);
  const r = await recordEvents({
    root,
    op: 'add',
    package: 'linux-image-6.1',
    txn: 'tx1',
    time: new Date('2025-01-02T03:04:05Z'),
    paths: ['/lib/modules/6.1/kernel/a.ko', '/lib/modules/6.1/modules.dep', '/usr/share/doc/x', '/lib/modules/6.1/../../etc/shadow.ko', '/lib/modules/6.1/kernel/a.ko', '/usr/lib/modules/6.2/b.ko.xz'],
  });
  assert.equal(r.recorded, 2);
  assert.equal(r.ignored, 2);
  assert.equal(r.refused.length, 1);
  assert.match(r.refused[0]!.message, /shadow\.ko.*refused.*'\.\.'/);
  const file = join(journalDir(root), 'tx1.jsonl');
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 2);
  assert.deepEqual({ ...lines[0], id: undefined }, { op: 'add', path: '/lib/modules/6.1/kernel/a.ko', package: 'linux-image-6.1', time: '2025-01-02T03:04:05.000Z', id: undefined });
  assert.equal(lines[1]!.path, '/usr/lib/modules/6.2/b.ko.xz');
  assert.notEqual(lines[0]!.id, lines[1]!.id);
  // Never world-writable.
  assert.equal(statSync(file).mode & 0o002, 0);
  assert.equal(statSync(journalDir(root)).mode & 0o002, 0);
  await assert.rejects(recordEvents({ root, op: 'add', txn: '../x', paths: [] }), /transaction id/);
});

test('a malformed journal line is reported with file and line number; the rest is processed', async (t) => {
  const root = tempRoot(t);
  await recordEvents({ root, op: 'add', txn: 'tx', paths: ['/lib/modules/6.1/a.ko'] });
  const file = join(journalDir(root), 'tx.jsonl');
  appendFileSync(file, '{"op":"add","path":\n');
  appendFileSync(file, '{"op":"frobnicate","path":"/lib/modules/6.1/q.ko"}\n');
  // A line cut short by a killed writer: the next append must start on a fresh line.
  appendFileSync(file, '{"op":"remove","pa');
  await recordEvents({ root, op: 'remove', txn: 'tx', paths: ['/lib/modules/6.1/b.ko'] });
  const snap = await readJournal(root);
  assert.deepEqual(snap.events.map((e) => [e.op, e.path, e.line]), [
    ['add', '/lib/modules/6.1/a.ko', 1],
    ['remove', '/lib/modules/6.1/b.ko', 5],
  ]);
  assert.deepEqual(snap.warnings.map((w) => [w.code, w.file, w.line]), [
    ['JOURNAL_LINE_MALFORMED', file, 2],
    ['JOURNAL_LINE_MALFORMED', file, 3],
    ['JOURNAL_LINE_MALFORMED', file, 4],
  ]);
  assert.match(snap.warnings[0]!.message, new RegExp(`^${file.replace(/[.]/g, '\\.')}:2: not JSON`));
  assert.match(snap.warnings[1]!.message, /"op" must be/);

  // Removing one event keeps the other byte for byte and moves the damaged lines aside.
  const before = readFileSync(file, 'utf8').split('\n')[4];
  await removeEvents(root, [snap.events[0]!]);
  assert.equal(readFileSync(file, 'utf8'), before + '\n');
  assert.equal(readFileSync(join(journalDir(root), 'rejected', 'tx.jsonl'), 'utf8').split('\n').length, 4);
  await removeEvents(root, [snap.events[1]!]);
  assert.deepEqual(readdirSync(journalDir(root)), ['rejected']);
});
