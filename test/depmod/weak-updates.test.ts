// The weak-updates decision (src/depmod/weak-updates.ts) on module facts written by hand: each of
// the two families' rules in isolation. The real-kernel test (test/txn/weak-updates-real.test.ts)
// compares whole scenarios with kmod's depmod; these pin one rule each, including what real trees
// rarely show (a KMP that needs a KMP, version replacement, an inconsistent tree, equal priorities).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { parseDepmodConfig } from '../../src/depmod/config.ts';
import { compareKernelsNewestFirst, compareNvrNewestFirst, rpmvercmp } from '../../src/depmod/rpm-version.ts';
import {
  diffLinks, kernelFlavor, planWeakUpdates, rhelGroups, weakLinkPath, type WeakKernel, type WeakKmp, type WeakModule, type WeakRules,
} from '../../src/depmod/weak-updates.ts';

const SUSE_SEARCH = parseDepmodConfig([{ path: 'x.conf', text: 'search updates extra weak-updates kgraft built-in\n' }], '').config;
const RHEL_SEARCH = parseDepmodConfig([{ path: 'x.conf', text: 'search updates extra built-in weak-updates\n' }], '').config;

function mod(moddir: string, rel: string, exports: Record<string, number> = {}, imports: Record<string, number> = {}): WeakModule {
  const file = rel.slice(rel.lastIndexOf('/') + 1);
  return {
    path: `${moddir}/${rel}`,
    name: file.slice(0, file.indexOf('.')).replaceAll('-', '_'),
    exports: new Map(Object.entries(exports)),
    imports: Object.entries(imports).map(([name, crc]) => ({ name, crc, weak: false })),
    sortIdx: 1,
  };
}

interface KernelSpec {
  kver: string;
  modules: Array<[rel: string, exports?: Record<string, number>, imports?: Record<string, number>]>;
  symbols?: Record<string, number>;
  foreign?: string[];
  notTarget?: string;
  rules?: WeakRules;
}

function kernel(k: KernelSpec): WeakKernel {
  const moddir = `/r/lib/modules/${k.kver}`;
  return {
    kver: k.kver,
    moddir,
    modules: k.modules.map(([rel, e, i]) => mod(moddir, rel, e, i)),
    symbols: new Map(Object.entries(k.symbols ?? { printk: 1 })),
    basis: 'symvers',
    config: k.rules === 'rhel' ? RHEL_SEARCH : SUSE_SEARCH,
    foreign: k.foreign ?? [],
    notTarget: k.notTarget,
  };
}

function kmp(nvr: string, k: WeakKernel, rels: string[]): WeakKmp {
  return {
    nvr,
    kver: k.kver,
    files: rels.map((rel) => ({ kver: k.kver, rel, module: k.modules.find((m) => m.path === `${k.moddir}/${rel}`)! })),
  };
}

const links = (plans: ReturnType<typeof planWeakUpdates>, kver: string): string[] => plans.find((p) => p.kver === kver)!.links.map((l) => `${l.link} -> ${l.target}`);
const rejected = (plans: ReturnType<typeof planWeakUpdates>, kver: string): string[] => plans.find((p) => p.kver === kver)!.rejected.map((r) => `${r.unit}: ${r.reason}`);

const CORE: KernelSpec['modules'] = [
  ['kernel/lib/core.ko', { core_fn: 0x10 }, { printk: 1 }],
  ['kernel/drivers/user.ko', {}, { core_fn: 0x10 }],
];

