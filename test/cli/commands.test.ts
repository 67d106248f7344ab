// The CLI as package managers and admins use it: record (stdin) → commit, replay twice, status,
// refused paths and kernel versions, exit codes. Results compared with Debian's depmod.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BASE_ORDER, runCli, withCliRoot as withRoot } from '../support/cli.ts';
import { writeFixtureTree, type FixtureTreeModule } from '../support/fixture-tree.ts';
import { buildModuleElf } from '../support/fixture-elf.ts';
import { realKernelSkipReason } from '../support/kernels.ts';
import { diffFileSets, oracleFiles, outputFiles } from '../merge/oracle-dir.ts';

const skip = realKernelSkipReason();
const cli = (args: string[], input?: string, env: Record<string, string> = {}) => runCli(args, { ...(input !== undefined ? { input } : {}), env });
const kmp: FixtureTreeModule[] = [{ path: 'updates/kmp-x.ko', module: { modinfo: [['alias', 'usb:vABCD*']], imports: [{ name: 'core_fn', crc: 0x10 }] } }];

test('record from stdin then commit: one merge per kernel, databases equal depmod -a', { skip }, () => {
  withRoot(({ root, kvers, cfg }) => {
    for (const k of kvers) assert.equal(cli(['rebuild', '--root', root, '-C', cfg, k]).code, 0);
    for (const k of kvers) writeFixtureTree(root, k, kmp, { order: BASE_ORDER });
    const list = kvers.map((k) => `/lib/modules/${k}/updates/kmp-x.ko`).join('\n') + '\n/usr/share/doc/kmp-x/README\n';
    const rec = cli(['record', '--root', root, '--op', 'add', '--package', 'kmp-x', '--json', '-'], list);
    assert.equal(rec.code, 0, rec.stderr);
    assert.deepEqual(JSON.parse(rec.stdout).recorded, 2);
    assert.equal(JSON.parse(rec.stdout).ignored, 1);
    const st = cli(['status', '--root', root, '--json']);
    assert.equal(JSON.parse(st.stdout).pending.length, 2);
    const c = cli(['commit', '--root', root, '--json']);
    assert.equal(c.code, 0, c.stderr);
    const summary = JSON.parse(c.stdout);
    assert.deepEqual(summary.kernels.map((k: { kver: string; status: string }) => [k.kver, k.status]).sort(), kvers.map((k) => [k, 'merged']));
    for (const k of kvers) {
      assert.deepEqual(diffFileSets(outputFiles(join(root, 'lib', 'modules', k)), oracleFiles(root, k, ['-C', cfg])), []);
    }
    // Nothing pending: commit is a cheap no-op.
    const again = cli(['commit', '--root', root, '--json']);
    assert.deepEqual(JSON.parse(again.stdout).kernels, []);
  });
});

test('replay of a saved log is idempotent; a path escape is refused with exit 64', { skip }, () => {
  withRoot(({ root, kvers, cfg }) => {
    for (const k of kvers) writeFixtureTree(root, k, kmp, { order: BASE_ORDER });
    const log = join(root, 'txn.log');
    writeFileSync(log, kvers.map((k) => `/lib/modules/${k}/updates/kmp-x.ko`).join('\n') + '\n');
    const first = cli(['replay', '--root', root, '--json', log]);
    assert.equal(first.code, 0, first.stderr);
    assert.ok(JSON.parse(first.stdout).kernels.every((k: { changed: boolean }) => k.changed));
    for (const k of kvers) assert.deepEqual(diffFileSets(outputFiles(join(root, 'lib', 'modules', k)), oracleFiles(root, k, ['-C', cfg])), []);
    const second = cli(['replay', '--root', root, '--json', log]);
    assert.ok(JSON.parse(second.stdout).kernels.every((k: { changed: boolean }) => !k.changed));

    const bad = cli(['record', '--root', root, '--op', 'add', `/lib/modules/${kvers[0]}/../../../etc/passwd.ko`]);
    assert.equal(bad.code, 64);
    assert.match(bad.stderr, /refused/);
    const badKver = cli(['update', '--root', root, '../../etc']);
    assert.equal(badKver.code, 64);
    assert.match(badKver.stderr, /invalid kernel version/);
  });
});

