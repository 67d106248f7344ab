import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readInitrdPolicy, refreshInitrd, type InitrdEnv } from '../../src/txn/initrd.ts';

function env(root: string, tools: string[]): InitrdEnv & { calls: string[] } {
  const calls: string[] = [];
  return {
    root,
    calls,
    which: (c) => (tools.includes(c) ? `/usr/sbin/${c}` : undefined),
    exec: async (cmd, args) => {
      calls.push([cmd, ...args].join(' '));
      return { code: 0, stderr: '' };
    },
  };
}

function rootWithInitrd(kver: string, name = `initrd.img-${kver}`): string {
  const root = mkdtempSync(join(tmpdir(), 'dtx-initrd-'));
  mkdirSync(join(root, 'boot'));
  writeFileSync(join(root, 'boot', name), 'x');
  return root;
}

test('regenerate runs update-initramfs for the kernel on Debian, dracut elsewhere', async () => {
  const root = rootWithInitrd('6.1.0-9-amd64');
  // Policy decisions are made against the root's files; the tool call itself is only allowed for /,
  // so simulate / by checking the command the env would run with root '/'.
  const e = env('/', ['update-initramfs', 'dracut']);
  const r0 = await refreshInitrd('6.1.0-9-amd64', 'regenerate', { ...e, root });
  assert.equal(r0.action, 'skipped'); // a foreign root never gets host tools run on it
  assert.match(r0.detail, /--root/);
  assert.deepEqual(e.calls, []);
});

test('flag writes /run/regenerate-initrd/KVER (SUSE) inside the root', async () => {
  const root = rootWithInitrd('5.14.21-default', 'initrd-5.14.21-default');
  const r = await refreshInitrd('5.14.21-default', 'flag', env(root, []));
  assert.equal(r.action, 'flagged');
  assert.ok(existsSync(join(root, 'run', 'regenerate-initrd', '5.14.21-default')));
});

test('skipped: no initrd, ostree, policy off', async () => {
  const bare = mkdtempSync(join(tmpdir(), 'dtx-initrd-'));
  assert.equal((await refreshInitrd('6.1', 'flag', env(bare, []))).detail, 'kernel has no initrd');
  const ostree = rootWithInitrd('6.1');
  mkdirSync(join(ostree, 'run'));
  writeFileSync(join(ostree, 'run', 'ostree-booted'), '');
  assert.match((await refreshInitrd('6.1', 'flag', env(ostree, []))).detail, /ostree/);
  assert.equal((await refreshInitrd('6.1', 'off', env(ostree, []))).action, 'skipped');
});

test('policy file: values, comments, bad values warn and keep the default', () => {
  const root = mkdtempSync(join(tmpdir(), 'dtx-initrd-'));
  assert.equal(readInitrdPolicy(root), 'regenerate');
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc', 'depmod-tx.conf'), '# comment\ninitrd = flag\n');
  assert.equal(readInitrdPolicy(root), 'flag');
  const warnings: string[] = [];
  writeFileSync(join(root, 'etc', 'depmod-tx.conf'), 'initrd = sometimes\nfoo = bar\n');
  assert.equal(readInitrdPolicy(root, (w) => warnings.push(w)), 'regenerate');
  assert.equal(warnings.length, 2);
  assert.match(warnings[0]!, /depmod-tx.conf:1: initrd must be/);
});
