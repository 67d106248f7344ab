// The synthetic fixtures are only worth something if Debian's depmod (kmod 30, the oracle) reads them
// as we mean them: every expectation below is written by hand from the fixture's description and
// kmod's documented output formats, then checked against what depmod wrote.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildModuleElf, kmodExports, kmodImports, type FixtureModule } from './fixture-elf.ts';
import { depmodConfigArgs, writeFixtureTree, type FixtureTreeModule } from './fixture-tree.ts';
import { randomTree } from './random-tree.ts';
import { oracleDepmod, realKernelSkipReason } from './kernels.ts';

const skip = realKernelSkipReason();
const KVER = '6.1.0-fx';
const COMBOS = [
  { bits: 64, endian: 'le' },
  { bits: 64, endian: 'be' },
  { bits: 32, endian: 'le' },
  { bits: 32, endian: 'be' },
] as const;
const STYLES = ['kcrctab', 'crc-absolute', 'crc-section'] as const;
type Style = (typeof STYLES)[number];

const F = 0x11111111;
const G = 0xf2222222; // high bit set: a sign or width slip in a CRC reader shows up
const H = 0x33333333;
const KFN = 0x0badcafe;
const LAYOUT = 0x5eed0001;

interface Twists {
  /** CRC mod_b expects for f. */
  bF?: number;
  /** mod_c also imports a symbol nobody exports. */
  cUnknown?: boolean;
  /** CRC mod_d expects for kernel_fn and module_layout. */
  dKfn?: number;
  dLayout?: number;
}

/** The small tree of the brief: A exports f, B imports f and exports g, C imports g; D and E around them. */
function smallTree(style: Style, t: Twists = {}): FixtureTreeModule[] {
  const vermagic: [string, string] = ['vermagic', '6.1.0-fx SMP mod_unload modversions '];
  const layout = { name: 'module_layout', crc: LAYOUT, versionOnly: true };
  const a: FixtureModule = {
    crcStyle: style,
    modinfo: [['alias', 'pci:v00001234d0000ABCDsv*sd*bc*sc*i*'], ['alias', 'my-dev_a'], ['license', 'GPL'], vermagic],
    exports: [{ name: 'f', crc: F }],
    imports: [{ name: 'kernel_fn', crc: KFN }, layout],
  };
  const b: FixtureModule = {
    crcStyle: style,
    modinfo: [['alias', 'fs-foo-bar'], ['depends', 'mod_a'], vermagic],
    exports: [{ name: 'g', crc: G, gpl: true }],
    imports: [{ name: 'f', crc: t.bF ?? F }, layout],
  };
  const c: FixtureModule = {
    crcStyle: style,
    modinfo: [
      ['alias', 'devname:foo/bar'],
      ['softdep', 'pre: mod_a post: mod_b'],
      ['alias', 'char-major-10-200'],
      vermagic,
    ],
    imports: [
      { name: 'g', crc: G },
      { name: 'opt_hook', weak: true },
      ...(t.cUnknown === true ? [{ name: 'no_such_symbol', crc: 0x42 }] : []),
      layout,
    ],
  };
  const d: FixtureModule = {
    crcStyle: style,
    modinfo: [['alias', 'usb:v1234p5678d*dc*dsc*dp*ic*isc*ip*in*'], ['alias', 'block-major-7-3'], ['alias', 'devname:blk/d'], vermagic],
    exports: [{ name: 'h', crc: H }],
    imports: [
      { name: 'f', crc: F },
      { name: 'kernel_fn', crc: t.dKfn ?? KFN },
      { name: 'module_layout', crc: t.dLayout ?? LAYOUT, versionOnly: true },
    ],
  };
  // No crc on its export: kmod falls back to __ksymtab_strings and reports crc 0. Its import of f has
  // no __versions entry, so kmod compares 0 with f's crc.
  const e: FixtureModule = { crcStyle: style, modinfo: [vermagic], exports: [{ name: 'e_plain' }], imports: [{ name: 'f' }] };
  return [
    { path: 'kernel/drivers/a/mod-a.ko', module: a },
    { path: 'kernel/drivers/b/mod_b.ko', module: b },
    { path: 'kernel/drivers/c/mod-c.ko', module: c },
    { path: 'updates/mod-d.ko', module: d },
    { path: 'extra/mod_e.ko', module: e },
  ];
}

