// weak-updates on synthetic kernels (test/support/fixture-tree.ts), for what the real kernels of
// weak-updates-real.test.ts do not show: a KMP that needs another KMP (weak-modules2's second
// pass), SUSE's and RHEL's own command lines (the program called as weak-modules2 / weak-modules),
// --dry-run --json, and the commit of a transaction with weak-updates on (one merge per kernel).
// Links are compared with the tools' procedure run with kmod's depmod (test/support/weak-oracle.ts)
// and every database with depmod -a.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { runCli } from '../support/cli.ts';
import { writeFixtureTree, type FixtureTreeModule } from '../support/fixture-tree.ts';
import type { FixtureModule } from '../support/fixture-elf.ts';
import { realKernelSkipReason } from '../support/kernels.ts';
import { diffFileSets, outputFiles } from '../merge/oracle-dir.ts';
import { depmodOfKernel, linkLines, linksOnDisk, rhelOracle, suseOracle, type OracleKernel, type OracleKmp } from '../support/weak-oracle.ts';

const skip = realKernelSkipReason();

const A = '5.14.21-1-default';
const B = '5.14.21-2-default';
const C = '5.14.21-3-default';

interface Root {
  root: string;
  conf: string;
  kernels: OracleKernel[];
}

/** A kernel: core.ko exporting core_fn, lib.ko exporting lib_fn, a user of both; vmlinux's printk at the given CRC. */
function addKernel(r: Root, kver: string, printk: number): void {
  const base: FixtureTreeModule[] = [
    { path: 'kernel/lib/core.ko', module: { exports: [{ name: 'core_fn', crc: 0x10 }], imports: [{ name: 'printk', crc: printk }] } },
    { path: 'kernel/lib/lib.ko', module: { exports: [{ name: 'lib_fn', crc: 0x20 }], imports: [{ name: 'printk', crc: printk }] } },
    { path: 'kernel/drivers/user.ko', module: { modinfo: [['alias', 'pci:v1d2*']], imports: [{ name: 'core_fn', crc: 0x10 }, { name: 'lib_fn', crc: 0x20 }] } },
  ];
  writeFixtureTree(r.root, kver, base, { order: base.map((m) => m.path) });
  const symvers = `0x${printk.toString(16).padStart(8, '0')}\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n`;
  mkdirSync(join(r.root, 'boot'), { recursive: true });
  writeFileSync(join(r.root, 'boot', `symvers-${kver}.gz`), gzipSync(symvers));
  writeFileSync(join(r.root, 'boot', `System.map-${kver}`), 'ffffffff81000000 T printk\n');
  const plain = join(r.root, '..', `symvers-${kver}`);
  writeFileSync(plain, symvers);
  r.kernels.push({ kver, symvers: plain });
  assert.equal(runCli(['update', '--root', r.root, kver]).code, 0);
}

function makeRoot(search: string, settings?: string): Root {
  const dir = mkdtempSync(join(tmpdir(), 'dtx-weak-fx-'));
  const root = join(dir, 'root');
  const conf = join(root, 'etc', 'depmod.d');
  mkdirSync(conf, { recursive: true });
  writeFileSync(join(conf, '00-system.conf'), search);
  if (settings !== undefined) writeFileSync(join(root, 'etc', 'depmod-tx.conf'), settings);
  return { root, conf, kernels: [] };
}

/** Module files of a KMP written into KVER's tree; their paths as the package manager names them. */
function addFiles(r: Root, kver: string, mods: Array<[string, FixtureModule]>): string[] {
  writeFixtureTree(r.root, kver, mods.map(([path, module]) => ({ path, module })));
  return mods.map(([p]) => `/lib/modules/${kver}/${p}`);
}

function weak(r: Root, args: string[], input: string[] = [], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  return runCli(args, { input: `${input.join('\n')}\n`, env });
}

function sameAsOracles(r: Root, family: 'suse' | 'rhel', kmps: OracleKmp[], step: string): void {
  const want = family === 'suse' ? suseOracle(r.root, r.conf, r.kernels, kmps) : rhelOracle(r.root, r.kernels);
  assert.deepEqual(linkLines(linksOnDisk(r.root, r.kernels.map((k) => k.kver))), linkLines(want), `${step}: links equal the oracle procedure's`);
  for (const k of r.kernels) {
    assert.deepEqual(diffFileSets(outputFiles(join(r.root, 'lib', 'modules', k.kver)), depmodOfKernel(r.root, k.kver, r.conf)), [], `${step}: ${k.kver} database equals depmod -a`);
  }
}

const ZZ: FixtureModule = { imports: [{ name: 'aa_fn', crc: 0x77 }, { name: 'printk', crc: 1 }] };
const AA: FixtureModule = { exports: [{ name: 'aa_fn', crc: 0x77 }], imports: [{ name: 'core_fn', crc: 0x10 }] };

