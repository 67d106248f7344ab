// One test per kmod v30 quirk depmod-tx reproduces. Expectations come from kmod's source semantics
// (tools/depmod.c, shared/*.c) and, where noted, from what Debian's depmod printed on a tree.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { removeFromCircularList } from '../../src/depmod/compute.ts';
import { uncompressedRelpath } from '../../src/depmod/module-set.ts';
import { buildDb as buildDatabase } from '../support/build-db.ts';
import { configFileOrder, configLogicalLines, kernelMatches, parseDepmodConfig } from '../../src/depmod/config.ts';
import { parseSymvers } from '../../src/depmod/kernel-symbols.ts';
import { kmodHashIterationOrder, MODULES_BY_NAME_BUCKETS } from '../../src/depmod/kmod-hash.ts';
import { builtinAliases, builtinModnames } from '../../src/depmod/builtin.ts';
import { scanMajorMinor } from '../../src/depmod/emit.ts';
import type { DepmodMessage } from '../../src/depmod/diagnostic.ts';
import { existingModuleWins, hasModuleSuffix, isExcludedEntry, kmodModname, searchModules, type ListEntry } from '../../src/depmod/search.ts';
import type { ModuleRecord } from '../../src/module/record.ts';

const rec = (name: string, r: Partial<ModuleRecord> = {}): ModuleRecord => ({ name, modinfo: [], exports: [], imports: [], ...r });
const td = new TextDecoder();

describe('module array order', () => {
  it('modules outside modules.order follow kmod hash order (observed with depmod on copies of dummy.ko, no modules.order)', () => {
    // Debian depmod printed exactly this modules.dep order for these files (readdir order was beta delta mid omega zeta gamma alpha).
    const names = ['beta', 'delta', 'mid', 'omega', 'zeta', 'gamma', 'alpha', 'kappa', 'lambda'];
    assert.deepEqual(kmodHashIterationOrder(names, (s) => s, MODULES_BY_NAME_BUCKETS), ['gamma', 'beta', 'zeta', 'omega', 'delta', 'mid', 'alpha', 'kappa', 'lambda']);
    const db = buildDatabase({ modules: names.map((n) => ({ path: `kernel/a/${n}.ko`, record: rec(n) })) });
    assert.deepEqual(db.modules.map((m) => m.name), ['gamma', 'beta', 'zeta', 'omega', 'delta', 'mid', 'alpha', 'kappa', 'lambda']);
  });

  it('modules.order puts listed modules first, the last listing of a line wins, unlisted keep hash order', () => {
    const names = ['beta', 'delta', 'mid', 'gamma'];
    const modules = names.map((n) => ({ path: `k/${n}.ko`, record: rec(n) }));
    const db = buildDatabase({ modules, order: 'k/mid.ko\nk/delta.ko\nk/mid.ko\nk/unknown.ko\n' });
    assert.deepEqual(db.modules.map((m) => m.name), ['delta', 'mid', 'gamma', 'beta']);
  });

  it('a modules.order whose last line lacks a newline is ignored entirely (kmod: corrupted line)', () => {
    const modules = ['beta', 'gamma'].map((n) => ({ path: `k/${n}.ko`, record: rec(n) }));
    const db = buildDatabase({ modules, order: 'k/beta.ko', dirname: '/d' });
    assert.deepEqual(db.modules.map((m) => m.name), ['gamma', 'beta']);
    // depmod also says the tree has no modules.builtin(.modinfo), as kmod 30 prints it.
    assert.deepEqual(db.warnings, [
      "ERROR: /d/modules.order:1 corrupted line misses '\\n'",
      'WARNING: could not open modules.builtin at /d: No such file or directory',
      'WARNING: could not open modules.builtin.modinfo at /d: No such file or directory',
    ]);
  });

  it('uncrelpath keeps the file name as written, cut to the modname length + ".ko"', () => {
    assert.equal(uncompressedRelpath('kernel/x/a-b.ko.xz', 'a_b'), 'kernel/x/a-b.ko');
    assert.equal(uncompressedRelpath('top.ko.zst', 'top'), 'top.ko');
    assert.equal(uncompressedRelpath('d/foo.bar.ko', 'foo'), 'd/foo.ba');
    assert.equal(uncompressedRelpath('/opt/ext/x.ko', 'x'), null);
  });
});

