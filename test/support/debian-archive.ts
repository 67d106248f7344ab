// Debian packages the tests need from other suites or architectures, fetched with apt into private
// state under .cache: the machine's own apt configuration, lists and installed packages are never
// touched. One place for the apt options (privateApt) and for downloading + unpacking (unpacked).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * apt-get/apt-cache options that point every piece of state into DIR, for architecture ARCH; with
 * SUITE, the host's main Debian mirror for that suite instead of the host's own suites.
 */
export function privateApt(arch: string, dir: string, suite?: string): string[] {
  for (const d of ['etc/apt.conf.d', 'etc/preferences.d', 'etc/sources.list.d', 'state/lists/partial', 'cache/archives/partial']) mkdirSync(join(dir, d), { recursive: true });
  const targets = execFileSync('apt-get', ['indextargets', '--format', '$(SITE) $(RELEASE) $(COMPONENT)', 'Created-By: Packages'], { encoding: 'utf8' });
  let debian = [...new Set(targets.split('\n').filter((l) => /\/debian(-security)?\/? /.test(l)))];
  if (debian.length === 0) debian = ['http://deb.debian.org/debian bookworm main'];
  if (suite !== undefined) debian = [`${(debian.find((l) => /\/debian\/? /.test(l)) ?? 'http://deb.debian.org/debian').split(' ')[0]} ${suite} main`];
  const lines = debian.map((l) => `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${l}\n`);
  writeFileSync(join(dir, 'etc', 'sources.list'), lines.join(''));
  return [
    '-o', `Dir::Etc=${join(dir, 'etc')}`,
    '-o', `Dir::State=${join(dir, 'state')}`,
    '-o', `Dir::Cache=${join(dir, 'cache')}`,
    '-o', 'Dir::State::status=/dev/null',
    '-o', `APT::Architecture=${arch}`,
    '-o', `APT::Architectures::=${arch}`,
    '-o', 'Debug::NoLocking=1',
    '-o', 'APT::Sandbox::User=root',
  ];
}

export function hostArch(): string {
  return execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
}

const aptCache = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '.cache', 'apt');

/**
 * Private apt options for SUITE on this machine's architecture, with lists in .cache/apt/SUITE-ARCH,
 * fetched once (a finished `apt-get update` leaves .updated; lists are never older than the cache).
 */
export function suiteApt(suite: string): string[] {
  const arch = hostArch();
  const dir = join(aptCache, `${suite}-${arch}`);
  const apt = privateApt(arch, dir, suite);
  if (!existsSync(join(dir, '.updated'))) {
    execFileSync('apt-get', [...apt, '-qq', 'update'], { stdio: ['ignore', 'ignore', 'inherit'] });
    writeFileSync(join(dir, '.updated'), '');
  }
  return apt;
}

/**
 * The packages PKGS of SUITE (host architecture) unpacked together into BASE/root, once: BASE/.complete
 * marks a finished unpack, so an interrupted one starts over. Returns BASE/root.
 */
export function unpackedFromSuite(base: string, suite: string, pkgs: readonly string[]): string {
  const root = join(base, 'root');
  if (existsSync(join(base, '.complete'))) return root;
  rmSync(base, { recursive: true, force: true });
  const apt = suiteApt(suite);
  const dl = join(base, 'deb');
  mkdirSync(dl, { recursive: true });
  execFileSync('apt-get', [...apt, '-q', 'download', ...pkgs], { cwd: dl, stdio: ['ignore', 'ignore', 'inherit'] });
  for (const deb of readdirSync(dl)) execFileSync('dpkg-deb', ['-x', join(dl, deb), root]);
  rmSync(dl, { recursive: true, force: true });
  writeFileSync(join(base, '.complete'), '');
  return root;
}

/** The newest package of SUITE whose name matches REGEX (apt-cache search --names-only). */
export function newestPackage(suite: string, regex: string): string {
  const out = execFileSync('apt-cache', [...suiteApt(suite), 'search', '--names-only', regex], { encoding: 'utf8' });
  const names = out.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n !== '');
  if (names.length === 0) throw new Error(`no package matching ${regex} in ${suite}`);
  return names.sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).pop()!;
}
