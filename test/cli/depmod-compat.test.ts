// depmod-tx's `depmod` against kmod's own depmod (Debian 12's kmod 30 and Debian 13's kmod 34.2,
// plus local kmod builds when present), option by option, on real Debian kernel trees and on
// synthetic trees made to provoke each message depmod prints: the same exit status, stdout, stderr
// and files (compareCalls runs both at the same path). Each step also says whether depmod-tx must
// do the work itself or hand it to kmod's depmod, and the front end's log must agree: a front end
// that handed everything over would otherwise pass every comparison.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildModuleElf } from '../support/fixture-elf.ts';
import { writeFixtureTree, type FixtureTreeModule } from '../support/fixture-tree.ts';
import { compareCalls, outcomeDiff, type CompareCase } from '../support/depmod-compare.ts';
import { allOracles, type DepmodOracle } from '../support/kmod-oracles.ts';
import { cloneRoot, realKernel, realKernelSkipReason, recompressedKernel } from '../support/kernels.ts';

const skip = realKernelSkipReason();
const K = '6.1.0-99-test';

/** A small tree that makes depmod say everything it says while writing: see each module's note. */
const TREE: FixtureTreeModule[] = [
  { path: 'kernel/lib/core.ko', module: { modinfo: [['license', 'GPL']], exports: [{ name: 'core_fn', crc: 0x10 }, { name: 'core_get', crc: 0x11 }] } },
  // An alias with an unmatched bracket: "Unmatched bracket" while writing modules.alias.bin.
  { path: 'kernel/drivers/a.ko', module: { modinfo: [['alias', 'pci:v1d2*'], ['alias', 'usb:v[12']], imports: [{ name: 'core_fn', crc: 0x10 }] } },
  // A CRC that disagrees with core's, and a symbol nobody exports (-e reports both).
  { path: 'kernel/drivers/b.ko', module: { imports: [{ name: 'core_get', crc: 0x99 }, { name: 'no_such_fn', crc: 0x1 }, { name: 'kernel_fn', crc: 0x5 }] } },
  // devname without a char-major alias: an ERROR from the modules.devname writer (also with -n).
  { path: 'kernel/drivers/c.ko', module: { modinfo: [['alias', 'devname:tdev']] } },
  { path: 'updates/d.ko', module: { modinfo: [['alias', 'acpi*:TST0001:*']], imports: [{ name: 'core_fn', crc: 0x10 }] } },
  { path: 'extra/excluded/e.ko', module: {} },
];

function syntheticTree(kver: string, stateful: boolean): (root: string) => void {
  return (root) => {
    writeFixtureTree(root, kver, TREE, {
      order: ['kernel/lib/core.ko', 'kernel/drivers/a.ko', 'kernel/drivers/b.ko'],
      depmodConf: {
        'etc/depmod.d/10-local.conf': 'search updates built-in\noverride d * updates\nexclude excluded\nbogus line\n',
        // No .conf suffix: an INFO message, which depmod prints only with -vv.
        'etc/depmod.d/README': 'not read\n',
      },
    });
    writeFileSync(join(root, 'symvers'), '0x00000005\tkernel_fn\tvmlinux\tEXPORT_SYMBOL\t\n0x00000077\tcore_get\tvmlinux\tEXPORT_SYMBOL\t\n');
    writeFileSync(join(root, 'System.map'), 'ffffffff81000000 T kernel_fn\n');
    if (stateful) mkdirSync(join(root, 'var', 'cache', 'depmod-tx'), { recursive: true });
  };
}

/** Copies a module of TREE into the tree (a package adding a file), and its removal. */
function addModule(rel: string): (root: string) => void {
  return (root) => {
    const file = join(root, 'lib', 'modules', K, rel);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, buildModuleElf({ modinfo: [['alias', 'platform:added']], imports: [{ name: 'core_fn', crc: 0x10 }] }));
  };
}

/** Module files kmod cannot load (issue 26): cut short, junk, a .ko.xz holding no ELF, a cut .ko.zst. */
function addBroken(root: string): void {
  const dir = join(root, 'lib', 'modules', K, 'updates', 'broken');
  mkdirSync(dir, { recursive: true });
  const elf = buildModuleElf({ modinfo: [['alias', 'platform:broken']], imports: [{ name: 'core_fn', crc: 0x10 }] });
  writeFileSync(join(dir, 'cut.ko'), elf.subarray(0, elf.length >> 1));
  writeFileSync(join(dir, 'junk.ko'), 'junk\n');
  writeFileSync(join(dir, 'notelf.ko.xz'), execFileSync('xz', ['-c'], { input: 'not an ELF\n' }));
  const zst = execFileSync('zstd', ['-q', '-c', '--content-size'], { input: elf });
  writeFileSync(join(dir, 'cut.ko.zst'), zst.subarray(0, zst.length - 8));
}