test('SUSE: a KMP whose imports match is linked as weak-updates/<path below its module directory>; one that disagrees is not, with the symbol', () => {
  const a = kernel({ kver: '5.14.21-1-default', modules: [...CORE, ['updates/good.ko', {}, { core_fn: 0x10 }], ['updates/bad.ko', {}, { printk: 2 }]] });
  const b = kernel({ kver: '5.14.21-2-default', modules: CORE });
  const plans = planWeakUpdates({ rules: 'suse', kernels: [a, b], kmps: [kmp('good-kmp-default-1-1', a, ['updates/good.ko']), kmp('bad-kmp-default-1-1', a, ['updates/bad.ko'])] });
  assert.deepEqual(links(plans, b.kver), ['weak-updates/updates/good.ko -> /r/lib/modules/5.14.21-1-default/updates/good.ko']);
  const r = plans.find((p) => p.kver === b.kver)!.rejected;
  assert.equal(r.length, 1);
  assert.equal(r[0]!.reason, 'kabi');
  assert.deepEqual(r[0]!.problems, [{ kind: 'crc-mismatch', module: '/r/lib/modules/5.14.21-2-default/weak-updates/updates/bad.ko', symbol: 'printk', expectedCrc: 2, foundCrc: 1, provider: 'vmlinux' }]);
  assert.deepEqual(links(plans, a.kver), [], 'a KMP is never linked into its own kernel');
});

test("SUSE: a link that replaces an in-tree module must not break the tree's other modules (checked anywhere, not only the KMP)", () => {
  const a = kernel({ kver: '5.14.21-1-default', modules: [['kernel/lib/core.ko', { core_fn: 0x11 }, { printk: 1 }], ['updates/core.ko', { core_fn: 0x11 }, { printk: 1 }]] });
  const b = kernel({ kver: '5.14.21-2-default', modules: CORE });
  const plans = planWeakUpdates({ rules: 'suse', kernels: [a, b], kmps: [kmp('core-kmp-default-1-1', a, ['updates/core.ko'])] });
  assert.deepEqual(links(plans, b.kver), []);
  const p = plans.find((x) => x.kver === b.kver)!.rejected[0]!;
  assert.equal(p.problems[0]!.module, '/r/lib/modules/5.14.21-2-default/kernel/drivers/user.ko', 'the in-tree user of the replaced module is the one that fails');
  // RHEL's rules look at the links' own problems only: the same link is made.
  const ar = { ...a, modules: [a.modules[0]!, mod(a.moddir, 'extra/core.ko', { core_fn: 0x11 }, { printk: 1 })], config: RHEL_SEARCH };
  const br = { ...b, config: RHEL_SEARCH };
  assert.deepEqual(links(planWeakUpdates({ rules: 'rhel', kernels: [ar, br] }), b.kver), ['weak-updates/core.ko -> /r/lib/modules/5.14.21-1-default/extra/core.ko']);
});

test('SUSE: a file of the same name in updates/, extra/ or weak-updates/ keeps the whole KMP out', () => {
  const a = kernel({ kver: '5.14.21-1-default', modules: [...CORE, ['updates/x/one.ko'], ['updates/x/two.ko']] });
  for (const foreign of ['updates/two.ko', 'extra/deep/two.ko', 'weak-updates/admin/two.ko']) {
    const b = kernel({ kver: '5.14.21-2-default', modules: CORE, foreign: [foreign] });
    const plans = planWeakUpdates({ rules: 'suse', kernels: [a, b], kmps: [kmp('x-kmp-default-1-1', a, ['updates/x/one.ko', 'updates/x/two.ko'])] });
    assert.deepEqual(links(plans, b.kver), [], foreign);
    assert.deepEqual(rejected(plans, b.kver), ['x-kmp-default-1-1: file-name'], foreign);
  }
});

test('SUSE: a KMP that needs another KMP is linked on the next pass, after the one it needs', () => {
  // zz-kmp is tried first (newest-first order puts names in descending order) and needs aa_fn, which
  // only aa-kmp provides; the pass that added aa-kmp skipped zz-kmp, so weak-modules2 passes again.
  const a = kernel({ kver: '5.14.21-1-default', modules: [...CORE, ['updates/aa.ko', { aa_fn: 7 }, { core_fn: 0x10 }], ['updates/zz.ko', {}, { aa_fn: 7 }]] });
  const b = kernel({ kver: '5.14.21-2-default', modules: CORE });
  const plans = planWeakUpdates({ rules: 'suse', kernels: [a, b], kmps: [kmp('aa-kmp-default-1-1', a, ['updates/aa.ko']), kmp('zz-kmp-default-1-1', a, ['updates/zz.ko'])] });
  assert.deepEqual(links(plans, b.kver), [
    'weak-updates/updates/aa.ko -> /r/lib/modules/5.14.21-1-default/updates/aa.ko',
    'weak-updates/updates/zz.ko -> /r/lib/modules/5.14.21-1-default/updates/zz.ko',
  ]);
  assert.deepEqual(rejected(plans, b.kver), []);
});

