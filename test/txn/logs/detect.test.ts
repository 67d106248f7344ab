import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FormatError, UsageError } from '../../../src/errors.ts';
import { detectReplayInput } from '../../../src/txn/logs/detect.ts';
import { parseLogTime, parseSince } from '../../../src/txn/logs/time.ts';
import { lastChanges, replay } from '../../../src/txn/replay.ts';
import { readJournal } from '../../../src/txn/journal.ts';
import type { PackageChange } from '../../../src/txn/logs/client-log.ts';

test('the first significant line decides the format; a file that is none of them is refused as a whole', () => {
  assert.equal(detectReplayInput('\n{"op":"add"}\n', 'j').kind, 'journal');
  assert.equal(detectReplayInput('/lib/modules/6.1.0/x.ko\n', 'p').kind, 'path-list');
  assert.equal(detectReplayInput('\n\n', 'e').kind, 'path-list', 'an empty file replays nothing');
  const z = detectReplayInput('# 2026-12-01 10:17:41 kmp-a-1.0-1.noarch.rpm installed ok\n2026-12-01 10:17:41|install|kmp-a|1.0-1|noarch||repo|0|\n', 'h');
  assert.equal(z.kind === 'client-log' && z.format.name, 'zypp-history', "zypper's rpm-output comments are skipped");
  assert.throws(
    () => detectReplayInput('hello\nworld\n', '/var/tmp/notes.txt'),
    (e: unknown) => e instanceof FormatError && e.file === '/var/tmp/notes.txt' && /line 1 \("hello"\) starts none of: .*dpkg's log.*pacman's log/.test(e.message),
  );
});

test('replay with a file in no known format: one FormatError, nothing recorded (not even from the good file before it), nothing merged', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'dtx-detect-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'lib/modules/6.1.0-a'), { recursive: true });
  const file = join(root, 'syslog');
  writeFileSync(file, 'Dec  1 10:00:00 host kernel: hello\n'.repeat(50));
  const good = join(root, 'paths');
  writeFileSync(good, '/lib/modules/6.1.0-a/extra/foo.ko\n');
  let merges = 0;
  await assert.rejects(
    replay({ root, files: [good, file], merge: async () => (merges++, { changed: false, files: [], ms: 0, kabi: undefined }) }),
    (e: unknown) => e instanceof FormatError && e.file === file,
  );
  assert.equal(merges, 0);
  assert.equal((await readJournal(root)).events.length, 0);
});

test('--since: local and zoned forms; anything else is a usage error', () => {
  assert.equal(parseSince('2026-12-01 10:20:24').getTime(), new Date(2026, 11, 1, 10, 20, 24).getTime());
  assert.equal(parseSince('2026-12-01').getTime(), new Date(2026, 11, 1).getTime());
  assert.equal(parseSince('2026-12-01T10:20:24Z').toISOString(), '2026-12-01T10:20:24.000Z');
  assert.equal(parseLogTime('2026-12-01T10:25:32+0100')?.toISOString(), '2026-12-01T09:25:32.000Z', "pacman's offset");
  for (const bad of ['yesterday', '2026-02-30', '2026-12-01 25:00', '']) assert.throws(() => parseSince(bad), UsageError, bad);
});

test('the last change of a package in the window decides; changes before --since are left out', () => {
  const c = (time: string, kind: PackageChange['kind'], pkg: string): PackageChange => ({ time: parseLogTime(time)!, kind, package: pkg, arch: null, line: 0 });
  const changes = [c('2026-12-01 10:00:00', 'install', 'a'), c('2026-12-01 10:00:05', 'remove', 'a'), c('2026-12-01 10:00:05', 'install', 'b'), c('2026-12-01 10:00:09', 'remove', 'b'), c('2026-12-01 10:00:09', 'install', 'b')];
  const { inWindow, last } = lastChanges(changes, parseSince('2026-12-01 10:00:05'));
  assert.equal(inWindow.length, 4);
  assert.deepEqual([...last].map(([p, x]) => [p, x.kind]), [['a', 'remove'], ['b', 'install']]);
});
