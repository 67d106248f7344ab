// Issue 26 on Debian's real cloud kernel tree: a package adds ten good modules and, beside them,
// the broken files a failed DKMS build or a full disk leaves (an ELF cut short, an empty .ko, junk,
// a .ko.xz of a cut ELF, a 3-byte .ko.xz, a .ko.xz holding no ELF, a cut .ko.zst). In one `update`
// and in one journaled `commit`, for kmod 30 and kmod 34.2 alike: the database is byte-identical
// to that kmod's `depmod -a` of the tree, its "failed to load symbols" lines (and what libkmod 34
// logs) come in its order, --json and status name every broken file, --strict exits 4, a no-op
// repeats them, and once the files are gone the next merge equals `depmod -a` again.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { EXIT } from '../../src/cli/exit-codes.ts';
import { recordEvents } from '../../src/txn/record.ts';
import { runCli } from '../support/cli.ts';
import { kmod30, kmod34, runOracle, type DepmodOracle } from '../support/kmod-oracles.ts';
import { cloneRoot, realKernel, realKernelSkipReason, type RealKernel } from '../support/kernels.ts';
import { diffFileSets, outputFiles } from './oracle-dir.ts';

const skip = realKernelSkipReason();

/** The broken files, by name under updates/vendor/, made from a real module. */
function brokenFiles(module: Uint8Array): Array<[string, Uint8Array]> {
  const xz = (b: Uint8Array): Uint8Array => new Uint8Array(execFileSync('xz', ['--check=crc32', '-c'], { input: b }));
  const zst = execFileSync('zstd', ['-q', '-c', '--content-size'], { input: module });
  return [
    ['cut.ko', module.subarray(0, 20000)],
    ['empty.ko', new Uint8Array(0)],
    ['junk.ko', new TextEncoder().encode('junk\n')],
    ['cutelf.ko.xz', xz(module.subarray(0, 20000))],
    ['bad3.ko.xz', new Uint8Array([0xfd, 0x37, 0x7a])],
    ['notelf.ko.xz', xz(new TextEncoder().encode('not an ELF file at all\n'))],
    ['cutzst.ko.zst', new Uint8Array(zst.subarray(0, zst.length >> 1))],
  ];
}

/** kmod's depmod -a on a hard-link clone of `root`: its files and stderr lines. */
function oracleRun(root: string, kver: string, oracle: DepmodOracle): { files: Map<string, Uint8Array>; stderr: string[] } {
  const clone = mkdtempSync(join(tmpdir(), 'dtx-unreadable-oracle-'));
  try {
    cloneRoot(root, join(clone, 'r'));
    const moddir = join(clone, 'r', 'lib', 'modules', kver);
    for (const f of outputFiles(moddir).keys()) rmSync(join(moddir, f));
    const r = runOracle(oracle, ['-b', join(clone, 'r'), '-a', kver]);
    assert.equal(r.status, 0, r.stderr);
    // Paths as depmod-tx prints them: under the work tree, not the clone.
    const stderr = r.stderr.replaceAll(join(clone, 'r'), root).split('\n').filter((l) => l !== '');
    return { files: outputFiles(moddir), stderr };
  } finally {
    rmSync(clone, { recursive: true, force: true });
  }
}

/** depmod's ERROR lines, as depmod-tx prints them (its own prefix) or as kmod does. */
function errorLines(stderr: string[] | string, prefix: string): string[] {
  const lines = typeof stderr === 'string' ? stderr.split('\n') : stderr;
  return lines.filter((l) => l.startsWith(`${prefix}ERROR: `)).map((l) => l.slice(prefix.length));
}

interface Scenario {
  k: RealKernel;
  work: string;
  root: string;
  moddir: string;
  /** The ten good modules, relative to the module directory, held back until the transaction. */
  good: string[];
  stash: string;
}