test('weak-modules2: a KMP that needs another KMP is linked once that one is; --dry-run --json says why not before; --remove-kmp unlinks both', { skip }, () => {
  const r = makeRoot('search updates extra weak-updates kgraft built-in\n');
  try {
    addKernel(r, A, 1);
    addKernel(r, B, 1);
    addKernel(r, C, 2);
    const kmps: OracleKmp[] = [];
    // Called as SUSE's tool (the installed wrapper passes the name it was called by).
    const wm2 = { DEPMOD_TX_CALLED_AS: 'weak-modules2', DEPMOD_TX_ROOT: r.root };
    const zz = addFiles(r, A, [['updates/zz/zz.ko', ZZ]]);
    kmps.push({ nvr: 'zz-kmp-default-1-1', kver: A, rels: ['updates/zz/zz.ko'] });
    let run = weak(r, ['--add-kmp', 'zz-kmp-default-1-1'], zz, wm2);
    assert.equal(run.code, 0, run.stderr);
    sameAsOracles(r, 'suse', kmps, 'zz (needs aa_fn) alone');

    const aa = addFiles(r, A, [['updates/aa/aa.ko', AA]]);
    kmps.push({ nvr: 'aa-kmp-default-1-1', kver: A, rels: ['updates/aa/aa.ko'] });
    // Before: the dry run names the missing symbol and changes nothing.
    const stateFile = join(r.root, 'var/lib/depmod-tx/weak-updates.json');
    const before = readFileSync(stateFile, 'utf8');
    const depBefore = statSync(join(r.root, 'lib/modules', B, 'modules.dep')).mtimeMs;
    run = weak(r, ['weak-updates', '--root', r.root, '--rules', 'suse', '--add-kernel', B, '--dry-run', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const dry = JSON.parse(run.stdout) as { dryRun: boolean; kernels: Array<{ kver: string; link: unknown[]; rejected: Array<{ unit: string; reason: string; problems: Array<{ symbol: string; kind: string }> }> }> };
    assert.equal(dry.dryRun, true);
    const onB = dry.kernels.find((k) => k.kver === B)!;
    assert.deepEqual(onB.link, []);
    assert.deepEqual(onB.rejected.map((x) => [x.unit, x.reason, x.problems.map((p) => `${p.kind} ${p.symbol}`)]), [['zz-kmp-default-1-1', 'kabi', ['unknown aa_fn']]]);
    assert.equal(readFileSync(stateFile, 'utf8'), before, 'a dry run writes no state');
    assert.equal(statSync(join(r.root, 'lib/modules', B, 'modules.dep')).mtimeMs, depBefore, 'a dry run merges nothing');

    run = weak(r, ['--add-kmp', 'aa-kmp-default-1-1'], aa, wm2);
    assert.equal(run.code, 0, run.stderr);
    sameAsOracles(r, 'suse', kmps, 'aa installed: zz follows on the second pass');
    assert.equal(readlinkSync(join(r.root, 'lib/modules', B, 'weak-updates/updates/zz/zz.ko')), join(r.root, 'lib/modules', A, 'updates/zz/zz.ko'), 'links are absolute, into the root');
    assert.deepEqual([...linksOnDisk(r.root, [C]).get(C)!.keys()], ['weak-updates/updates/aa/aa.ko'], 'C (another printk CRC) takes aa but not zz');

    rmSync(join(r.root, 'lib/modules', A, 'updates/aa'), { recursive: true });
    kmps.splice(1, 1);
    run = weak(r, ['--remove-kmp', 'aa-kmp-default-1-1'], aa, wm2);
    assert.equal(run.code, 0, run.stderr);
    sameAsOracles(r, 'suse', kmps, 'aa removed: zz no longer loads on B');

    // The tools' command lines: usage errors exit 1 with their usage text.
    run = weak(r, ['--add-kmp'], [], wm2);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^ERROR: Option --add-kmp requires exactly one argument\nUsage:/);
    run = weak(r, ['--basedir', r.root, '--add-modules'], [], { DEPMOD_TX_CALLED_AS: 'weak-modules' });
    assert.equal(run.code, 0, `weak-modules --add-modules with nothing on stdin does nothing: ${run.stderr}`);
    run = weak(r, ['--basedir', r.root, '--frobnicate'], [], { DEPMOD_TX_CALLED_AS: 'weak-modules' });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /unrecognized option '--frobnicate'\nUsage: weak-modules/);
    // depmod-tx's own command: exactly one action (exit 64).
    run = weak(r, ['weak-updates', '--root', r.root, '--add-kernel', '--remove-kernel', B]);
    assert.equal(run.code, 64);
    assert.match(run.stderr, /give exactly one of/);
  } finally {
    rmSync(join(r.root, '..'), { recursive: true, force: true });
  }
});

