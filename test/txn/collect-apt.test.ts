import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collectAptHook, parseAptHookInfo } from '../../src/txn/collect-apt.ts';
import { commit, type MergeRequest } from '../../src/txn/commit.ts';
import { readJournal } from '../../src/txn/journal.ts';

const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const aptSkip = have('apt-get') && have('dpkg-deb') ? false : 'apt-get and dpkg-deb are needed to capture real hook input';

test('protocol v3 text as documented in apt.conf(5): config section, then 9-field package lines', () => {
  const text = [
    'VERSION 3',
    'APT::Architecture=amd64',
    'DPkg::Pre-Install-Pkgs::=/usr/sbin/depmod-tx%20record',
    'DPkg::Pre-Install-Pkgs::=/bin/true',
    'Weird%3Dkey=value%25with%0Anewline',
    '',
    'linux-image-6.1.0-57-amd64 - - none < 6.1.200-1 amd64 none /var/cache/apt/archives/linux-image-6.1.0-57-amd64_6.1.200-1_amd64.deb',
    'foo-dkms 1.0 amd64 same = 1.0 amd64 same **CONFIGURE**',
    'linux-image-6.1.0-50-amd64 6.1.150-1 amd64 none > - - none **REMOVE**',
    'bar 2 all foreign > 1 all foreign /tmp/dir with space/bar_1_all.deb',
    '',
  ].join('\n');
  const info = parseAptHookInfo(text);
  assert.equal(info.version, 3);
  assert.deepEqual(info.config.get('APT::Architecture'), ['amd64']);
  assert.deepEqual(info.config.get('DPkg::Pre-Install-Pkgs'), ['/usr/sbin/depmod-tx record', '/bin/true']);
  assert.deepEqual(info.config.get('Weird=key'), ['value%with\nnewline']);
  assert.deepEqual(
    info.actions.map((a) => [a.package, a.oldVersion, a.oldArch, a.oldMultiArch, a.direction, a.newVersion, a.newArch, a.newMultiArch, a.action]),
    [
      ['linux-image-6.1.0-57-amd64', null, null, 'none', '<', '6.1.200-1', 'amd64', 'none', { kind: 'unpack', deb: '/var/cache/apt/archives/linux-image-6.1.0-57-amd64_6.1.200-1_amd64.deb' }],
      ['foo-dkms', '1.0', 'amd64', 'same', '=', '1.0', 'amd64', 'same', { kind: 'configure' }],
      ['linux-image-6.1.0-50-amd64', '6.1.150-1', 'amd64', 'none', '>', null, null, 'none', { kind: 'remove' }],
      ['bar', '2', 'all', 'foreign', '>', '1', 'all', 'foreign', { kind: 'unpack', deb: '/tmp/dir with space/bar_1_all.deb' }],
    ],
  );
  assert.equal(parseAptHookInfo('VERSION 2\n\npkg - < 1.0 /x/pkg.deb\n').actions[0]?.action.kind, 'unpack');
  assert.deepEqual(parseAptHookInfo('/a.deb\n/b.deb\n').actions.map((a) => a.action), [{ kind: 'unpack', deb: '/a.deb' }, { kind: 'unpack', deb: '/b.deb' }]);
  assert.throws(() => parseAptHookInfo('VERSION 3\n\npkg 1 < 2 /x.deb\n', 'hook-in'), /^FormatError: hook-in: line 3: expected 9 fields/);
});

function deb(dir: string, name: string, version: string, arch: string, files: string[], multiArch?: string): string {
  const pkg = join(dir, `${name}-${version}`);
  mkdirSync(join(pkg, 'DEBIAN'), { recursive: true });
  writeFileSync(join(pkg, 'DEBIAN/control'), `Package: ${name}\nVersion: ${version}\nArchitecture: ${arch}\n${multiArch ? `Multi-Arch: ${multiArch}\n` : ''}Maintainer: T <t@example.org>\nDescription: test\n`);
  for (const f of files) {
    mkdirSync(join(pkg, f, '..'), { recursive: true });
    writeFileSync(join(pkg, f), 'x');
  }
  const out = join(dir, `${name}_${version}_${arch}.deb`);
  execFileSync('dpkg-deb', ['-Zxz', '--root-owner-group', '--build', pkg, out], { stdio: ['ignore', 'ignore', 'inherit'] });
  return out;
}