/** A copy of the cloud tree (real files: hard links to the shared pristine tree would let other tests' clones change their ctime) without the ten good modules. */
function scenario(): Scenario {
  const k = realKernel('cloud-amd64');
  const work = mkdtempSync(join(tmpdir(), 'dtx-unreadable-real-'));
  const root = join(work, 'r');
  execFileSync('cp', ['-a', '--reflink=auto', k.root, root]);
  const moddir = join(root, 'lib', 'modules', k.kver);
  const net = 'kernel/drivers/net';
  const good = readdirSync(join(moddir, net)).filter((f) => f.endsWith('.ko')).sort().slice(0, 10).map((f) => `${net}/${f}`);
  assert.equal(good.length, 10);
  const stash = join(work, 'stash');
  for (const g of good) {
    mkdirSync(dirname(join(stash, g)), { recursive: true });
    renameSync(join(moddir, g), join(stash, g));
  }
  return { k, work, root, moddir, good, stash };
}

/** The transaction: the good modules back, the broken files beside them. Returns the paths it touched (system namespace). */
function addPackage(s: Scenario): string[] {
  for (const g of s.good) renameSync(join(s.stash, g), join(s.moddir, g));
  mkdirSync(join(s.moddir, 'updates', 'vendor'), { recursive: true });
  // A module well over 20,000 bytes, so that the cut ones are cut.
  const broken = brokenFiles(readFileSync(join(s.moddir, 'kernel/drivers/net/virtio_net.ko')));
  for (const [name, bytes] of broken) writeFileSync(join(s.moddir, 'updates', 'vendor', name), bytes);
  return [...s.good, ...broken.map(([name]) => `updates/vendor/${name}`)].map((p) => `/lib/modules/${s.k.kver}/${p}`);
}

function removeBroken(s: Scenario): string[] {
  const dir = join(s.moddir, 'updates', 'vendor');
  const gone = readdirSync(dir).map((f) => `/lib/modules/${s.k.kver}/updates/vendor/${f}`);
  for (const f of readdirSync(dir)) unlinkSync(join(dir, f));
  return gone;
}

const BROKEN_COUNT = 7;