test('weak-modules: --add-modules links what fits, all of a group or none; --remove-modules drops the links; a damaged record is exit 65, nothing touched', { skip }, () => {
  const r = makeRoot('search updates extra built-in weak-updates\n');
  try {
    addKernel(r, A, 1);
    addKernel(r, B, 1);
    const wm = { DEPMOD_TX_CALLED_AS: 'weak-modules' };
    // grp/lib.ko was built against another printk: it fails, and app.ko with it (its group), though
    // app.ko would load with B's own lib.ko; solo.ko stands alone.
    const files = addFiles(r, A, [
      ['extra/grp/lib.ko', { exports: [{ name: 'lib_fn', crc: 0x20 }], imports: [{ name: 'printk', crc: 9 }] }],
      ['extra/grp/app.ko', { imports: [{ name: 'lib_fn', crc: 0x20 }, { name: 'core_fn', crc: 0x10 }] }],
      ['extra/solo/solo.ko', { imports: [{ name: 'core_fn', crc: 0x10 }] }],
    ]);
    let run = weak(r, ['--basedir', r.root, '--add-modules', '--verbose'], files, wm);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /not linked: .*grp\/app\.ko .*group/);
    sameAsOracles(r, 'rhel', [], 'grp and solo added');
    assert.deepEqual([...linksOnDisk(r.root, [B]).get(B)!.keys()], ['weak-updates/solo/solo.ko']);

    rmSync(join(r.root, 'lib/modules', A, 'extra/solo'), { recursive: true });
    run = weak(r, ['--basedir', r.root, '--remove-modules'], [files[2]!], wm);
    assert.equal(run.code, 0, run.stderr);
    sameAsOracles(r, 'rhel', [], 'solo removed');

    const state = join(r.root, 'var/lib/depmod-tx/weak-updates.json');
    writeFileSync(state, '{"version": 1, "links": []');
    const links = linkLines(linksOnDisk(r.root, [A, B]));
    rmSync(join(r.root, 'lib/modules', A, 'extra/grp/app.ko'));
    run = weak(r, ['weak-updates', '--root', r.root, '--rules', 'rhel', '--add-kernel', B]);
    assert.equal(run.code, 65);
    assert.match(run.stderr, new RegExp(`^depmod-tx: ${state}: not JSON`));
    assert.deepEqual(linkLines(linksOnDisk(r.root, [A, B])), links, 'no link made or removed');
    assert.equal(readFileSync(state, 'utf8'), '{"version": 1, "links": []', 'the record is left for the administrator');
  } finally {
    rmSync(join(r.root, '..'), { recursive: true, force: true });
  }
});

test('a commit with weak-updates on: a new kernel gets the KMPs that fit, merged by the commit once with its links (its module cache built first); weak-updates = off makes no link', { skip }, () => {
  for (const setting of [undefined, 'weak-updates = off\n']) {
    const r = makeRoot('search updates extra weak-updates kgraft built-in\n', setting);
    try {
      addKernel(r, A, 1);
      addKernel(r, B, 1);
      const aa = addFiles(r, A, [['updates/aa/aa.ko', AA]]);
      let run = weak(r, ['weak-updates', '--root', r.root, '--rules', 'suse', '--add-kmp', 'aa-kmp-default-1-1'], aa);
      assert.equal(run.code, 0, run.stderr);
      // A kernel package arrives: its files journaled by the hook, then the transaction's commit.
      const kernelFiles: FixtureTreeModule[] = [
        { path: 'kernel/lib/core.ko', module: { exports: [{ name: 'core_fn', crc: 0x10 }], imports: [{ name: 'printk', crc: 1 }] } },
        { path: 'kernel/lib/lib.ko', module: { exports: [{ name: 'lib_fn', crc: 0x20 }], imports: [{ name: 'printk', crc: 1 }] } },
      ];
      writeFixtureTree(r.root, C, kernelFiles, { order: kernelFiles.map((m) => m.path) });
      writeFileSync(join(r.root, 'boot', `System.map-${C}`), 'ffffffff81000000 T printk\n');
      writeFileSync(join(r.root, 'boot', `symvers-${C}.gz`), gzipSync('0x00000001\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n'));
      writeFileSync(join(r.root, '..', `symvers-${C}`), '0x00000001\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n');
      r.kernels.push({ kver: C, symvers: join(r.root, '..', `symvers-${C}`) });
      run = runCli(['record', '--root', r.root, '--op', 'add', '-'], { input: `${kernelFiles.map((m) => `/lib/modules/${C}/${m.path}`).join('\n')}\n` });
      assert.equal(run.code, 0, run.stderr);
      run = runCli(['commit', '--root', r.root, '--json']);
      assert.equal(run.code, 0, run.stderr);
      const merged = (JSON.parse(run.stdout) as { kernels: Array<{ kver: string; status: string; weakLinks?: number }> }).kernels;
      if (setting === undefined) {
        assert.deepEqual(merged.map((k) => [k.kver, k.status, k.weakLinks ?? 0]), [[C, 'merged', 1]], 'C merged once, with its link');
        sameAsOracles(r, 'suse', [{ nvr: 'aa-kmp-default-1-1', kver: A, rels: ['updates/aa/aa.ko'] }], 'commit after a new kernel');
      } else {
        assert.deepEqual(merged.map((k) => [k.kver, k.status, k.weakLinks ?? 0]), [[C, 'merged', 0]]);
        assert.deepEqual(linksOnDisk(r.root, [C]).get(C), new Map(), 'weak-updates = off: no link');
      }
    } finally {
      rmSync(join(r.root, '..'), { recursive: true, force: true });
    }
  }
});