test('SUSE: one version per KMP name, the newest that fits; an older one where the newer does not fit', () => {
  const a = kernel({ kver: '5.14.21-1-default', modules: [...CORE, ['updates/drv.ko', {}, { core_fn: 0x10 }]] });
  const c = kernel({ kver: '5.14.21-3-default', modules: [['kernel/lib/core.ko', { core_fn: 0x10 }, { printk: 1 }], ['updates/drv.ko', {}, { core_fn: 0x10 }]] });
  const b = kernel({ kver: '5.14.21-2-default', modules: CORE });
  const v1 = kmp('drv-kmp-default-1.0-1', a, ['updates/drv.ko']);
  const v2 = kmp('drv-kmp-default-1.10-1', c, ['updates/drv.ko']);
  let plans = planWeakUpdates({ rules: 'suse', kernels: [a, b, c], kmps: [v1, v2] });
  assert.deepEqual(links(plans, b.kver), ['weak-updates/updates/drv.ko -> /r/lib/modules/5.14.21-3-default/updates/drv.ko'], '1.10 is newer than 1.0 (rpmvercmp)');
  assert.deepEqual(rejected(plans, b.kver), ['drv-kmp-default-1.0-1: file-name']);
  const c2 = { ...c, modules: [c.modules[0]!, mod(c.moddir, 'updates/drv.ko', {}, { core_fn: 0x99 })] };
  plans = planWeakUpdates({ rules: 'suse', kernels: [a, b, c2], kmps: [v1, { ...v2, files: [{ ...v2.files[0]!, module: c2.modules[1]! }] }] });
  assert.deepEqual(links(plans, b.kver), ['weak-updates/updates/drv.ko -> /r/lib/modules/5.14.21-1-default/updates/drv.ko']);
  assert.deepEqual(rejected(plans, b.kver), ['drv-kmp-default-1.10-1: kabi']);
});

test('SUSE: only kernels of the same flavour, only targets; a kernel with problems of its own takes no KMP', () => {
  const a = kernel({ kver: '5.14.21-1-default', modules: [...CORE, ['updates/drv.ko', {}, { core_fn: 0x10 }]] });
  const rt = kernel({ kver: '5.14.21-2-rt', modules: CORE });
  const noMap = kernel({ kver: '5.14.21-3-default', modules: CORE, notTarget: 'no System.map' });
  const broken = kernel({ kver: '5.14.21-4-default', modules: [...CORE, ['kernel/drivers/old.ko', {}, { gone_fn: 1 }]] });
  const livepatched = kernel({ kver: '5.14.21-5-default', modules: [...CORE, ['livepatch/lp.ko', {}, { gone_fn: 1 }]] });
  const plans = planWeakUpdates({ rules: 'suse', kernels: [a, rt, noMap, broken, livepatched], kmps: [kmp('drv-kmp-default-1-1', a, ['updates/drv.ko'])] });
  assert.deepEqual(links(plans, rt.kver), []);
  assert.deepEqual(rejected(plans, rt.kver), [], 'another flavour is not even tried');
  assert.equal(plans.find((p) => p.kver === noMap.kver)!.notTarget, 'no System.map');
  assert.deepEqual(links(plans, broken.kver), []);
  assert.match(plans.find((p) => p.kver === broken.kver)!.rejected[0]!.detail, /old\.ko needs unknown symbol gone_fn .*without any link/);
  assert.equal(links(plans, livepatched.kver).length, 1, 'livepatch/ is left out of the check, as weak-modules2 leaves it out of its copy');
});

