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

function buildDeb(dir: string, comp: string, opts: { md5sums?: boolean } = {}): string {
  const pkg = join(dir, `pkg-${comp}${opts.md5sums ? '-md5' : ''}`);
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
  if (opts.md5sums) {
    // As dh_md5sums writes it: every regular file, relative to /, symbolic links left out.
    const files = execFileSync('find', ['.', '-path', './DEBIAN', '-prune', '-o', '-type', 'f', '-printf', '%P\\n'], { cwd: pkg, encoding: 'utf8' }).split('\n').filter((l) => l !== '');
    writeFileSync(join(pkg, 'DEBIAN/md5sums'), execFileSync('md5sum', files, { cwd: pkg, encoding: 'utf8' }));
  }
  const deb = join(dir, `test-${comp}${opts.md5sums ? '-md5' : ''}.deb`);
  execFileSync('dpkg-deb', [`-Z${comp}`, '--root-owner-group', '--build', pkg, deb], { stdio: ['ignore', 'ignore', 'inherit'] });
  return deb;
}

const MODULES = [
  '6.1.0-test updates/dkms/bar-baz.ko',
  `6.1.0-test updates/dkms/${'d'.repeat(60)}/${'e'.repeat(60)}/long-module-name-${'x'.repeat(40)}.ko`,
  '6.1.0-test updates/dkms/foo-link.ko.xz',
  '6.1.0-test updates/dkms/foo.ko.xz',
  '6.1.0-test updates/dkms/name with space.ko.zst',
  '6.2.0-test kernel/q.ko.gz',
];
const modulesOf = (paths: string[]): string[] => paths.flatMap((p) => classifyModulePath(p) ?? []).map((m) => `${m.kver} ${m.rel}`).sort();

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
    // No md5sums (dpkg-deb alone does not write one): the payload, through dpkg-deb and decompressed here.
    for (const dpkgDeb of [undefined, false] as const) {
      const got = await listDebPayload(deb, dpkgDeb === false ? { dpkgDeb } : {});
      assert.equal(got.compression, expect);
      assert.equal(got.source, 'data.tar');
      assert.deepEqual(got.paths, dpkgListing(deb), `dpkgDeb: ${String(dpkgDeb)}`);
      assert.deepEqual(modulesOf(got.paths), MODULES);
    }
    // With md5sums: its regular files (the symbolic link is not listed), the payload untouched.
    const withMd5 = buildDeb(dir, comp, { md5sums: true });
    const got = await listDebPayload(withMd5);
    assert.equal(got.source, 'md5sums');
    assert.deepEqual(got.paths.sort(), dpkgListing(withMd5).filter((p) => !p.endsWith('/foo-link.ko.xz')).sort());
    assert.deepEqual(modulesOf(got.paths), MODULES.filter((m) => !m.endsWith('foo-link.ko.xz')));
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
  const deb = join(kernelCache, debName);
  const t0 = performance.now();
  const got = await listDebPayload(deb);
  const ours = performance.now() - t0;
  assert.equal(got.compression, 'xz');
  assert.equal(got.source, 'md5sums');
  // Issue 15 point 5: the listing costs no more than dpkg-deb -c's (which decodes the whole data.tar.xz).
  const t1 = performance.now();
  execFileSync('dpkg-deb', ['-c', deb], { stdio: ['ignore', 'ignore', 'inherit'], maxBuffer: 64 << 20 });
  const dpkgC = performance.now() - t1;
  console.log(`listing ${debName}: md5sums ${ours.toFixed(0)} ms, dpkg-deb -c ${dpkgC.toFixed(0)} ms`);
  assert.ok(ours <= dpkgC, `listing took ${ours.toFixed(0)} ms, dpkg-deb -c ${dpkgC.toFixed(0)} ms`);
  // The payload says the same about modules.
  const payload = await listDebPayload(deb, { md5sums: false });
  assert.deepEqual(modulesOf(payload.paths), modulesOf(got.paths));
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
