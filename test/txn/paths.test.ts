import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { classifyModulePath, classifyUnderRoot, PathRefusedError, validateKver } from '../../src/txn/paths.ts';

test('module paths under /lib/modules and /usr/lib/modules are classified by kernel', () => {
  assert.deepEqual(classifyModulePath('/lib/modules/6.1.0-56-amd64/kernel/drivers/net/e1000.ko.xz'), {
    kver: '6.1.0-56-amd64',
    moddir: '/lib/modules/6.1.0-56-amd64',
    rel: 'kernel/drivers/net/e1000.ko.xz',
    path: '/lib/modules/6.1.0-56-amd64/kernel/drivers/net/e1000.ko.xz',
  });
  const u = classifyModulePath('/usr/lib/modules/6.8.0//updates/./x.ko.zst');
  assert.equal(u?.moddir, '/usr/lib/modules/6.8.0');
  assert.equal(u?.rel, 'updates/x.ko.zst');
  for (const s of ['.ko', '.ko.gz', '.ko.xz', '.ko.zst']) assert.ok(classifyModulePath(`/lib/modules/k/a${s}`), s);
});

test('non-module paths are ignored silently', () => {
  for (const p of ['/lib/modules/6.1/modules.dep', '/lib/modules/6.1', '/lib/modules/x.ko', '/usr/share/doc/x.ko', '/lib/modules/6.1/kernel/', '/boot/vmlinuz', '/lib/modules/6.1/a.ko.bz2', '/lib/modules/6.1/.ko']) {
    assert.equal(classifyModulePath(p), undefined, p);
  }
});

test('escapes and bad kernel versions are refused with a message naming the path', () => {
  const cases: Array<[string, RegExp]> = [
    ['/lib/modules/6.1/../../../etc/evil.ko', /'\.\.' segment/],
    ['/lib/modules/../modules/6.1/x.ko', /'\.\.' segment/],
    ['lib/modules/6.1/x.ko', /not an absolute path/],
    ['/lib/modules/6.1\n/x.ko', /control characters/],
    ['/lib/modules/6\u0007/x.ko', /control characters/],
    ['/lib/modules/6.1\0/x.ko', /NUL/],
  ];
  for (const [p, re] of cases) {
    assert.throws(() => classifyModulePath(p), (err: unknown) => err instanceof PathRefusedError && re.test(err.message) && err.message.startsWith(JSON.stringify(p)), p);
  }
  assert.throws(() => validateKver(''), /empty kernel version/);
  assert.throws(() => validateKver('a/b'), /contains '\/'/);
  assert.throws(() => validateKver('6..1'), /contains '\.\.'/);
});

test('symlinks leading out of the module directory or the root are refused; inside ones pass', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'depmod-tx-paths-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const outside = mkdtempSync(join(tmpdir(), 'depmod-tx-outside-'));
  t.after(() => rmSync(outside, { recursive: true, force: true }));
  mkdirSync(join(root, 'lib/modules/6.1/kernel'), { recursive: true });
  mkdirSync(join(root, 'etc'), { recursive: true });
  symlinkSync('../../../../etc', join(root, 'lib/modules/6.1/kernel/sneaky'));
  symlinkSync(outside, join(root, 'lib/modules/6.1/abs'));
  symlinkSync('kernel', join(root, 'lib/modules/6.1/alias'));
  symlinkSync(outside, join(root, 'lib/modules/7.0'));
  assert.throws(() => classifyUnderRoot(root, '/lib/modules/6.1/kernel/sneaky/x.ko'), /outside the module directory/);
  assert.throws(() => classifyUnderRoot(root, '/lib/modules/6.1/abs/new/x.ko'), /outside the module directory/);
  assert.throws(() => classifyUnderRoot(root, '/lib/modules/7.0/x.ko'), /outside the root/);
  // Not yet unpacked (apt pre-install) and a symlink staying inside the tree are fine.
  assert.equal(classifyUnderRoot(root, '/lib/modules/6.1/kernel/drivers/new.ko')?.kver, '6.1');
  assert.equal(classifyUnderRoot(root, '/lib/modules/6.1/alias/x.ko')?.kver, '6.1');
  // A kernel whose directory does not exist yet (new kernel package) is fine too.
  assert.equal(classifyUnderRoot(root, '/usr/lib/modules/6.9/kernel/x.ko')?.kver, '6.9');
});
