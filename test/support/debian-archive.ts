// Debian packages the tests need (real kernels, other suites, other architectures), fetched with
// apt. One place for fetching from the archive: private apt state (privateApt), an `apt-get update`
// that survives a mirror mid-sync (aptUpdate), downloads with bounded retries (aptDownload), and
// download + unpack (unpackedFromSuite). The machine's own apt configuration, lists and installed
// packages are never touched by the private helpers.
//
// The mirror rule: Debian's mirrors sync in stages, and while one suite's index (e.g.
// bookworm-security's binary-armhf/Packages.xz) disagrees with its Release file, `apt-get update`
// exits 100 though every other index arrived. A broken index the tests do not need is not a failure:
// the update is retried a bounded number of times, then its lists are taken as they are, the failed
// indexes named on stderr. A package that then cannot be resolved or downloaded fails the test with
// an error naming it.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** How often and how patiently a fetch from the archive is tried. */
export interface RetryPolicy {
  attempts: number;
  /** Wait before the second attempt; doubled for each later one. */
  delayMs: number;
}

/** DEPMOD_TX_APT_ATTEMPTS overrides the attempts (e.g. 1 on a machine known to be offline). */
export const ARCHIVE_RETRY: RetryPolicy = {
  attempts: Math.max(1, Number(process.env.DEPMOD_TX_APT_ATTEMPTS ?? 3) || 3),
  delayMs: 3_000,
};