test('SUSE: a link whose module loses to the in-tree one (equal priority: no weak-updates in the search line) is not counted on', () => {
  const noWeak = parseDepmodConfig([], '').config;
  const a = kernel({ kver: '5.14.21-1-default', modules: [['kernel/lib/core.ko', { core_fn: 0x11 }, { printk: 1 }], ['updates/core.ko', { core_fn: 0x11 }, { printk: 1 }], ['updates/user2.ko', {}, { core_fn: 0x11 }]] });
  const b = { ...kernel({ kver: '5.14.21-2-default', modules: CORE }), config: noWeak };
  const plans = planWeakUpdates({ rules: 'suse', kernels: [a, b], kmps: [kmp('core-kmp-default-1-1', a, ['updates/core.ko', 'updates/user2.ko'])] });
  // weak-updates/updates/core.ko ties with kernel/lib/core.ko: user2 then sees the in-tree core_fn (0x10).
  assert.deepEqual(rejected(plans, b.kver), ['core-kmp-default-1-1: kabi']);
  assert.equal(plans.find((p) => p.kver === b.kver)!.rejected[0]!.problems[0]!.symbol, 'core_fn');
});

test('RHEL: independent extra/ modules one by one, a group all or nothing, newest kernel first, a file name once', () => {
  const mk = (kver: string, extra: KernelSpec['modules']): WeakKernel => kernel({ kver, modules: [...CORE, ...extra], rules: 'rhel' });
  const k1 = mk('5.14.0-70.el9.x86_64', [['extra/drv/solo.ko', {}, { core_fn: 0x10 }], ['extra/drv/lib.ko', { lib_fn: 1 }, { printk: 9 }], ['extra/drv/app.ko', {}, { lib_fn: 1 }], ['extra/drv/bad.ko', {}, { core_fn: 0x20 }]]);
  const k2 = mk('5.14.0-427.el9.x86_64', [['extra/drv/solo.ko', {}, { core_fn: 0x10 }]]);
  // The target has its own lib.ko: app.ko fits with it once lib.ko's link is dropped (ghash-generic and gf128mul on real kernels).
  const target = mk('5.14.0-362.el9.x86_64', [['kernel/lib/lib.ko', { lib_fn: 1 }, { printk: 1 }]]);
  const plans = planWeakUpdates({ rules: 'rhel', kernels: [k1, k2, target] });
  assert.deepEqual(links(plans, target.kver), ['weak-updates/drv/solo.ko -> /r/lib/modules/5.14.0-427.el9.x86_64/extra/drv/solo.ko'], '427 is tried before 70: its solo.ko wins, 70 is not tried for that name');
  const r = plans.find((p) => p.kver === target.kver)!.rejected.map((x) => `${x.modules.map((m) => m.slice(m.lastIndexOf('/') + 1)).join(',')}: ${x.reason}`).sort();
  assert.deepEqual(r, ['app.ko: group', 'bad.ko: kabi', 'lib.ko: kabi'], 'lib.ko fails, so app.ko (its group) is not linked though it fits');
  // The older kernel gets the newer kernel's module the same way.
  assert.deepEqual(links(plans, k1.kver), ['weak-updates/drv/solo.ko -> /r/lib/modules/5.14.0-427.el9.x86_64/extra/drv/solo.ko']);
});

test('RHEL: a link path taken by a file depmod-tx did not make is left alone; a kernel without symvers gets nothing', () => {
  const k1 = kernel({ kver: '5.14.0-70.el9.x86_64', modules: [...CORE, ['extra/drv/solo.ko', {}, { core_fn: 0x10 }]], rules: 'rhel' });
  const taken = kernel({ kver: '5.14.0-362.el9.x86_64', modules: CORE, foreign: ['weak-updates/drv/solo.ko'], rules: 'rhel' });
  const none = kernel({ kver: '5.14.0-427.el9.x86_64', modules: CORE, notTarget: 'no symvers.gz', rules: 'rhel' });
  const plans = planWeakUpdates({ rules: 'rhel', kernels: [k1, taken, none] });
  assert.deepEqual(links(plans, taken.kver), []);
  assert.deepEqual(rejected(plans, taken.kver), ['5.14.0-70.el9.x86_64 independent modules: path-taken']);
  assert.deepEqual(links(plans, none.kver), []);
});

