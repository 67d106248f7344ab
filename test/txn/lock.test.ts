import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock } from '../../src/io/lock.ts';
import { kernelLockFile } from '../../src/kernel/kernel-state.ts';

test('kernel lock: exclusive across processes, timed wait fails with a StateError, free again after release', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'depmod-tx-lock-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const file = kernelLockFile(root, '6.1.0-x');
  assert.equal(file, join(root, 'var/cache/depmod-tx/6.1.0-x.lock'));
  const held = await acquireLock(file, 1000);
  assert.equal(statSync(file).mode & 0o777, 0o644);
  // Another process (plain flock(1), as an administrator's script would) cannot take it.
  assert.equal(spawnSync('flock', ['-x', '-n', file, 'true']).status, 1);
  const t0 = Date.now();
  await assert.rejects(acquireLock(file, 300), (e: Error) => e.name === 'StateError' && e.message.startsWith(file) && /after 300 ms/.test(e.message));
  assert.ok(Date.now() - t0 >= 250);
  await held.release();
  assert.equal(spawnSync('flock', ['-x', '-n', file, 'true']).status, 0);
  const again = await acquireLock(file, 1000);
  await again.release();
  assert.throws(() => kernelLockFile(root, '../x'), /refused/);
});
