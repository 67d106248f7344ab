// A new kernel's cache, built after the commit answered (src/txn/cache-later.ts, `commit
// --ready-fd`): only for a kernel without a cache whose database kmod's depmod wrote after its tree
// and depmod.d last changed; the answer comes before that merge (a crash injected into it leaves the
// answer given and the database as kmod wrote it); without the answer being asked for, or with a
// tree newer than the database, the merge is done before answering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheFile } from '../../src/cache/store.ts';
import { buildingMarkFile, cacheLaterKernels, databaseNewerThanInputs } from '../../src/txn/cache-later.ts';
import { BASE_ORDER, BUILT_BIN, withCliRoot } from '../support/cli.ts';
import { writeFixtureTree } from '../support/fixture-tree.ts';
import { realKernelSkipReason } from '../support/kernels.ts';
import { kmod30, runOracle } from '../support/kmod-oracles.ts';
import { diffFileSets, oracleFiles, outputFiles } from '../merge/oracle-dir.ts';

const skip = realKernelSkipReason();

/** `depmod-tx commit --root ROOT --ready-fd 3 ARGS`: stdout, stderr, what came on fd 3, the exit status. */
function commitReady(root: string, args: string[] = [], env: Record<string, string> = {}): { status: number | null; signal: string | null; stdout: string; stderr: string; ready: string } {
  const r = spawnSync(process.execPath, [BUILT_BIN, 'commit', '--root', root, '--ready-fd', '3', ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    env: { ...process.env, DEPMOD_TX_TRACE: '', ...env },
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ready: String(r.output[3] ?? '') };
}

/** What kmod's depmod in a new kernel's postinst does: the database written, no depmod-tx cache. */
function kmodWrites(root: string, cfg: string, kver: string): void {
  const r = runOracle(kmod30(), ['-b', root, '-C', cfg, '-a', kver]);
  assert.equal(r.status, 0, r.stderr);
}

/** A journal event for KVER, as the hooks' spool leaves after the ingest (record of a path of its tree). */
function journaled(root: string, kver: string): void {
  const dir = join(root, 'var/lib/depmod-tx/journal');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `t-${kver}.jsonl`), `${JSON.stringify({ op: 'add', path: `/lib/modules/${kver}/kernel/drivers/a.ko`, package: 'linux-image', time: '', id: kver })}\n`);
}

test('databaseNewerThanInputs: the tree and depmod.d older than modules.dep.bin; a directory or a config file as new or newer is not', { skip }, () => {
  withCliRoot(({ root, kvers, cfg }) => {
    const k = kvers[0]!;
    const moddir = join(root, 'lib/modules', k);
    assert.equal(databaseNewerThanInputs(root, moddir), false, 'no database');
    kmodWrites(root, cfg, k);
    const past = new Date(Date.now() - 60_000);
    for (const d of [join(moddir, 'kernel'), join(moddir, 'kernel/lib'), join(moddir, 'kernel/drivers'), cfg, join(root, 'etc')]) utimesSync(d, past, past);
    assert.equal(databaseNewerThanInputs(root, moddir), true);
    const db = statSync(join(moddir, 'modules.dep.bin')).mtimeMs;
    utimesSync(join(moddir, 'kernel/drivers'), (db + 1) / 1000, (db + 1) / 1000);
    assert.equal(databaseNewerThanInputs(root, moddir), false, 'a directory changed after the database');
    utimesSync(join(moddir, 'kernel/drivers'), past, past);
    writeFileSync(join(cfg, 'x.conf'), 'search updates built-in\n');
    utimesSync(cfg, past, past);
    assert.equal(databaseNewerThanInputs(root, moddir), false, 'a depmod.d file written after the database');
  });
});

test('commit --ready-fd: a new kernel whose database kmod wrote is answered first, its cache built after; a crash there leaves kmod\'s database', { skip }, () => {
  withCliRoot(({ root, kvers, cfg }) => {
    const [k0, k1] = kvers as [string, string];
    for (const k of kvers) {
      kmodWrites(root, cfg, k);
      journaled(root, k);
    }
    // k1's tree changed after its database was written: merged before the answer.
    writeFixtureTree(root, k1, [{ path: 'updates/late.ko', module: { modinfo: [['alias', 'pci:vFEED*']] } }], { order: BASE_ORDER });
    assert.deepEqual(cacheLaterKernels(root, kvers), [k0]);
    const dep = join(root, 'lib/modules', k0, 'modules.dep.bin');
    const before = { mtime: statSync(dep).mtimeMs, bytes: readFileSync(dep) };

    const crashed = commitReady(root, [], { DEPMOD_TX_CRASH_AT: `commit:after-merge:${k0}` });
    assert.equal(crashed.signal, 'SIGKILL', 'killed in the merge after the answer');
    assert.equal(crashed.ready, 'ready 0\n', crashed.stderr);
    assert.match(crashed.stdout, new RegExp(`^${k1}: changed`, 'm'), 'the changed kernel, before the answer');
    assert.doesNotMatch(crashed.stdout, new RegExp(`^${k0}:`, 'm'), 'the new kernel is not in the answer');
    assert.deepEqual(readFileSync(dep), before.bytes);
    assert.equal(statSync(dep).mtimeMs, before.mtime, "kmod's database untouched");
    assert.ok(existsSync(buildingMarkFile(root, k0)), 'the mark of the killed build stays, naming a dead pid');

    // Again: the dead pid's mark is no obstacle; the cache is built, the mark goes, the database stays kmod's.
    const done = commitReady(root);
    assert.equal(done.status, 0, done.stderr);
    assert.equal(done.ready, 'ready 0\n');
    assert.ok(existsSync(cacheFile(root, k0)), 'the cache was built');
    assert.ok(!existsSync(buildingMarkFile(root, k0)), 'the mark is gone');
    assert.equal(statSync(dep).mtimeMs, before.mtime);
    for (const k of kvers) assert.deepEqual(diffFileSets(outputFiles(join(root, 'lib/modules', k)), oracleFiles(root, k, ['-C', cfg])), [], `${k} equals depmod -a`);
    const status = JSON.parse(spawnSync(process.execPath, [BUILT_BIN, 'status', '--root', root, '--json'], { encoding: 'utf8' }).stdout);
    assert.deepEqual(status.pending, []);
    assert.equal(status.last[k0].status, 'merged');
  });
});

test('commit without --ready-fd builds a new kernel\'s cache before it exits, as before', { skip }, () => {
  withCliRoot(({ root, kvers, cfg }) => {
    const k = kvers[0]!;
    kmodWrites(root, cfg, k);
    journaled(root, k);
    const r = spawnSync(process.execPath, [BUILT_BIN, 'commit', '--root', root], { encoding: 'utf8', env: { ...process.env, DEPMOD_TX_CRASH_AT: `commit:after-merge:${k}` } });
    assert.equal(r.signal, 'SIGKILL');
    assert.ok(!existsSync(buildingMarkFile(root, k)), 'no background part, no mark');
  });
});