function sleepSync(ms: number): void {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The Debian suites of this machine's apt sources, as `URI SUITE COMPONENT` lines. */
export function hostDebianSources(suite?: string): string[] {
  const targets = execFileSync('apt-get', ['indextargets', '--format', '$(SITE) $(RELEASE) $(COMPONENT)', 'Created-By: Packages'], { encoding: 'utf8' });
  let debian = [...new Set(targets.split('\n').filter((l) => /\/debian(-security)?\/? /.test(l)))];
  if (debian.length === 0) debian = ['http://deb.debian.org/debian bookworm main'];
  if (suite !== undefined) debian = [`${(debian.find((l) => /\/debian\/? /.test(l)) ?? 'http://deb.debian.org/debian').split(' ')[0]} ${suite} main`];
  return debian.map((l) => `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${l}`);
}

/**
 * apt-get/apt-cache options that point every piece of state into DIR, for architecture ARCH, with
 * SOURCES (sources.list lines) as the only sources: by default the host's Debian suites, with SUITE
 * given the host's main Debian mirror for that suite alone.
 */
export function privateApt(arch: string, dir: string, suite?: string, sources: readonly string[] = hostDebianSources(suite)): string[] {
  for (const d of ['etc/apt.conf.d', 'etc/preferences.d', 'etc/sources.list.d', 'state/lists/partial', 'cache/archives/partial']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'etc', 'sources.list'), sources.map((l) => `${l}\n`).join(''));
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

/** What an `apt-get update` left usable, and what it could not fetch. */
export interface UpdateResult {
  /** Package indexes apt now has (`apt-get indextargets`: RELEASE COMPONENT ARCH). */
  indexes: string[];
  /** Indexes or release files that failed on the last attempt (URI and apt's reason), if any. */
  failed: string[];
}

function usableIndexes(apt: readonly string[]): string[] {
  const out = execFileSync('apt-get', [...apt, 'indextargets', '--format', '$(SITE) $(RELEASE) $(COMPONENT) $(ARCHITECTURE)', 'Created-By: Packages'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l !== '');
}

/** apt's `E:`/`W:` lines naming what it failed to fetch, with the line that follows (the reason). */
export function failedFetches(stderr: string): string[] {
  const failed: string[] = [];
  for (const m of stderr.matchAll(/^[EW]: (?:Failed to fetch (\S+)\s+(.*)|The repository '([^']+)' (.*))$/gm)) {
    failed.push(m[1] !== undefined ? `${m[1]} (${m[2]!.trim()})` : `${m[3]} (${m[4]!.trim()})`);
  }
  return failed;
}

/**
 * `apt-get update` with APT's options, tried POLICY.attempts times while it fails; then accepted as
 * it is when at least one package index arrived (the failed ones named on stderr, under LABEL).
 * Throws, with apt's stderr, when no index at all could be had.
 */
export function aptUpdate(apt: readonly string[], label: string, policy: RetryPolicy = ARCHIVE_RETRY): UpdateResult {
  let stderr = '';
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    if (attempt > 1) sleepSync(policy.delayMs * 2 ** (attempt - 2));
    const r = spawnSync('apt-get', [...apt, '-q', 'update'], { encoding: 'utf8', maxBuffer: 1 << 26 });
    stderr = `${r.stderr ?? ''}${r.error ? String(r.error) : ''}`;
    if (r.status === 0 && failedFetches(stderr).length === 0) return { indexes: usableIndexes(apt), failed: [] };
  }
  const indexes = usableIndexes(apt);
  const failed = failedFetches(stderr);
  if (indexes.length === 0) throw new Error(`${label}: apt-get update got no package index in ${policy.attempts} attempts:\n${stderr}`);
  process.stderr.write(`${label}: apt-get update: ${failed.length || 'some'} index(es) could not be fetched after ${policy.attempts} attempts; continuing with the ${indexes.length} that arrived:\n${failed.map((f) => `  ${f}\n`).join('')}`);
  return { indexes, failed };
}

/**
 * `apt-get download PKGS` into DIR with APT's options, retried while it fails. A package that cannot
 * be had after the last attempt throws an error naming it.
 */
export function aptDownload(apt: readonly string[], pkgs: readonly string[], dir: string, policy: RetryPolicy = ARCHIVE_RETRY): void {
  let stderr = '';
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    if (attempt > 1) sleepSync(policy.delayMs * 2 ** (attempt - 2));
    const r = spawnSync('apt-get', [...apt, '-q', 'download', ...pkgs], { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.status === 0) return;
    stderr = `${r.stderr ?? ''}${r.error ? String(r.error) : ''}`;
    // A package apt does not know will not appear by retrying.
    if (/^E: (Unable to locate package|Version '.*' for '.*' was not found|Can't select)/m.test(stderr)) break;
  }
  const missing = pkgs.filter((p) => !readdirSync(dir).some((f) => f.startsWith(`${p.split('=')[0]!.split(':')[0]}_`)));
  throw new Error(`apt-get download could not fetch ${missing.join(', ') || pkgs.join(', ')}:\n${stderr.trim()}`);
}

export function hostArch(): string {
  return execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
}

const aptCache = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '.cache', 'apt');

/**
 * Private apt options for SUITE on this machine's architecture, with lists in .cache/apt/SUITE-ARCH,
 * fetched once (a finished update leaves .updated; lists are never older than the cache).
 */
export function suiteApt(suite: string): string[] {
  const arch = hostArch();
  const dir = join(aptCache, `${suite}-${arch}`);
  const apt = privateApt(arch, dir, suite);
  if (!existsSync(join(dir, '.updated'))) {
    aptUpdate(apt, `${suite} (${arch})`);
    writeFileSync(join(dir, '.updated'), '');
  }
  return apt;
}

/**
 * The packages PKGS (APT's options) unpacked together into BASE/root, once: BASE/.complete marks a
 * finished unpack, so an interrupted one starts over. Returns BASE/root.
 */
export function unpackedPackages(base: string, apt: readonly string[], pkgs: readonly string[]): string {
  const root = join(base, 'root');
  if (existsSync(join(base, '.complete'))) return root;
  rmSync(base, { recursive: true, force: true });
  const dl = join(base, 'deb');
  mkdirSync(dl, { recursive: true });
  aptDownload(apt, pkgs, dl);
  for (const deb of readdirSync(dl)) execFileSync('dpkg-deb', ['-x', join(dl, deb), root]);
  rmSync(dl, { recursive: true, force: true });
  writeFileSync(join(base, '.complete'), '');
  return root;
}

/** unpackedPackages from SUITE (host architecture). */
export function unpackedFromSuite(base: string, suite: string, pkgs: readonly string[]): string {
  if (existsSync(join(base, '.complete'))) return join(base, 'root');
  return unpackedPackages(base, suiteApt(suite), pkgs);
}

/** The newest package whose name matches REGEX (apt-cache search --names-only) with APT's options. */
export function newestPackageOf(apt: readonly string[], regex: string, where: string): string {
  const out = execFileSync('apt-cache', [...apt, 'search', '--names-only', regex], { encoding: 'utf8' });
  const names = out.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n !== '');
  if (names.length === 0) throw new Error(`no package matching ${regex} in ${where}`);
  return names.sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).pop()!;
}

/** The newest package of SUITE whose name matches REGEX. */
export function newestPackage(suite: string, regex: string): string {
  return newestPackageOf(suiteApt(suite), regex, suite);
}