describe('symbols and dependencies', () => {
  it('the last exporter in array order owns a symbol, replacing the kernel entry', () => {
    const modules = [
      { path: 'k/a.ko', record: rec('a', { exports: [{ name: 'f', crc: 1 }] }) },
      { path: 'k/b.ko', record: rec('b', { exports: [{ name: 'f', crc: 2 }] }) },
      { path: 'k/u.ko', record: rec('u', { imports: [{ name: 'f', crc: 2, weak: false }] }) },
    ];
    const ks = parseSymvers('0x00000009\tf\tvmlinux\tEXPORT_SYMBOL\t\n', 'S');
    const db = buildDatabase({ modules, order: 'k/a.ko\nk/b.ko\nk/u.ko\n', kernelSymbols: ks, dirname: '/d' });
    const f = db.symbols.find((s) => s.name === 'f')!;
    assert.equal(db.modules[f.owner!]!.name, 'b');
    assert.deepEqual(db.kabi, []);
    assert.equal(td.decode(db.files.get('modules.dep')), 'k/a.ko:\nk/b.ko:\nk/u.ko: k/b.ko\n');
  });

  it('KABI findings: unknown and CRC mismatch, weak imports exempt, wording as depmod -e -E', () => {
    const modules = [{ path: 'k/u.ko', record: rec('u', { imports: [
      { name: 'g', crc: 5, weak: false },
      { name: 'missing', crc: 0, weak: false },
      { name: 'weakmissing', crc: 0, weak: true },
      { name: 'g', crc: 6, weak: true },
    ] }) }];
    const ks = parseSymvers('0x7 g vmlinux EXPORT_SYMBOL\n', 'S');
    const db = buildDatabase({ modules, kernelSymbols: ks, dirname: '/lib/modules/v' });
    assert.deepEqual(db.kabi.map((k) => [k.kind, k.message, k.foundCrc, k.provider]), [
      ['crc-mismatch', '/lib/modules/v/k/u.ko disagrees about version of symbol g', 7, 'vmlinux'],
      ['unknown', '/lib/modules/v/k/u.ko needs unknown symbol missing', undefined, undefined],
    ]);
    assert.deepEqual(buildDatabase({ modules }).kabi, [], 'without -E/-F depmod reports nothing');
  });

  it('moduleCrcCheck: without kernel symbols, imports are still checked against exporting modules', () => {
    const modules = [
      { path: 'k/p.ko', record: rec('p', { exports: [{ name: 'p_sym', crc: 1 }, { name: 'p_other', crc: 2 }] }) },
      { path: 'k/u.ko', record: rec('u', { imports: [
        { name: 'p_sym', crc: 9, weak: false },
        { name: 'p_other', crc: 2, weak: false },
        { name: 'p_sym', crc: 8, weak: true },
        { name: 'printk', crc: 3, weak: false },
      ] }) },
    ];
    const db = buildDatabase({ modules, dirname: '/lib/modules/v', moduleCrcCheck: true });
    assert.deepEqual(db.kabi.map((k) => [k.kind, k.symbol, k.expectedCrc, k.foundCrc, k.provider, k.message]), [
      ['crc-mismatch', 'p_sym', 9, 1, 'p', '/lib/modules/v/k/u.ko disagrees about version of symbol p_sym'],
    ]);
    assert.deepEqual(buildDatabase({ modules, dirname: '/lib/modules/v' }).kabi, [], 'off unless asked for');
    const withKernel = buildDatabase({ modules, dirname: '/lib/modules/v', moduleCrcCheck: true, kernelSymbols: parseSymvers('0x3 printk vmlinux EXPORT_SYMBOL\n', 'S') });
    assert.deepEqual(withKernel.kabi.map((k) => k.symbol), ['p_sym'], 'with symvers the regular check applies');
  });

  it('depmod_add_fake_syms: __this_module resolves once kernel symbols are loaded', () => {
    const modules = [{ path: 'k/u.ko', record: rec('u', { imports: [{ name: '__this_module', crc: 0, weak: false }] }) }];
    assert.deepEqual(buildDatabase({ modules, kernelSymbols: parseSymvers('', 'S') }).kabi, []);
  });

  it('modules.dep lists the transitive closure by topological index (users before providers)', () => {
    const modules = [
      { path: 'k/top.ko', record: rec('top', { imports: [{ name: 'low', crc: 0, weak: false }, { name: 'mid', crc: 0, weak: false }] }) },
      { path: 'k/mid.ko', record: rec('mid', { exports: [{ name: 'mid', crc: 0 }], imports: [{ name: 'low', crc: 0, weak: false }] }) },
      { path: 'k/low.ko', record: rec('low', { exports: [{ name: 'low', crc: 0 }] }) },
    ];
    const db = buildDatabase({ modules, order: 'k/top.ko\nk/mid.ko\nk/low.ko\n' });
    assert.equal(td.decode(db.files.get('modules.dep')), 'k/top.ko: k/mid.ko k/low.ko\nk/mid.ko: k/low.ko\nk/low.ko:\n');
  });
});