// modules.order lists C first: line order follows this file, not the file system. D is not listed: last.
const ORDER = ['kernel/drivers/c/mod-c.ko', 'kernel/drivers/a/mod-a.ko', 'extra/mod_e.ko', 'kernel/drivers/b/mod_b.ko'];

const SYMVERS = [
  `0x${KFN.toString(16).padStart(8, '0')}\tkernel_fn\tvmlinux\tEXPORT_SYMBOL\t`,
  `0x${LAYOUT.toString(16).padStart(8, '0')}\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t`,
  // Exported by a module, not vmlinux: depmod -E only loads vmlinux lines, so this changes nothing.
  `0x00000001\tf\tkernel/drivers/a/mod-a\tEXPORT_SYMBOL\t`,
  '',
].join('\n');

function lines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').slice(0, -1);
}

let work = '';
before(() => {
  work = mkdtempSync(join(tmpdir(), 'depmod-tx-fixtures-'));
});
after(() => {
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

function writeSmall(name: string, combo: (typeof COMBOS)[number], style: Style, t: Twists = {}): { root: string; moddir: string; conf: string[] } {
  const root = join(work, name);
  const moddir = writeFixtureTree(root, KVER, smallTree(style, t), {
    order: ORDER,
    builtin: ['kernel/lib/zlib_inflate.ko'],
    builtinModinfo: [['zlib_inflate', 'license', 'GPL']],
    bits: combo.bits,
    endian: combo.endian,
  });
  writeFileSync(join(root, 'Module.symvers'), SYMVERS);
  return { root, moddir, conf: depmodConfigArgs(root, undefined) };
}

describe('fixtures: Debian depmod reads synthetic modules as described', { skip }, () => {
  for (const combo of COMBOS) {
    for (const style of STYLES) {
      const tag = `${combo.bits}-bit ${combo.endian.toUpperCase()} ${style}`;
      it(`${tag}: modules.dep, .alias, .symbols, .softdep, .devname`, () => {
        const { root, moddir, conf } = writeSmall(`ok-${combo.bits}${combo.endian}-${style}`, combo, style);
        // -e -E with every CRC matching: a CRC read wrongly (width, byte order, section) would warn.
        const stderr = oracleDepmod(root, KVER, [...conf, '-e', '-E', join(root, 'Module.symvers')]);
        const disagree = stderr.split('\n').filter((l) => l.includes('disagrees') || l.includes('unknown symbol'));
        assert.deepEqual(disagree, [`depmod: WARNING: ${moddir}/extra/mod_e.ko disagrees about version of symbol f`]);
        assert.equal(stderr.includes('opt_hook'), false, 'an unresolved weak import is not reported');

        assert.deepEqual(lines(join(moddir, 'modules.dep')), [
          'kernel/drivers/c/mod-c.ko: kernel/drivers/b/mod_b.ko kernel/drivers/a/mod-a.ko',
          'kernel/drivers/a/mod-a.ko:',
          'extra/mod_e.ko: kernel/drivers/a/mod-a.ko',
          'kernel/drivers/b/mod_b.ko: kernel/drivers/a/mod-a.ko',
          'updates/mod-d.ko: kernel/drivers/a/mod-a.ko',
        ]);
        assert.deepEqual(lines(join(moddir, 'modules.alias')), [
          '# Aliases extracted from modules themselves.',
          'alias devname:foo/bar mod_c',
          'alias char-major-10-200 mod_c',
          'alias pci:v00001234d0000ABCDsv*sd*bc*sc*i* mod_a',
          'alias my-dev_a mod_a',
          'alias fs-foo-bar mod_b',
          'alias usb:v1234p5678d*dc*dsc*dp*ic*isc*ip*in* mod_d',
          'alias block-major-7-3 mod_d',
          'alias devname:blk/d mod_d',
        ]);
        const symbols = lines(join(moddir, 'modules.symbols'));
        assert.equal(symbols[0], '# Aliases for symbols, used by symbol_request().');
        // Line order is kmod's hash-bucket order; the set is what the fixture defines.
        assert.deepEqual(symbols.slice(1).sort(), [
          'alias symbol:e_plain mod_e',
          'alias symbol:f mod_a',
          'alias symbol:g mod_b',
          'alias symbol:h mod_d',
        ]);
        assert.deepEqual(lines(join(moddir, 'modules.softdep')), [
          '# Soft dependencies extracted from modules themselves.',
          'softdep mod_c pre: mod_a post: mod_b',
        ]);
        assert.deepEqual(lines(join(moddir, 'modules.devname')), [
          '# Device nodes to trigger on-demand module loading.',
          'mod_c foo/bar c10:200',
          'mod_d blk/d b7:3',
        ]);
      });
    }

    it(`${combo.bits}-bit ${combo.endian.toUpperCase()}: wrong CRCs and a missing export are reported`, () => {
      for (const style of STYLES) {
        const { root, moddir, conf } = writeSmall(`bad-${combo.bits}${combo.endian}-${style}`, combo, style, {
          bF: F ^ 1,
          cUnknown: true,
          dKfn: KFN + 1,
          dLayout: (LAYOUT ^ 0x80000000) >>> 0,
        });
        const stderr = oracleDepmod(root, KVER, [...conf, '-e', '-E', join(root, 'Module.symvers')]);
        const warnings = stderr
          .split('\n')
          .filter((l) => l.includes('disagrees') || l.includes('unknown symbol'))
          .sort();
        assert.deepEqual(
          warnings,
          [
            `depmod: WARNING: ${moddir}/extra/mod_e.ko disagrees about version of symbol f`,
            `depmod: WARNING: ${moddir}/kernel/drivers/b/mod_b.ko disagrees about version of symbol f`,
            `depmod: WARNING: ${moddir}/kernel/drivers/c/mod-c.ko needs unknown symbol no_such_symbol`,
            `depmod: WARNING: ${moddir}/updates/mod-d.ko disagrees about version of symbol kernel_fn`,
            `depmod: WARNING: ${moddir}/updates/mod-d.ko disagrees about version of symbol module_layout`,
          ].sort(),
          style,
        );
      }
    });
  }

  it('compressed fixtures (.ko.xz, .ko.zst) give the same modules.dep with the real suffix; .ko.gz is not read by Debian kmod 30', () => {
    const tree = smallTree('kcrctab').map((m) => ({
      ...m,
      path: m.path.replace(/\.ko$/, m.path.includes('mod-a') ? '.ko.xz' : m.path.includes('mod_b') ? '.ko.zst' : '.ko'),
    }));
    tree.push({ path: 'kernel/drivers/z/mod_z.ko.gz', module: { modinfo: [['alias', 'zzz']], exports: [{ name: 'z', crc: 1 }] } });
    const root = join(work, 'compressed');
    // modules.order names the uncompressed path (depmod_modules_sort looks lines up by it), as kernels ship it.
    const moddir = writeFixtureTree(root, KVER, tree, { order: ORDER });
    oracleDepmod(root, KVER, depmodConfigArgs(root, undefined));
    assert.deepEqual(lines(join(moddir, 'modules.dep')), [
      'kernel/drivers/c/mod-c.ko: kernel/drivers/b/mod_b.ko.zst kernel/drivers/a/mod-a.ko.xz',
      'kernel/drivers/a/mod-a.ko.xz:',
      'extra/mod_e.ko: kernel/drivers/a/mod-a.ko.xz',
      'kernel/drivers/b/mod_b.ko.zst: kernel/drivers/a/mod-a.ko.xz',
      'updates/mod-d.ko: kernel/drivers/a/mod-a.ko.xz',
    ]);
  });

  it('a two-module dependency cycle makes depmod fail and name both modules', () => {
    const root = join(work, 'cycle');
    writeFixtureTree(root, KVER, [
      { path: 'kernel/x.ko', module: { exports: [{ name: 'x_fn', crc: 1 }], imports: [{ name: 'y_fn', crc: 2 }] } },
      { path: 'kernel/y.ko', module: { exports: [{ name: 'y_fn', crc: 2 }], imports: [{ name: 'x_fn', crc: 1 }] } },
    ]);
    const r = spawnSync('depmod', ['-b', root, ...depmodConfigArgs(root, undefined), '-a', KVER], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Cycle detected: (x -> y -> x|y -> x -> y)/);
  });

  it('random trees (seeds 1..12, mixed classes and compression) are accepted by depmod', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const t = randomTree(seed, { compression: 'mixed' });
      const root = join(work, `random-${seed}`);
      const moddir = writeFixtureTree(root, t.kver, t.modules, { order: t.order, depmodConf: t.depmodConf, bits: t.bits, endian: t.endian });
      oracleDepmod(root, t.kver, depmodConfigArgs(root, t.depmodConf));
      const dep = lines(join(moddir, 'modules.dep'));
      assert.ok(dep.length > 0, `seed ${seed}: modules.dep is empty`);
      assert.ok(dep.length <= t.modules.length, `seed ${seed}`);
    }
  });
});