test('a weak-updates call killed after recording its links, or after making them, is finished when it runs again: no link forgotten, none dangling', { skip }, () => {
  for (const at of ['weak:recorded', 'weak:linked']) {
    const r = makeRoot('search updates extra weak-updates kgraft built-in\n');
    try {
      addKernel(r, A, 1);
      addKernel(r, B, 1);
      const aa = addFiles(r, A, [['updates/aa/aa.ko', AA]]);
      const args = ['weak-updates', '--root', r.root, '--rules', 'suse', '--add-kmp', 'aa-kmp-default-1-1'];
      let run = runCli(args, { input: `${aa.join('\n')}\n`, env: { DEPMOD_TX_CRASH_AT: at } });
      assert.equal(run.code, null, `${at}: killed there: ${run.stderr}`);
      const state = JSON.parse(readFileSync(join(r.root, 'var/lib/depmod-tx/weak-updates.json'), 'utf8')) as { links: Record<string, Record<string, string>> };
      assert.deepEqual(Object.keys(state.links[B] ?? {}), ['weak-updates/updates/aa/aa.ko'], `${at}: the link was recorded before anything was made`);
      // The same call again (a package manager retries the scriptlet; a commit would do the same).
      run = runCli(args, { input: `${aa.join('\n')}\n` });
      assert.equal(run.code, 0, run.stderr);
      sameAsOracles(r, 'suse', [{ nvr: 'aa-kmp-default-1-1', kver: A, rels: ['updates/aa/aa.ko'] }], `after a kill at ${at}`);
      const after = JSON.parse(readFileSync(join(r.root, 'var/lib/depmod-tx/weak-updates.json'), 'utf8')) as { links: Record<string, Record<string, string>> };
      assert.deepEqual(after.links, { [B]: { 'weak-updates/updates/aa/aa.ko': join(r.root, 'lib/modules', A, 'updates/aa/aa.ko') } }, `${at}: the record is what exists`);
    } finally {
      rmSync(join(r.root, '..'), { recursive: true, force: true });
    }
  }
});

test("without --rules: the setting, else the installed tool, else the depmod.d search line's place for weak-updates; none of them: exit 78", { skip }, () => {
  const cases: Array<[conf: string, settings: string | undefined, tool: string | undefined, want: string | number]> = [
    ['search updates extra weak-updates kgraft built-in\n', undefined, undefined, 'suse'],
    ['search updates extra built-in weak-updates\n', undefined, undefined, 'rhel'],
    ['search updates extra built-in weak-updates\n', 'weak-updates = suse\n', undefined, 'suse'],
    ['search updates\n', undefined, 'usr/sbin/weak-modules', 'rhel'],
    ['search updates\n', 'weak-updates = off\n', 'usr/lib/module-init-tools/weak-modules2', 'suse'],
    ['search updates\n', undefined, undefined, 78],
  ];
  for (const [conf, settings, tool, want] of cases) {
    const r = makeRoot(conf, settings);
    try {
      mkdirSync(join(r.root, 'lib/modules'), { recursive: true });
      if (tool !== undefined) {
        mkdirSync(join(r.root, tool, '..'), { recursive: true });
        writeFileSync(join(r.root, tool), '#!/bin/sh\n');
      }
      const run = runCli(['weak-updates', '--root', r.root, '--add-kernel', '1.0-1-x', '--dry-run', '--json']);
      const what = `${conf.trim()} / ${settings?.trim() ?? '-'} / ${tool ?? '-'}`;
      if (typeof want === 'number') {
        assert.equal(run.code, want, what);
        assert.match(run.stderr, /give --rules suse or --rules rhel/, what);
      } else {
        assert.equal(run.code, 0, `${what}: ${run.stderr}`);
        assert.equal((JSON.parse(run.stdout) as { rules: string }).rules, want, what);
      }
    } finally {
      rmSync(join(r.root, '..'), { recursive: true, force: true });
    }
  }
});
