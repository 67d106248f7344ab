// The archive fetch rule (debian-archive.ts) against a mirror whose state the test decides: local
// file: repositories with one good suite, one whose index disagrees with its Release file (what a
// mirror mid-sync serves: "File has unexpected size ... Mirror sync in progress?") and one that does
// not exist. The good suite's packages must still be delivered; a package nobody has must fail with
// its name; nothing here depends on the real mirror.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { aptDownload, aptUpdate, failedFetches, hostArch, privateApt, unpackedPackages, type RetryPolicy } from './debian-archive.ts';

const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const skip = have('apt-get') && have('dpkg-deb') ? false : 'needs apt-get and dpkg-deb';
const QUICK: RetryPolicy = { attempts: 2, delayMs: 0 };

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A suite SUITE under REPO/dists with one Packages index; SIZE_SKEW misstates its size in Release. */
function suite(repo: string, name: string, arch: string, stanzas: string, sizeSkew = 0): void {
  const dir = join(repo, 'dists', name);
  mkdirSync(join(dir, 'main', `binary-${arch}`), { recursive: true });
  writeFileSync(join(dir, 'main', `binary-${arch}`, 'Packages'), stanzas);
  const size = Buffer.byteLength(stanzas) + sizeSkew;
  writeFileSync(join(dir, 'Release'), `Suite: ${name}\nCodename: ${name}\nArchitectures: ${arch}\nComponents: main\nDate: Sat, 05 Dec 2026 00:00:00 UTC\nSHA256:\n ${sha256(stanzas)} ${size} main/binary-${arch}/Packages\n`);
}

function debStanza(repo: string, name: string, arch: string): string {
  const stage = join(repo, 'stage', name);
  mkdirSync(join(stage, 'DEBIAN'), { recursive: true });
  mkdirSync(join(stage, 'usr', 'share', name), { recursive: true });
  writeFileSync(join(stage, 'usr', 'share', name, 'payload'), `${name}\n`);
  writeFileSync(join(stage, 'DEBIAN', 'control'), `Package: ${name}\nVersion: 1.0\nArchitecture: ${arch}\nMaintainer: T <t@example.org>\nDescription: archive fetch test\n`);
  mkdirSync(join(repo, 'pool'), { recursive: true });
  const rel = `pool/${name}_1.0_${arch}.deb`;
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', stage, join(repo, rel)], { stdio: 'ignore' });
  const bytes = readFileSync(join(repo, rel));
  const control = execFileSync('dpkg-deb', ['-f', join(repo, rel)], { encoding: 'utf8' }).trimEnd();
  return `${control}\nFilename: ${rel}\nSize: ${statSync(join(repo, rel)).size}\nSHA256: ${sha256(bytes)}\n\n`;
}

test('a suite mid-sync and a missing suite beside a good one: the good suite\'s packages are delivered, the failed indexes named', { skip }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dtx-archive-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const arch = hostArch();
  const repo = join(dir, 'repo');
  suite(repo, 'good', arch, debStanza(repo, 'dtx-good', arch));
  suite(repo, 'syncing', arch, debStanza(repo, 'dtx-syncing', arch), 7);
  const sources = ['good', 'syncing', 'nope'].map((s) => `deb [trusted=yes] file:${repo} ${s} main`);
  const apt = privateApt(arch, join(dir, 'apt'), undefined, sources);

  // Without the rule this is what failed CI: apt-get update exits 100 though the good index arrived.
  assert.equal(spawnSync('apt-get', [...apt, '-qq', 'update'], { stdio: 'ignore' }).status, 100, 'apt-get update itself fails on this mirror');

  const warned: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => (warned.push(String(s)), true)) as typeof process.stderr.write;
  let result;
  try {
    result = aptUpdate(apt, 'test mirror', QUICK);
  } finally {
    process.stderr.write = write;
  }
  assert.deepEqual(result.indexes.map((l) => l.split(' ').slice(1, 2)[0]), ['good'], 'only the good suite is usable');
  assert.equal(result.failed.length, 2, result.failed.join('\n'));
  assert.ok(result.failed.some((f) => f.includes('/dists/syncing/main/binary-')), result.failed.join('\n'));
  assert.ok(result.failed.some((f) => f.includes('/dists/nope/')), result.failed.join('\n'));
  const said = warned.join('');
  assert.match(said, /test mirror: apt-get update: 2 index\(es\) could not be fetched after 2 attempts/);
  assert.match(said, /dists\/syncing\/main\/binary-\S+\/Packages/);

  const root = unpackedPackages(join(dir, 'unpacked'), apt, ['dtx-good']);
  assert.equal(readFileSync(join(root, 'usr', 'share', 'dtx-good', 'payload'), 'utf8'), 'dtx-good\n');
  assert.ok(existsSync(join(dir, 'unpacked', '.complete')));

  // The package only the broken index has cannot be had: the error names it, nothing half-unpacked.
  assert.throws(() => unpackedPackages(join(dir, 'broken'), apt, ['dtx-syncing']), /apt-get download could not fetch dtx-syncing/);
  assert.ok(!existsSync(join(dir, 'broken', '.complete')));
});

test('an update that gets no index at all is an error naming what failed; a download retried and then refused names the package', { skip }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dtx-archive-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const arch = hostArch();
  const repo = join(dir, 'repo');
  suite(repo, 'syncing', arch, debStanza(repo, 'dtx-syncing', arch), -3);
  const apt = privateApt(arch, join(dir, 'apt'), undefined, [`deb [trusted=yes] file:${repo} syncing main`]);
  assert.throws(() => aptUpdate(apt, 'dead mirror', QUICK), /dead mirror: apt-get update got no package index in 2 attempts:[^]*syncing/);
  mkdirSync(join(dir, 'dl'));
  assert.throws(() => aptDownload(apt, ['dtx-nowhere'], join(dir, 'dl'), QUICK), /could not fetch dtx-nowhere/);
  assert.deepEqual(readdirSync(join(dir, 'dl')), []);
});

test('failedFetches reads apt\'s failure lines (mirror mid-sync, missing Release)', () => {
  const stderr = [
    'E: Failed to fetch http://deb.debian.org/debian-security/dists/bookworm-security/main/binary-armhf/Packages.xz  File has unexpected size (356624 != 356976). Mirror sync in progress? [IP: 203.0.113.80 80]',
    '   Hashes of expected file:',
    "E: The repository 'http://deb.debian.org/debian nope Release' does not have a Release file.",
    'E: Some index files failed to download. They have been ignored, or old ones used instead.',
  ].join('\n');
  assert.deepEqual(failedFetches(stderr), [
    'http://deb.debian.org/debian-security/dists/bookworm-security/main/binary-armhf/Packages.xz (File has unexpected size (356624 != 356976). Mirror sync in progress? [IP: 203.0.113.80 80])',
    'http://deb.debian.org/debian nope Release (does not have a Release file.)',
  ]);
});
