import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listDebPayload } from '../../src/txn/collect-deb.ts';
import { classifyModulePath } from '../../src/txn/paths.ts';
import { kernelCache, realKernel, realKernelSkipReason } from '../support/kernels.ts';

const hasDpkgDeb = spawnSync('sh', ['-c', 'command -v dpkg-deb'], { stdio: 'ignore' }).status === 0;

/** dpkg's own view of the payload: every non-directory name, normalised to /path. */
function dpkgListing(deb: string): string[] {
  const out = execFileSync('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -t', 'sh', deb], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return out
    .split('\n')
    .filter((l) => l !== '' && !l.endsWith('/'))
    .map((l) => '/' + l.replace(/^\.\//, ''));
}

function buildDeb(dir: string, comp: string): string {
  const pkg = join(dir, `pkg-${comp}`);
  mkdirSync(join(pkg, 'DEBIAN'), { recursive: true });
  writeFileSync(join(pkg, 'DEBIAN/control'), 'Package: test-modules\nVersion: 1.0\nArchitecture: all\nMaintainer: T <t@example.org>\nDescription: test\n');
  const m = join(pkg, 'lib/modules/6.1.0-test/updates/dkms');
  mkdirSync(m, { recursive: true });
  writeFileSync(join(m, 'foo.ko.xz'), 'not really xz');
  writeFileSync(join(m, 'bar-baz.ko'), 'x');
  writeFileSync(join(m, 'name with space.ko.zst'), 'x');
  mkdirSync(join(pkg, 'usr/lib/modules/6.2.0-test/kernel'), { recursive: true });
  writeFileSync(join(pkg, 'usr/lib/modules/6.2.0-test/kernel/q.ko.gz'), 'x');
  symlinkSync('foo.ko.xz', join(m, 'foo-link.ko.xz'));
  mkdirSync(join(pkg, 'usr/share/doc/test-modules'), { recursive: true });
  writeFileSync(join(pkg, 'usr/share/doc/test-modules/README'), 'hi');
  // A long name exercises tar's GNU/PAX long-name records.
  const deep = join(m, 'd'.repeat(60), 'e'.repeat(60));
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(deep, 'long-module-name-' + 'x'.repeat(40) + '.ko'), 'x');
  const deb = join(dir, `test-${comp}.deb`);
  execFileSync('dpkg-deb', [`-Z${comp}`, '--root-owner-group', '--build', pkg, deb], { stdio: ['ignore', 'ignore', 'inherit'] });
  return deb;
}

for (const [comp, expect] of [['xz', 'xz'], ['gzip', 'gz'], ['zstd', 'zst'], ['none', 'none']] as const) {
  test(`.deb payload listing matches dpkg-deb's (data.tar, -Z${comp})`, { skip: hasDpkgDeb ? false : 'dpkg-deb not installed' }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'depmod-tx-deb-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    let deb: string;
    try {
      deb = buildDeb(dir, comp);
    } catch (err) {
      if (comp === 'zstd') return t.skip(`dpkg-deb cannot build -Zzstd here: ${(err as Error).message}`);
      throw err;
    }
    const got = await listDebPayload(deb);
    assert.equal(got.compression, expect);
    assert.deepEqual(got.paths, dpkgListing(deb));
    const modules = got.paths.flatMap((p) => classifyModulePath(p) ?? []).map((m) => `${m.kver} ${m.rel}`);
    assert.deepEqual(modules.sort(), [
      '6.1.0-test updates/dkms/bar-baz.ko',
      `6.1.0-test updates/dkms/${'d'.repeat(60)}/${'e'.repeat(60)}/long-module-name-${'x'.repeat(40)}.ko`,
      '6.1.0-test updates/dkms/foo-link.ko.xz',
      '6.1.0-test updates/dkms/foo.ko.xz',
      '6.1.0-test updates/dkms/name with space.ko.zst',
      '6.2.0-test kernel/q.ko.gz',
    ]);
  });
}

test('a damaged .deb is a FormatError naming the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'depmod-tx-deb-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bad = join(dir, 'bad.deb');
  writeFileSync(bad, 'PK\x03\x04 not an ar archive');
  await assert.rejects(listDebPayload(bad), (e: Error) => e.name === 'FormatError' && e.message.startsWith(bad) && /no ar magic/.test(e.message));
  writeFileSync(bad, '!<arch>\ndata.tar.xz/    0           0     0     100644  99999     `\nxx');
  await assert.rejects(listDebPayload(bad), /runs past the end/);
});

test("real Debian kernel image .deb: its module paths are exactly the tree's module files", { skip: realKernelSkipReason() ?? false }, async () => {
  const k = realKernel('cloud-amd64');
  const debName = readdirSync(kernelCache).find((f) => f.startsWith(`linux-image-${k.kver}-unsigned_`) && f.endsWith('.deb'));
  assert.ok(debName, 'kernel image .deb in the cache');
  const got = await listDebPayload(join(kernelCache, debName));
  assert.equal(got.compression, 'xz');
  const modules = got.paths.flatMap((p) => classifyModulePath(p) ?? []);
  const onDisk = execFileSync('find', ['.', '-name', '*.ko*', '(', '-type', 'f', '-o', '-type', 'l', ')'], { cwd: k.moddir, encoding: 'utf8' })
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.slice(2))
    .sort();
  assert.equal(modules.length, onDisk.length);
  assert.deepEqual(modules.map((m) => m.rel).sort(), onDisk);
  assert.ok(modules.every((m) => m.kver === k.kver && m.moddir === `/lib/modules/${k.kver}`));
});