const R = ['-b', '{R}'];
const C = ['-C', '{R}/etc/depmod.d'];

type Step = CompareCase['steps'][number] & { handover?: boolean | ((o: DepmodOracle) => boolean) };
const kmod34 = (o: DepmodOracle): boolean => Number(o.version.split('.')[0]) >= 34;

function synthetic(stateful: boolean): Array<{ name: string; setup: (root: string) => void; steps: Step[] }> {
  const setup = syntheticTree(K, stateful);
  const mode = stateful ? 'with a cache' : 'without a cache';
  // Without depmod-tx's state under -b ROOT there is no cache to reuse: kmod's depmod does the work,
  // except where depmod stops before reading modules (-A on a current tree, -A -n, -V). With it,
  // the first call of a tree finds no cache yet: kmod's depmod writes, the cache is built in the
  // background, the next call merges (after waiting for that build's lock).
  const merges = !stateful;
  const withDefault = (steps: Step[]): Step[] => steps.map((st, i) => ({ handover: merges || i === 0, ...st }));
  return [
    {
      name: `-a, KVER alone, long options and prefixes, a module added and removed (${mode})`,
      setup,
      steps: withDefault([
        { args: [...R, ...C, '-a', K] },
        { args: [...R, ...C, '-a', K] },
        { args: ['--basedir={R}', '--config', '{R}/etc/depmod.d', '--all', K], before: addModule('updates/new.ko') },
        { args: ['--base', '{R}', '--conf={R}/etc/depmod.d', K], before: (root) => rmSync(join(root, 'lib', 'modules', K, 'updates', 'new.ko')) },
        { args: ['-ab{R}', ...C, K] },
        { args: [K, ...R, ...C] },
        { args: [...R, '-C', '{R}/nonexistent', '-a', K] },
        { args: [...R, ...C, '--', K] },
      ]),
    },
    {
      name: `module files kmod cannot load: its ERROR lines, its files, exit 0; repeated; then gone (${mode})`,
      setup,
      steps: withDefault([
        { args: [...R, ...C, '-a', K] },
        { args: [...R, ...C, '-a', K], before: addBroken },
        { args: [...R, ...C, '-a', K] },
        { args: [...R, ...C, '-a', K], before: (root) => rmSync(join(root, 'lib', 'modules', K, 'updates', 'broken'), { recursive: true }) },
      ]),
    },
    {
      name: `-e, -E, -F and -n (${mode})`,
      setup,
      steps: withDefault([
        { args: [...R, ...C, '-e', '-E', '{R}/symvers', '-a', K] },
        { args: [...R, ...C, '-aeE', '{R}/symvers', K] },
        { args: [...R, ...C, '-E', '{R}/symvers', K] },
        { args: [...R, ...C, '-e', '-F', '{R}/System.map', K] },
        { args: [...R, ...C, '-e', K] },
        { args: [...R, ...C, '-n', K] },
        { args: [...R, ...C, '--dry-run', '-e', '-E', '{R}/symvers', K] },
        { args: [...R, ...C, '-A', '-n', K], handover: false },
        { args: [...R, ...C, '-E', '{R}/missing.symvers', '-a', K], handover: true },
        { args: [...R, ...C, '-F', '{R}/missing.map', '-a', K], handover: true },
      ]),
    },
    {
      name: `-A: no modules.dep, current, a module newer than modules.dep (${mode})`,
      setup,
      steps: withDefault([
        { args: [...R, ...C, '-A', K] },
        { args: [...R, ...C, '-A', K], handover: false },
        {
          args: [...R, ...C, '--quick', K],
          before: (root) => {
            const t = Date.now() / 1000 + 5;
            utimesSync(join(root, 'lib', 'modules', K, 'updates', 'd.ko'), t, t);
          },
        },
        // Still outdated: the module's mtime is in the future.
        { args: [...R, ...C, '-A', K] },
      ]),
    },
    {
      name: `options depmod-tx hands to kmod's depmod, deprecated options, -o, -V (${mode})`,
      setup,
      steps: [
        { args: [...R, ...C, '-v', '-a', K], handover: true },
        { args: [...R, ...C, '-w', K], handover: true },
        { args: [...R, ...C, '-P', '_', K], handover: true },
        { args: [...R, ...C, '-P', 'ab', K], handover: true },
        { args: [...R, ...C, '-a', K, `{R}/lib/modules/${K}/kernel/drivers/a.ko`], handover: true },
        { args: [...R, ...C, 'notaversion'], handover: true },
        { args: [...R, ...C, '-x', K], handover: true },
        { args: [...R, ...C, '--bogus', K], handover: true },
        { args: [...R, ...C, '--s', K], handover: true },
        { args: ['-b', '{R}/nonexistent', ...C, '-a', K], handover: true },
        { args: ['-h'], handover: true },
        // The first call here that reads modules: no cache yet (see withDefault).
        { args: [...R, ...C, '-u', '--quiet', '-a', K], handover: true },
        // kmod 34's --moduledir takes a value; before 34, -m is the deprecated --map and "lib/modules" the first operand.
        { args: [...R, ...C, '-m', 'lib/modules', '-a', K], handover: true },
        { args: [...R, ...C, '-m', '-a', K], handover: (o) => kmod34(o) || merges },
        // -o: no cache for another output root (kmod 30 refuses the option).
        { args: [...R, ...C, '-o', '{T}', '-a', K], handover: true },
        { args: ['-V'], stdout: 'version' },
        { args: ['--version', '-x'], stdout: 'version' },
      ],
    },
  ];
}