describe('randomTree', () => {
  it('reproduces a tree from its seed and varies with it', () => {
    assert.deepEqual(randomTree(7), randomTree(7));
    assert.notDeepEqual(randomTree(7), randomTree(8));
  });

  it('stays within 5..40 modules and draws the shapes it promises over many seeds', () => {
    let dupNames = 0;
    let weak = 0;
    let softdep = 0;
    let devname = 0;
    let unlisted = 0;
    let conf = 0;
    for (let seed = 0; seed < 200; seed++) {
      const t = randomTree(seed);
      assert.ok(t.modules.length >= 5 && t.modules.length <= 40);
      const names = t.modules.map((m) => (m.path.split('/').pop() ?? '').replace(/\.ko.*$/, '').replace(/-/g, '_'));
      if (new Set(names).size < names.length) dupNames++;
      if (t.modules.some((m) => m.module.imports?.some((i) => i.weak === true))) weak++;
      if (t.modules.some((m) => m.module.modinfo?.some(([k]) => k === 'softdep'))) softdep++;
      if (t.modules.some((m) => m.module.modinfo?.some(([k, v]) => k === 'alias' && v.startsWith('devname:')))) devname++;
      if (t.modules.some((m) => !t.order.includes(m.path.replace(/\.ko\..*$/, '.ko')))) unlisted++;
      if (Object.keys(t.depmodConf).length > 0) conf++;
    }
    for (const [what, n] of Object.entries({ dupNames, weak, softdep, devname, unlisted, conf })) {
      assert.ok(n >= 50, `${what}: only ${n} of 200 trees`);
    }
  });
});

