// Every decompressing path of the packaged CLI without the lzma-native addon, as the packages ship
// it (test/arch/packaged.ts): with xz(1) the single-file path (inspect; an update adding a
// concatenated .ko.xz, which the batch path leaves to it), the batch path (a rebuild of a real
// .ko.xz tree in parse workers) and a cache refill (an update after the cache was damaged) give
// depmod's bytes; without xz(1) each of them stops with a typed error naming the file (exit 78;
// inspect: 65, its rule for every unreadable module) and the database stays as it was. Never a
// module-loader message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cloneRoot, realKernel, realKernelSkipReason, recompressedKernel } from '../support/kernels.ts';
import { databaseDiff } from '../e2e/support.ts';
import { outputFiles } from '../merge/oracle-dir.ts';
import { packagedCli, probeRuntime, pathWithoutXz, scratchOutsideRepo, type PackagedCli } from './packaged.ts';

const skip = realKernelSkipReason() ?? false;

const LOADER_MESSAGE = /Cannot find (package|module)|imported from|ERR_MODULE_NOT_FOUND|No native build|\.node\b/;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(cli: PackagedCli, args: string[], path: string | undefined): Run {
  const env: NodeJS.ProcessEnv = { ...process.env, ...(path !== undefined ? { PATH: path } : {}) };
  delete env.DEPMOD_TX_TRACE;
  const r = spawnSync(process.execPath, [cli.bundle, ...args], { encoding: 'utf8', env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The failure every path must give without a decoder: exit code, one typed message naming FILE. */
function assertNoDecoder(r: Run, status: number, file: RegExp, what: string): void {
  assert.equal(r.status, status, `${what}: exit ${status}; stderr:\n${r.stderr}`);
  assert.match(r.stderr, new RegExp(`${file.source}: cannot decompress xz: no xz decoder \\(xz\\(1\\) is not on PATH`), `${what}: names the file`);
  assert.doesNotMatch(r.stderr, LOADER_MESSAGE, `${what}: no module-loader message`);
}

function snapshot(moddir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [f, b] of outputFiles(moddir)) out.set(f, Buffer.from(b).toString('base64'));
  return out;
}

test('the packaged CLI without the lzma-native addon: inspect, rebuild, cache refill, update', { skip, timeout: 300_000 }, async (t) => {
  const dir = scratchOutsideRepo('dtx-no-addon-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cli = packagedCli(dir);
  assert.equal(probeRuntime(cli).addon, 'ERR_MODULE_NOT_FOUND', 'the staged bundle must not reach lzma-native');
  const noXz = pathWithoutXz(dir);

  const plain = realKernel('cloud-amd64');
  const k = recompressedKernel(plain, 'xz');
  const rel = 'kernel/drivers/net/dummy.ko';
  const xzFile = join(k.moddir, `${rel}.xz`);

  await t.test('single file: inspect', () => {
    const r = run(cli, ['inspect', '--json', xzFile, join(plain.moddir, rel)], undefined);
    assert.equal(r.status, 0, r.stderr);
    const [fromXz, fromKo] = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    assert.ok(fromXz && fromKo);
    assert.deepEqual({ ...fromXz, file: '' }, { ...fromKo, file: '' }, 'the .ko.xz reads as its .ko');
    assert.deepEqual((fromXz.modinfo as string[][])[0], ['alias', 'rtnl-link-dummy']);

    const none = run(cli, ['inspect', xzFile, join(plain.moddir, rel)], noXz);
    assertNoDecoder(none, 65, new RegExp(xzFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')), 'inspect');
    assert.match(none.stdout, /rtnl-link-dummy/, 'the plain .ko next to it is still read');
  });

  const root = join(dir, 'root');
  cloneRoot(k.root, root);
  const moddir = join(root, 'lib', 'modules', k.kver);

  await t.test('batch: rebuild of a real .ko.xz tree in parse workers', () => {
    const before = snapshot(moddir);
    const none = run(cli, ['rebuild', '--root', root, k.kver], noXz);
    assertNoDecoder(none, 78, /kernel\/\S+\.ko\.xz/, 'rebuild');
    assert.deepEqual(snapshot(moddir), before, 'nothing written');

    const r = run(cli, ['rebuild', '--root', root, k.kver], undefined);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(databaseDiff(root, k.kver), [], 'identical to depmod -a');
  });

  const cache = join(root, 'var', 'cache', 'depmod-tx', `${k.kver}.cache`);

  await t.test('cache refill: update after the cache was damaged', () => {
    assert.ok(existsSync(cache), 'the rebuild saved a cache');
    const good = readFileSync(cache);
    const before = snapshot(moddir);
    writeFileSync(cache, good.subarray(0, good.length >> 1));
    assertNoDecoder(run(cli, ['update', '--root', root, k.kver], noXz), 78, /kernel\/\S+\.ko\.xz/, 'update refilling the cache');
    assert.deepEqual(snapshot(moddir), before, 'nothing written');

    writeFileSync(cache, good.subarray(0, good.length >> 1));
    const r = run(cli, ['update', '--root', root, k.kver], undefined);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(databaseDiff(root, k.kver), [], 'identical to depmod -a');
    // Refilled completely: with every record cached, an update needs no decoder at all.
    const cached = run(cli, ['update', '--root', root, k.kver], noXz);
    assert.equal(cached.status, 0, `update from the refilled cache without xz(1): ${cached.stderr}`);
    assert.deepEqual(databaseDiff(root, k.kver), [], 'still identical to depmod -a');
  });

  await t.test('update: one module in a concatenated .ko.xz (single-file path), one batch-eligible', () => {
    const updates = join(moddir, 'updates');
    mkdirSync(updates, { recursive: true });
    const ko = readFileSync(join(plain.moddir, rel));
    const xz = (b: Uint8Array): Buffer => execFileSync('xz', ['-c', '--check=crc32'], { input: b });
    // Two streams: valid .xz that kmod reads (LZMA_CONCATENATED) and decompressBatch leaves out.
    writeFileSync(join(updates, 'dummy2.ko.xz'), Buffer.concat([xz(ko.subarray(0, 8000)), xz(ko.subarray(8000))]));
    copyFileSync(xzFile, join(updates, 'dummy3.ko.xz'));
    const before = snapshot(moddir);
    const none = run(cli, ['update', '--root', root, k.kver, join(updates, 'dummy2.ko.xz'), join(updates, 'dummy3.ko.xz')], noXz);
    assertNoDecoder(none, 78, /updates\/dummy[23]\.ko\.xz/, 'update');
    assert.deepEqual(snapshot(moddir), before, 'nothing written');

    const r = run(cli, ['update', '--root', root, k.kver, join(updates, 'dummy2.ko.xz'), join(updates, 'dummy3.ko.xz')], undefined);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(databaseDiff(root, k.kver), [], 'identical to depmod -a');
    assert.match(readFileSync(join(moddir, 'modules.dep'), 'utf8'), /^updates\/dummy2\.ko\.xz:/m);
  });
});