test("rhelGroups follows weak-modules' do_make_groups: a line's extra/ modules form a group, swallowing groups named by its members", () => {
  const isExtra = (p: string): boolean => p.includes('extra/');
  assert.deepEqual(
    rhelGroups(
      [
        ['extra/b.ko'],
        ['extra/a.ko', 'extra/b.ko', 'kernel/c.ko'],
        ['kernel/c.ko'],
        ['extra/d.ko'],
        ['extra/b.ko'],
      ],
      isExtra,
    ),
    [['extra/a.ko', 'extra/b.ko'], ['extra/d.ko']],
  );
});

test('rpmvercmp: digits beat letters, numbers compare as numbers, ~ sorts first and ^ after the end', () => {
  const cases: Array<[string, string, number]> = [
    ['1.0', '1.0', 0], ['1.0', '1.0.1', -1], ['1.10', '1.9', 1], ['1.01', '1.1', 0], ['1.0a', '1.0', 1], ['1.0a', '1.0.1', -1],
    ['2.0~rc1', '2.0', -1], ['2.0~rc1', '2.0~rc2', -1], ['1.0^1', '1.0', 1], ['1.0^1', '1.0.1', -1], ['a', '1', -1], ['1_0', '1.0', 0],
  ];
  for (const [a, b, want] of cases) {
    assert.equal(Math.sign(rpmvercmp(a, b)), want, `${a} vs ${b}`);
    assert.ok(Math.sign(rpmvercmp(b, a)) === -want, `${b} vs ${a}`);
  }
  assert.deepEqual(['x-kmp-1.0-1', 'x-kmp-1.10-1', 'x-kmp-1.9-2'].sort(compareNvrNewestFirst), ['x-kmp-1.10-1', 'x-kmp-1.9-2', 'x-kmp-1.0-1']);
});

test("kernels newest first as RHEL's weak-modules sorts them (sort -r -n -t. -k1,1 ... -k10,10 after - becomes ..)", () => {
  const kvers = ['5.14.0-70.13.1.el9_0.x86_64', '5.14.0-427.el9.x86_64', '5.14.0-362.8.1.el9_3.x86_64', '5.14.0-362.24.1.el9_3.x86_64', '6.1.0-53-cloud-amd64', '6.1.0-50-cloud-amd64', '6.12.0-1-amd64'];
  const keys = Array.from({ length: 10 }, (_, i) => `-k${i + 1},${i + 1}`);
  const bySort = execFileSync('sort', ['-r', '-n', '-t.', ...keys], { input: kvers.map((k) => k.replaceAll('-', '..')).join('\n'), encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } })
    .trim()
    .split('\n')
    .map((l) => l.replaceAll('..', '-'));
  assert.deepEqual([...kvers].sort(compareKernelsNewestFirst), bySort);
});

test('kernel flavours, link paths, link changes', () => {
  assert.equal(kernelFlavor('5.14.21-150500.55.39-default'), 'default');
  assert.equal(kernelFlavor('6.1.0-53-cloud-amd64'), 'cloud-amd64');
  assert.equal(kernelFlavor('6.12.117+deb12-amd64'), 'amd64');
  assert.equal(kernelFlavor('5.14.0-362.el9.x86_64'), '');
  assert.equal(weakLinkPath('suse', 'updates/x/y.ko'), 'weak-updates/updates/x/y.ko');
  assert.equal(weakLinkPath('rhel', 'extra/x/y.ko'), 'weak-updates/x/y.ko');
  const d = diffLinks(new Map([['weak-updates/a.ko', '/t/a.ko'], ['weak-updates/b.ko', '/t/b.ko'], ['weak-updates/c.ko', '/t/c.ko']]), [
    { link: 'weak-updates/a.ko', target: '/t/a.ko', from: 'k', unit: 'u' },
    { link: 'weak-updates/b.ko', target: '/u/b.ko', from: 'k', unit: 'u' },
    { link: 'weak-updates/d.ko', target: '/t/d.ko', from: 'k', unit: 'u' },
  ]);
  assert.deepEqual(d.add.map((l) => l.link), ['weak-updates/b.ko', 'weak-updates/d.ko']);
  assert.deepEqual(d.remove.map((l) => l.link), ['weak-updates/b.ko', 'weak-updates/c.ko']);
  assert.equal(d.keep, 1);
});
