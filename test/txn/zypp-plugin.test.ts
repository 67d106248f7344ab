import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clearZyppCommit, decodeFrame, FrameReader, markZyppCommit, serveZyppPlugin, zyppMarkFile } from '../../src/txn/zypp-plugin.ts';

const frame = (command: string, body = '') => `${command}\n\n${body}\0`;

/** libzypp's side of a session: the frames as chunks; records answers and actions in one sequence. */
async function session(chunks: string[], opts: { commitThrows?: boolean } = {}): Promise<string[]> {
  const seen: string[] = [];
  async function* input() {
    for (const c of chunks) yield Buffer.from(c, 'utf8');
  }
  await serveZyppPlugin(input(), (f) => seen.push(`reply ${JSON.stringify(f)}`), {
    begin: () => void seen.push('begin'),
    commit: async () => {
      seen.push('commit');
      if (opts.commitThrows) throw new Error('lock held');
    },
    end: () => void seen.push('end'),
    log: (m) => void seen.push(`log ${m}`),
  });
  return seen;
}

test('frames: command, headers, body; split across chunks and several in one chunk', () => {
  const f = decodeFrame('COMMITBEGIN\nkey:value\nother:a:b\n\n{"TransactionStepList": []}');
  assert.equal(f.command, 'COMMITBEGIN');
  assert.deepEqual([...f.headers], [['key', 'value'], ['other', 'a:b']]);
  assert.equal(f.body, '{"TransactionStepList": []}');
  const r = new FrameReader();
  assert.deepEqual(r.push(Buffer.from('PLUGINBE')), []);
  assert.deepEqual(r.push(Buffer.from('GIN\n\n\0COMMITBEGIN\n\nx\0COMMITE')).map((x) => x.command), ['PLUGINBEGIN', 'COMMITBEGIN']);
  assert.deepEqual(r.push(Buffer.from('ND\n\n\0')).map((x) => x.command), ['COMMITEND']);
});

test('a session: the commit runs at COMMITEND, before its ACK; the mark is cleared after it; unknown commands get _ENOMETHOD', async () => {
  const ack = `reply ${JSON.stringify('ACK\n\n\0')}`;
  const seen = await session([frame('PLUGINBEGIN') + frame('COMMITBEGIN', '{}'), frame('SOMETHINGNEW'), frame('COMMITEND', '{}') + frame('PLUGINEND') + frame('_DISCONNECT')]);
  assert.deepEqual(seen, [ack, 'begin', ack, `reply ${JSON.stringify('_ENOMETHOD\n\n\0')}`, 'commit', 'end', ack, ack, ack]);
});

test('a commit that fails is logged and still answered; input ending after COMMITBEGIN still commits once', async () => {
  const failed = await session([frame('COMMITBEGIN'), frame('COMMITEND'), frame('_DISCONNECT')], { commitThrows: true });
  assert.deepEqual(failed.filter((s) => !s.startsWith('reply')), ['begin', 'commit', 'log commit: lock held', 'end']);
  assert.equal(failed.filter((s) => s.startsWith('reply')).length, 3);
  const cut = await session([frame('PLUGINBEGIN'), frame('COMMITBEGIN')]);
  assert.deepEqual(cut.filter((s) => !s.startsWith('reply')), ['begin', 'commit', 'end']);
  const idle = await session([frame('PLUGINBEGIN'), frame('PLUGINEND'), frame('_DISCONNECT')]);
  assert.deepEqual(idle.filter((s) => !s.startsWith('reply')), [], 'no COMMITBEGIN, no commit');
});

test('the mark holds zypper\'s pid; only that zypper clears it', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'dtx-zypp-mark-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  markZyppCommit(root, '4242');
  assert.equal(readFileSync(zyppMarkFile(root), 'utf8'), '4242\n');
  clearZyppCommit(root, '17');
  assert.ok(existsSync(zyppMarkFile(root)), 'another zypper leaves it alone');
  clearZyppCommit(root, '4242');
  assert.ok(!existsSync(zyppMarkFile(root)));
  clearZyppCommit(root, '4242');
});