/** A tree named after the running kernel: `depmod -b ROOT` without KVER takes uname -r. */
const runningKernel: { name: string; setup: (root: string) => void; steps: Step[] } = {
  name: 'no KVER: the running kernel',
  setup: syntheticTree(release(), true),
  steps: [{ args: [...R, ...C], handover: true }, { args: [...R, ...C, '-a'] }, { args: [...R, ...C, '-A'] }],
};

function realTree(kind: 'none' | 'xz', stateful: boolean, only?: number): { name: string; setup: (root: string) => void; steps: Step[] } {
  const k = realKernel('cloud-amd64');
  const tree = recompressedKernel(k, kind);
  const other = realKernel('amd64').symvers;
  const suffix = kind === 'xz' ? '.ko.xz' : '.ko';
  // A module of the tree copied to updates/: found twice, updates/ wins (depmod's default search).
  const donor = `kernel/drivers/net/dummy${suffix}`;
  const steps: Step[] = [
    { args: ['-b', '{R}', '-a', k.kver] },
    { args: ['-b', '{R}', '-a', k.kver] },
    { args: ['-b', '{R}', k.kver], before: (root) => copyIn(root, k.kver, donor, `updates/dummy${suffix}`) },
    { args: ['-b', '{R}', '-A', k.kver], before: (root) => rmSync(join(root, 'lib', 'modules', k.kver, 'updates'), { recursive: true }) },
    { args: ['-b', '{R}', '-n', k.kver] },
  ];
  if (kind === 'none') steps.push({ args: ['-b', '{R}', '-e', '-E', other, k.kver] }, { args: ['-b', '{R}', '-e', '-E', k.symvers, '-a', k.kver] });
  if (only !== undefined) steps.splice(only);
  // Without depmod-tx's state in the root, kmod's depmod does it (no cache to reuse); with it, the
  // first call (no cache yet).
  steps.forEach((st, i) => (st.handover = !stateful || i === 0));
  return {
    name: `real ${k.kver} tree (${kind === 'xz' ? '.ko.xz' : '.ko'}), ${stateful ? 'with' : 'without'} a cache`,
    setup: (root) => {
      cloneRoot(tree.root, root);
      if (stateful) mkdirSync(join(root, 'var', 'cache', 'depmod-tx'), { recursive: true });
    },
    steps,
  };
}

function copyIn(root: string, kver: string, from: string, to: string): void {
  const moddir = join(root, 'lib', 'modules', kver);
  mkdirSync(join(moddir, to, '..'), { recursive: true });
  copyFileSync(join(moddir, from), join(moddir, to));
}

function check(c: { name: string; setup: (root: string) => void; steps: Step[] }, oracle: DepmodOracle): void {
  const { theirs, ours } = compareCalls(c, oracle);
  c.steps.forEach((s, i) => {
    const what = `${oracle.name}: depmod ${s.args.join(' ')}`;
    assert.deepEqual(outcomeDiff(theirs[i]!, ours[i]!, s.stdout), [], what);
    const expected = typeof s.handover === 'function' ? s.handover(oracle) : (s.handover ?? false);
    if (expected) assert.match(ours[i]!.handedOver, /handed to kmod's depmod/, `${what}: handed to kmod's depmod`);
    else assert.equal(ours[i]!.handedOver, '', `${what}: done by depmod-tx itself`);
  });
}

describe('depmod-tx depmod equals kmod depmod', { skip }, () => {
  for (const oracle of skip ? [] : allOracles()) {
    describe(oracle.name, () => {
      for (const c of [...synthetic(true), ...synthetic(false), runningKernel]) it(c.name, () => check(c, oracle));
      it('real trees', { timeout: 600_000 }, () => {
        // Without a cache every call is a full parse: two calls show it; with one, every step.
        for (const c of [realTree('none', true), realTree('none', false, 2), realTree('xz', true, 4)]) check(c, oracle);
      });
    });
  }
});
