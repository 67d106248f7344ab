// The depmod front end answers a call that finds nothing changed from the cache header and stats,
// without the kernel's lock (rpm's kernel packages and kernel-install call depmod -a for the same
// kernel several times in a row); a call with work pending — here an event the apt hook or rpm's
// file trigger journaled for the kernel — still merges under the lock.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { kernelLockFile } from '../../src/kernel/kernel-state.ts';
import { cacheFile } from '../../src/cache/store.ts';
import { runCli, withCliRoot } from '../support/cli.ts';

const sleep = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

test('a no-op depmod call does not wait for the kernel lock; one with a journaled event of the kernel does', () => {
  withCliRoot(({ root, kvers, cfg }) => {
    const k = kvers[0]!;
    mkdirSync(join(root, 'var', 'cache', 'depmod-tx'), { recursive: true });
    const args = ['depmod', '-b', root, '-C', cfg, '-a', k];
    const env = { DEPMOD_TX_LOG: join(root, 'handover.log') };
    // The first call is kmod's depmod (no cache yet) and builds the cache in the background; the
    // second waits for that build and merges.
    assert.equal(runCli(args, { env }).code, 0);
    for (let i = 0; i < 600 && (!existsSync(cacheFile(root, k)) || existsSync(`${cacheFile(root, k)}.building`)); i++) sleep(50);
    assert.equal(runCli(args, { env }).code, 0);
    const dep = join(root, 'lib', 'modules', k, 'modules.dep');
    const before = { bytes: readFileSync(dep), mtime: statSync(dep).mtimeMs };

    const lock = kernelLockFile(root, k);
    const holder = spawn('flock', ['-x', lock, 'sleep', '60'], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 200 && spawnSync('flock', ['-n', lock, 'true']).status === 0; i++) sleep(25);
      assert.notEqual(spawnSync('flock', ['-n', lock, 'true']).status, 0, 'the lock is held');

      const t0 = Date.now();
      const quick = runCli(args, { env, timeoutMs: 20_000 });
      assert.equal(quick.code, 0, quick.stderr);
      assert.ok(Date.now() - t0 < 20_000);
      assert.deepEqual(readFileSync(dep), before.bytes);
      assert.equal(statSync(dep).mtimeMs, before.mtime, 'nothing rewritten');

      assert.equal(runCli(['record', '--root', root, '--op', 'add', `/lib/modules/${k}/kernel/drivers/a.ko`], { env }).code, 0);
      const waiting = runCli(args, { env, timeoutMs: 3_000 });
      assert.equal(waiting.code, null, `the call with a journaled event waited for the lock (killed at the timeout): ${waiting.stderr}`);
    } finally {
      holder.kill();
    }
  });
});