for (const oracleOf of [kmod30, kmod34]) {
  test(`update (${oracleOf.name}): good and broken modules in one call give ${oracleOf.name}'s database and lines; no-op repeats them; gone, depmod -a again`, { skip, timeout: 600_000 }, () => {
    const oracle = oracleOf();
    const s = scenario();
    try {
      const { root, k } = s;
      const update = (opts: string[] = [], paths: string[] = []) => runCli(['update', '--root', root, '--kmod-version', oracle.version, ...opts, k.kver, ...paths]);
      const first = update();
      assert.equal(first.code, 0, first.stderr);

      const touched = addPackage(s);
      const r = update(['--json'], touched);
      assert.equal(r.code, EXIT.ok, `kmod's exit status, not a stop: ${r.stderr}`);
      const theirs = oracleRun(root, k.kver, oracle);
      assert.deepEqual(diffFileSets(outputFiles(s.moddir), theirs.files), [], 'database as kmod writes it');
      // Every ERROR line depmod prints, in its order (module array order), libkmod's included.
      assert.deepEqual(errorLines(r.stderr, 'depmod-tx: '), errorLines(theirs.stderr, 'depmod: '));
      const failed = errorLines(theirs.stderr, 'depmod: ').filter((l) => l.startsWith('ERROR: failed to load symbols from '));
      assert.equal(failed.length, BROKEN_COUNT, theirs.stderr.join('\n'));
      const report = JSON.parse(r.stdout) as { unreadable: Array<{ kind: string; path: string; reason: string; detail: string }>; noop: boolean };
      assert.deepEqual(
        report.unreadable.map((u) => `ERROR: failed to load symbols from ${u.path}: ${u.reason}`),
        failed,
        'the --json report names every broken file with the reason depmod prints, in its order',
      );
      assert.ok(report.unreadable.every((u) => u.kind === 'unreadable' && u.detail !== ''));

      // Nothing changed: answered from the cache, the findings repeated; --strict fails on them.
      const again = update(['--json']);
      const noop = JSON.parse(again.stdout) as { noop: boolean; unreadable: unknown[] };
      assert.equal(noop.noop, true);
      assert.deepEqual(noop.unreadable, report.unreadable);
      assert.deepEqual(errorLines(again.stderr, 'depmod-tx: '), errorLines(theirs.stderr, 'depmod: '));
      // Without --json a summary line follows depmod's lines (without -v too): it names each file.
      const plain = update();
      for (const u of report.unreadable) assert.ok(plain.stderr.includes(`${u.path} (${u.reason})`), `summary names ${u.path}: ${plain.stderr}`);
      assert.equal(update(['--strict']).code, EXIT.unreadable);

      // The package is fixed: the broken files go; the next merge is depmod -a again, nothing reported.
      const gone = removeBroken(s);
      const fixed = update(['--json'], gone);
      assert.equal(fixed.code, 0, fixed.stderr);
      assert.deepEqual((JSON.parse(fixed.stdout) as { unreadable: unknown[] }).unreadable, []);
      assert.deepEqual(errorLines(fixed.stderr, 'depmod-tx: '), []);
      assert.deepEqual(diffFileSets(outputFiles(s.moddir), oracleRun(root, k.kver, oracle).files), []);
      assert.equal(update(['--strict']).code, EXIT.ok);
    } finally {
      rmSync(s.work, { recursive: true, force: true });
    }
  });

  test(`journaled commit (${oracleOf.name}, found on PATH): the same database; commit --json and status name the broken files; removed, depmod -a again`, { skip, timeout: 600_000 }, async () => {
    const oracle = oracleOf();
    const s = scenario();
    try {
      const { root, k } = s;
      // The installed kmod is the one on PATH (the tree's root has no depmod of its own).
      const env = { PATH: `${oracle.binDir}:${process.env.PATH ?? ''}` };
      assert.equal(runCli(['update', '--root', root, k.kver], { env }).code, 0);

      const touched = addPackage(s);
      await recordEvents({ root, op: 'add', package: 'vendor-dkms', txn: 'tx1', paths: touched });
      const c = runCli(['commit', '--root', root, '--json'], { env });
      assert.equal(c.code, 0, c.stderr);
      const theirs = oracleRun(root, k.kver, oracle);
      assert.deepEqual(diffFileSets(outputFiles(s.moddir), theirs.files), [], 'database as kmod writes it');
      // commit prints a kernel's messages as "LEVEL: KVER: text".
      assert.deepEqual(
        errorLines(c.stderr, 'depmod-tx: ').map((l) => l.replace(`ERROR: ${k.kver}: `, 'ERROR: ')),
        errorLines(theirs.stderr, 'depmod: '),
      );
      type Kernel = { kver: string; status: string; unreadable?: Array<{ kind: string; path: string; reason: string }> };
      const kernel = (JSON.parse(c.stdout) as { kernels: Kernel[] }).kernels[0]!;
      assert.equal(kernel.status, 'merged');
      const failed = errorLines(theirs.stderr, 'depmod: ').filter((l) => l.startsWith('ERROR: failed to load symbols from '));
      assert.equal(failed.length, BROKEN_COUNT);
      assert.deepEqual(kernel.unreadable?.map((u) => `ERROR: failed to load symbols from ${u.path}: ${u.reason}`), failed);

      const status = runCli(['status', '--root', root, '--json']);
      const last = (JSON.parse(status.stdout) as { last: Record<string, Kernel> }).last[k.kver]!;
      assert.deepEqual(last.unreadable, kernel.unreadable, 'status keeps what the last commit found');
      const human = runCli(['status', '--root', root]).stdout;
      for (const u of kernel.unreadable!) assert.ok(human.includes(u.path), `status names ${u.path}`);

      await recordEvents({ root, op: 'remove', package: 'vendor-dkms', txn: 'tx2', paths: removeBroken(s) });
      const fixed = runCli(['commit', '--root', root, '--json'], { env });
      assert.equal(fixed.code, 0, fixed.stderr);
      assert.equal((JSON.parse(fixed.stdout) as { kernels: Kernel[] }).kernels[0]!.unreadable, undefined);
      assert.deepEqual(diffFileSets(outputFiles(s.moddir), oracleRun(root, k.kver, oracle).files), []);
    } finally {
      rmSync(s.work, { recursive: true, force: true });
    }
  });
}