test('a broken module is kmod\'s ERROR line and the database as kmod writes it (exit 0); one kmod dies on: exit 65, database left as it was', { skip }, () => {
  withRoot(({ root, kvers, cfg }) => {
    const k = kvers[0]!;
    assert.equal(cli(['rebuild', '--root', root, '-C', cfg, k]).code, 0);
    const moddir = join(root, 'lib', 'modules', k);
    writeFileSync(join(moddir, 'kernel', 'drivers', 'broken.ko'), Buffer.from('\x7fELF\x02\x01\x01garbage'));
    const r = cli(['update', '--root', root, '-C', cfg, k, `/lib/modules/${k}/kernel/drivers/broken.ko`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^depmod-tx: ERROR: failed to load symbols from ${moddir}/kernel/drivers/broken\\.ko: Exec format error$`, 'm'));
    assert.deepEqual(diffFileSets(outputFiles(moddir), oracleFiles(root, k, ['-C', cfg])), []);

    const before = outputFiles(moddir);
    const aborts = buildModuleElf({});
    new DataView(aborts.buffer, aborts.byteOffset).setUint16(62, 0, true); // e_shstrndx 0: libkmod asserts
    writeFileSync(join(moddir, 'kernel', 'drivers', 'aborts.ko'), aborts);
    const a = cli(['update', '--root', root, '-C', cfg, k, `/lib/modules/${k}/kernel/drivers/aborts.ko`]);
    assert.equal(a.code, 65);
    assert.match(a.stderr, /kernel\/drivers\/aborts\.ko: kmod's depmod aborts on this module/);
    assert.deepEqual(diffFileSets(outputFiles(moddir), before), []);
  });
});

test('no symvers anywhere: update still compares CRCs between modules (--json kabiAgainst "modules", --strict exit 3) and commit says so', { skip }, () => {
  withRoot(({ root, kvers, cfg }) => {
    const k = kvers[0]!;
    assert.equal(cli(['rebuild', '--root', root, '-C', cfg, k]).code, 0);
    // A KMP built against another build of core.ko: it expects core_fn with CRC 0x11, core.ko has 0x10.
    writeFixtureTree(root, k, [{ path: 'updates/stale.ko', module: { imports: [{ name: 'core_fn', crc: 0x11 }, { name: 'printk', crc: 0x1 }] } }], { order: BASE_ORDER });
    const r = cli(['update', '--root', root, '-C', cfg, '--json', '--strict', k, `/lib/modules/${k}/updates/stale.ko`]);
    assert.equal(r.code, 3, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.symvers, null);
    assert.equal(j.kabiAgainst, 'modules');
    // printk is vmlinux's: unknown without the kernel's list, so not reported.
    assert.deepEqual(j.kabi.map((f: Record<string, unknown>) => [f.kind, f.module, f.symbol, f.expected, f.found, f.provider]), [
      ['crc-mismatch', 'stale', 'core_fn', '0x00000011', '0x00000010', 'core'],
    ]);
    assert.match(r.stderr, /updates\/stale\.ko disagrees about version of symbol core_fn/);
    assert.deepEqual(diffFileSets(outputFiles(join(root, 'lib', 'modules', k)), oracleFiles(root, k, ['-C', cfg])), [], 'the database is written all the same');

    // The same module through a transaction: the commit summary names what was checked.
    const k2 = kvers[1]!;
    assert.equal(cli(['rebuild', '--root', root, '-C', cfg, k2]).code, 0);
    writeFixtureTree(root, k2, [{ path: 'updates/stale.ko', module: { imports: [{ name: 'core_fn', crc: 0x11 }] } }], { order: BASE_ORDER });
    assert.equal(cli(['record', '--root', root, '--op', 'add', `/lib/modules/${k2}/updates/stale.ko`]).code, 0);
    const c = cli(['commit', '--root', root, '--json']);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(JSON.parse(c.stdout).kernels.map((x: { kabi: unknown }) => x.kabi), [{ against: 'modules', unknown: 0, mismatched: 1 }]);
    assert.match(c.stderr, /stale\.ko disagrees about version of symbol core_fn/);
  });
});

test('DEPMOD_TX_TRACE=1 prints one line per merge phase on stderr; 0 prints none', { skip }, () => {
  withRoot(({ root, kvers, cfg }) => {
    const k = kvers[0]!;
    const on = cli(['rebuild', '--root', root, '-C', cfg, k], undefined, { DEPMOD_TX_TRACE: '1' });
    assert.equal(on.code, 0, on.stderr);
    const phases = on.stderr.split('\n').filter((l) => l.startsWith(`depmod-tx trace: ${k}: `));
    for (const p of ['config + tree listing', 'parse', 'compute', 'emit', 'write', 'cache save']) {
      assert.ok(phases.some((l) => l.includes(`: ${p}`) && / [0-9.]+ ms \(cpu [0-9.]+, rss [0-9]+ MB\)$/.test(l)), `phase "${p}" traced:\n${on.stderr}`);
    }
    const off = cli(['update', '--root', root, '-C', cfg, '--full-scan', k], undefined, { DEPMOD_TX_TRACE: '0' });
    assert.equal(off.code, 0, off.stderr);
    assert.doesNotMatch(off.stderr, /trace/);
  });
});