describe('cycles', () => {
  it('a cycle is reported in depmod wording and nothing is rendered', () => {
    const modules = [
      { path: 'k/a.ko', record: rec('a', { exports: [{ name: 'fa', crc: 0 }], imports: [{ name: 'fb', crc: 0, weak: false }] }) },
      { path: 'k/b.ko', record: rec('b', { exports: [{ name: 'fb', crc: 0 }], imports: [{ name: 'fa', crc: 0, weak: false }] }) },
    ];
    const db = buildDatabase({ modules, order: 'k/a.ko\nk/b.ko\n' });
    assert.deepEqual(db.cycles?.messages, ['Cycle detected: a -> b -> a', 'Found 2 modules in dependency cycles!']);
    assert.equal(db.files.size, 0);
  });

  it('kmod_list_remove_data makes the removed node\'s successor the head of the circular root list', () => {
    assert.deepEqual(removeFromCircularList(['a', 'b', 'c', 'd'], 'b'), ['c', 'd', 'a']);
    assert.deepEqual(removeFromCircularList(['a', 'b', 'c'], 'c'), ['a', 'b']);
    assert.deepEqual(removeFromCircularList(['a'], 'a'), []);
    assert.deepEqual(removeFromCircularList(['a', 'b'], 'x'), ['a', 'b']);
  });
});

describe('search and priorities', () => {
  const tree: Record<string, ListEntry[]> = {
    '/m': [
      { name: 'kernel', type: 'dir' },
      { name: 'updates', type: 'dir' },
      { name: 'build', type: 'link' },
      { name: 'extra', type: 'dir' },
    ],
    '/m/kernel': [{ name: 'foo.ko', type: 'file' }, { name: 'bar-x.ko.xz', type: 'file' }, { name: 'gz.ko.gz', type: 'file' }, { name: '.ko', type: 'file' }],
    '/m/updates': [{ name: 'foo.ko.zst', type: 'file' }, { name: 'sub', type: 'dir' }],
    '/m/updates/sub': [{ name: 'foo.ko', type: 'file' }],
    '/m/extra': [{ name: 'bar_x.ko', type: 'file' }],
  };
  const io = { listDir: (d: string) => tree[d] };
  const found = (text: string): Record<string, string | null> => {
    const { config } = parseDepmodConfig(text ? [{ path: 'c.conf', text }] : [], '6.1.0-1-amd64');
    return Object.fromEntries(searchModules({ dirname: '/m', config, io }).modules.map((m) => [m.name, m.relpath]));
  };

  it('default config: updates beats the rest, a later copy inside updates/ replaces an earlier one, ties keep the first', () => {
    assert.deepEqual(found(''), { foo: 'updates/sub/foo.ko', bar_x: 'kernel/bar-x.ko.xz' });
  });
  it('search order and built-in', () => {
    assert.deepEqual(found('search extra built-in updates'), { foo: 'kernel/foo.ko', bar_x: 'extra/bar_x.ko' });
  });
  it('override wins over search', () => {
    assert.deepEqual(found('override foo 6.1.0-.* updates\n'), { foo: 'updates/foo.ko.zst', bar_x: 'kernel/bar-x.ko.xz' });
    assert.deepEqual(found('override foo 5.* updates\n'), { foo: 'updates/sub/foo.ko', bar_x: 'kernel/bar-x.ko.xz' }, 'kernel regex did not match');
  });
  it('exclude skips any entry of that name', () => {
    assert.deepEqual(found('exclude updates sub\n'), { foo: 'kernel/foo.ko', bar_x: 'kernel/bar-x.ko.xz' });
  });
  it('suffixes, modnames, excluded names', () => {
    assert.ok(hasModuleSuffix('a.ko') && !hasModuleSuffix('.ko') && !hasModuleSuffix('a.ko.gz') && hasModuleSuffix('a.ko.zst'));
    assert.equal(kmodModname('x/foo-bar.baz.ko'), 'foo_bar');
    assert.ok(isExcludedEntry('source', []) && isExcludedEntry('..', []) && !isExcludedEntry('kernel', []));
  });
  it('external dirs get one priority each at the "external" search entry', () => {
    const { config } = parseDepmodConfig([{ path: 'c', text: 'search external updates\nexternal * /e1\nexternal * /e2\n' }], 'v');
    // list (newest first): updates=0, external: /e2=1, /e1=2
    assert.equal(existingModuleWins(config, '/m', '/e1/x', '/m/updates/x'), true);
    assert.equal(existingModuleWins(config, '/m', '/m/updates/x', '/e2/x'), false);
    assert.equal(existingModuleWins(config, '/m', '/e1/x', '/e2/x'), true);
  });
});