test('real apt-get hook input (upgrade + removal + new install) is recorded per kernel', { skip: aptSkip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'depmod-tx-apt-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  const root = join(dir, 'root');
  const K1 = '6.1.0-90-test';
  const K2 = '6.1.0-91-test';
  // Installed kernels ship modules.order (commit takes a directory without it and without modules for a removed kernel's).
  for (const k of [K1, K2]) {
    mkdirSync(join(root, 'lib/modules', k), { recursive: true });
    writeFileSync(join(root, 'lib/modules', k, 'modules.order'), '');
  }
  // Installed state (the system as dpkg knows it), in a throwaway apt/dpkg state.
  const admin = join(dir, 'admin');
  mkdirSync(join(admin, 'info'), { recursive: true });
  const stanza = (p: string, v: string, a: string, ma?: string) =>
    `Package: ${p}\nStatus: install ok installed\nPriority: optional\nSection: kernel\nMaintainer: T <t@example.org>\nArchitecture: ${a}\n${ma ? `Multi-Arch: ${ma}\n` : ''}Version: ${v}\nDescription: test\n\n`;
  writeFileSync(join(admin, 'status'), stanza('foo-modules', '0.9', arch, 'same') + stanza('bar-modules', '2.0', arch));
  const info = join(root, 'var/lib/dpkg/info');
  mkdirSync(info, { recursive: true });
  writeFileSync(join(info, `foo-modules:${arch}.list`), `/.\n/lib\n/lib/modules\n/lib/modules/${K1}\n/lib/modules/${K1}/extra/foo-old.ko\n/lib/modules/${K1}/extra/foo.ko\n/usr/share/doc/foo-modules\n`);
  writeFileSync(join(info, 'bar-modules.list'), `/.\n/lib/modules/${K2}/extra/bar.ko.xz\n/usr/share/doc/bar-modules/copyright\n`);
  const fooDeb = deb(dir, 'foo-modules', '1.0', arch, [`lib/modules/${K1}/extra/foo.ko`, `lib/modules/${K2}/extra/foo.ko`, 'usr/share/doc/foo-modules/README'], 'same');
  const newDeb = deb(dir, 'baz-modules', '3.0', arch, [`usr/lib/modules/${K2}/updates/baz.ko.zst`]);
  for (const d of ['state/lists/partial', 'cache/archives/partial', 'etc/apt.conf.d', 'etc/preferences.d', 'etc/sources.list.d']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'etc/sources.list'), '');
  // The hook saves its input and fails, so apt stops before ever running dpkg.
  const hook = join(dir, 'hook.sh');
  const captured = join(dir, 'hook.in');
  writeFileSync(hook, `#!/bin/sh\ncat > '${captured}'\nexit 1\n`);
  chmodSync(hook, 0o755);
  spawnSync('apt-get', [
    '-y', '-q',
    '-o', `Dir::State=${join(dir, 'state')}`,
    '-o', `Dir::State::status=${join(admin, 'status')}`,
    '-o', `Dir::Cache=${join(dir, 'cache')}`,
    '-o', `Dir::Etc=${join(dir, 'etc')}`,
    '-o', 'Debug::NoLocking=1',
    '-o', `DPkg::Pre-Install-Pkgs::=${hook}`,
    '-o', `DPkg::Tools::Options::${hook}::Version=3`,
    'install', fooDeb, newDeb, 'bar-modules-',
  ], { encoding: 'utf8', cwd: dir });
  assert.ok(existsSync(captured), 'apt ran the Pre-Install-Pkgs hook');
  const text = readFileSync(captured, 'utf8');
  assert.match(text, /^VERSION 3\n/);
  const parsed = parseAptHookInfo(text, captured);
  assert.deepEqual(parsed.config.get('APT::Architecture'), [arch]);
  const kinds = parsed.actions.map((a) => `${a.package} ${a.oldVersion ?? '-'} ${a.direction} ${a.newVersion ?? '-'} ${a.action.kind}`).sort();
  assert.deepEqual(kinds, ['bar-modules 2.0 > - remove', 'baz-modules - < 3.0 configure', 'baz-modules - < 3.0 unpack', 'foo-modules 0.9 < 1.0 configure', 'foo-modules 0.9 < 1.0 unpack']);

  const r = await collectAptHook({ root, text, txn: 'apt-1', file: captured });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.refused, []);
  const events = (await readJournal(root)).events.map((e) => `${e.op} ${e.package} ${e.path}`).sort();
  assert.deepEqual(events, [
    `add baz-modules /usr/lib/modules/${K2}/updates/baz.ko.zst`,
    `add foo-modules /lib/modules/${K1}/extra/foo.ko`,
    `add foo-modules /lib/modules/${K2}/extra/foo.ko`,
    `remove bar-modules /lib/modules/${K2}/extra/bar.ko.xz`,
    `remove foo-modules /lib/modules/${K1}/extra/foo-old.ko`,
    `remove foo-modules /lib/modules/${K1}/extra/foo.ko`,
  ]);
  const calls: MergeRequest[] = [];
  await commit({ root, merge: async (req) => (calls.push(req), { changed: true, files: [], ms: 0, kabi: { unknown: 0, mismatched: 0 } }) });
  assert.deepEqual(calls.map((c) => [c.kver, c.paths.length]).sort(), [[K1, 2], [K2, 3]]);
});