describe('fixture ELF writer', () => {
  it('kmodExports/kmodImports state kmod’s view: crc-less exports vanish next to crc’d ones; unmatched __versions entries come last', () => {
    const m: FixtureModule = {
      exports: [{ name: 'a', crc: 1 }, { name: 'b' }, { name: 'c', crc: 3, gpl: true }],
      imports: [{ name: 'layout', crc: 9, versionOnly: true }, { name: 'x', crc: 5 }, { name: 'y', weak: true }],
    };
    assert.deepEqual(kmodExports(m), [
      { name: 'a', crc: 1 },
      { name: 'c', crc: 3 },
    ]);
    assert.deepEqual(kmodExports({ exports: [{ name: 'p', gpl: true }, { name: 'q' }] }), [
      { name: 'q', crc: 0 },
      { name: 'p', crc: 0 },
    ]);
    assert.deepEqual(kmodImports(m), [
      { name: 'x', crc: 5, weak: false },
      { name: 'y', crc: 0, weak: true },
      { name: 'layout', crc: 9, weak: false },
    ]);
  });

  it('writes the ELF identification and header fields kmod checks', () => {
    for (const combo of COMBOS) {
      const b = buildModuleElf({ exports: [{ name: 'f', crc: F }] }, combo);
      assert.deepEqual([...b.subarray(0, 7)], [0x7f, 0x45, 0x4c, 0x46, combo.bits === 64 ? 2 : 1, combo.endian === 'le' ? 1 : 2, 1]);
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      const le = combo.endian === 'le';
      assert.equal(dv.getUint16(16, le), 1, 'ET_REL');
      const shentsize = dv.getUint16(combo.bits === 64 ? 58 : 46, le);
      assert.equal(shentsize, combo.bits === 64 ? 64 : 40);
    }
  });

  it('rejects what cannot be encoded', () => {
    assert.throws(() => buildModuleElf({ exports: [{ name: 'f', crc: 2 ** 32 }] }), RangeError);
    assert.throws(() => buildModuleElf({ imports: [{ name: 'x'.repeat(56), crc: 1 }] }, { bits: 64 }), RangeError);
    assert.doesNotThrow(() => buildModuleElf({ imports: [{ name: 'x'.repeat(59), crc: 1 }] }, { bits: 32 }));
    assert.throws(() => buildModuleElf({ modinfo: [['a=b', 'c']] }), RangeError);
    assert.throws(() => buildModuleElf({ imports: [{ name: 'l', versionOnly: true }] }), RangeError);
  });
});