describe('config files', () => {
  it('name order across directories, earlier directory hides a name, .conf filter, dot files, directories', () => {
    const r = configFileOrder([
      { path: '/etc/depmod.d', entries: [{ name: 'b.conf', type: 'file' }, { name: 'readme', type: 'file' }, { name: '.x.conf', type: 'file' }] },
      { path: '/run/depmod.d', entries: undefined },
      { path: '/lib/depmod.d', entries: [{ name: 'b.conf', type: 'file' }, { name: 'a.conf', type: 'file' }, { name: 'd.conf', type: 'dir' }] },
    ]);
    assert.deepEqual(r.paths, ['/lib/depmod.d/a.conf', '/etc/depmod.d/b.conf']);
    assert.deepEqual(r.warnings.map((w) => w.level), ['info', 'error']);
  });
  it('line continuation, bad lines reported with the last physical line number', () => {
    assert.deepEqual(configLogicalLines('search a \\\n b\nx\\yz'), [{ text: 'search a  b', line: 2 }, { text: 'xyz', line: 3 }]);
    const { config, warnings } = parseDepmodConfig([{ path: 'f.conf', text: '# c\n\nsearch a \\\n b\n  #indented\noverride x\n' }], 'v');
    assert.deepEqual(config.searches, [{ kind: 'path', path: 'b' }, { kind: 'path', path: 'a' }]);
    assert.deepEqual(warnings.map((w) => w.message), ["f.conf:5: ignoring bad line starting with '#indented'", "f.conf:6: ignoring bad line starting with 'override'"]);
  });
  it('kernel version patterns are unanchored ERE; "*" matches all', () => {
    assert.ok(kernelMatches('*', 'x') && kernelMatches('6\\.1', '6.1.0-1-amd64') && kernelMatches('^6.1.0-[[:digit:]]+-amd64$', '6.1.0-56-amd64'));
    assert.ok(!kernelMatches('(', '6.1'));
  });
});

describe('builtin inputs and devname', () => {
  it('modules.builtin: non-letter lines skipped, base name to first dot', () => {
    const w: DepmodMessage[] = [];
    assert.deepEqual(builtinModnames(new TextEncoder().encode('kernel/a/foo-bar.ko\n/abs/x.ko\nkernel/noext\n'), w), ['foo_bar', 'noext\n']);
    assert.deepEqual(w, ['ERROR: Invalid modules.builtin line: /abs/x.ko\n']);
  });
  it('modules.builtin.modinfo: a key without "=" swallows the next record', () => {
    const bytes = new TextEncoder().encode('a.alias=x\0b.flag\0c.alias=skipped\0d.alias=y\0e.license=GPL\0f.alias=\0');
    assert.deepEqual(builtinAliases(bytes), [['x', 'a'], ['y', 'd']]);
  });
  it('devname: char/block major parsing as sscanf %u', () => {
    assert.deepEqual(scanMajorMinor('char-major-10-229', 'char-major-'), [10, 229]);
    assert.deepEqual(scanMajorMinor('char-major-10-*', 'char-major-'), null);
    assert.deepEqual(scanMajorMinor('block-major-8-1x', 'block-major-'), [8, 1]);
  });
  it('devname: header only before the first line, later major alias before devname wins, missing major reported', () => {
    const db = buildDatabase({ modules: [
      { path: 'k/a.ko', record: rec('a', { modinfo: [['alias', 'char-major-1-2'], ['alias', 'char-major-3-4'], ['alias', 'devname:fuse'], ['alias', 'char-major-5-6']] }) },
      { path: 'k/b.ko', record: rec('b', { modinfo: [['alias', 'devname:nomaj']] }) },
    ], order: 'k/a.ko\nk/b.ko\n' });
    const r = db;
    assert.equal(td.decode(r.files.get('modules.devname')), '# Device nodes to trigger on-demand module loading.\na fuse c3:4\n');
    assert.deepEqual(r.warnings.filter((w) => w.startsWith('ERROR: Module')), ["ERROR: Module 'b' has devname (nomaj) but lacks major and minor information. Ignoring."]);
    const empty = buildDatabase({ modules: [] });
    assert.equal(empty.files.get('modules.devname')!.length, 0);
    assert.equal(empty.files.get('modules.builtin.bin')!.length, 0, 'no modules.builtin: an empty file, as depmod leaves it');
    assert.equal(empty.files.size, 10);
  });
});
