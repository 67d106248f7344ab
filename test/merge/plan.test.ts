// decidePatch (src/merge/plan.ts) without a file system: a module set, what was observed, the
// depmod.d configuration in, the plan out. depmod's same-name rules come from kmod's
// depmod_module_is_higher_priority (search order, then the first found).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDepmodConfig, type DepmodConfig } from '../../src/depmod/config.ts';
import { ModuleSet, type Fingerprint } from '../../src/depmod/module-set.ts';
import { decidePatch, formatPlan, type CachedTree, type Observed } from '../../src/merge/plan.ts';
import { MODULE_SUFFIXES } from '../../src/module/suffixes.ts';

const DIR = '/lib/modules/6.1.0-1-amd64';
const fp = (n: number): Fingerprint => ({ size: BigInt(n), mtimeNs: BigInt(n), ctimeNs: BigInt(n), ino: BigInt(n) });
const record = (name: string) => ({ name, modinfo: [], exports: [], imports: [] });

/** Debian's depmod.d: `search updates built-in`, parsed as kmod parses it; plus an exclude. */
const CONFIG: DepmodConfig = parseDepmodConfig([{ path: '/etc/depmod.d/x.conf', text: 'search updates built-in\nexclude skipme.ko\n' }], '6.1.0-1-amd64', { exclude: true }).config;

function tree(paths: string[], shadowed: Array<[string, string]> = []): CachedTree {
  const set = new ModuleSet();
  paths.forEach((p, i) => set.add(p, fp(i + 1), record(p), 1));
  set.sortedNames();
  // Walk order: as if every directory listed its entries by name.
  return { set, config: CONFIG, shadowed, dirname: DIR, walkOrder: (a, b) => (a < b ? -1 : a > b ? 1 : 0) };
}

function observed(files: Record<string, Fingerprint | null>, extra: Partial<Observed> = {}): Observed {
  return {
    relisted: new Map(),
    files: new Map(Object.entries(files).map(([k, f]) => [k, { abs: `${DIR}/${k}`, fp: f, walked: true }])),
    goneDirs: [],
    ...extra,
  };
}

const BASE = ['kernel/a.ko', 'kernel/b.ko', 'kernel/c.ko', ...Array.from({ length: 17 }, (_, i) => `kernel/m${i}.ko`)];

describe('decidePatch', () => {
  it('nothing changed is the empty plan: a no-op', () => {
    const t = tree(BASE);
    const p = decidePatch(observed({ 'kernel/a.ko': fp(1) }), t, MODULE_SUFFIXES);
    assert.deepEqual({ mode: p.mode, parse: p.parse, drop: p.drop }, { mode: 'noop', parse: [], drop: [] });
  });

  it('a new file is parsed, a changed one replaced, a gone one dropped', () => {
    const t = tree(BASE);
    const p = decidePatch(observed({ 'updates/new.ko': fp(50), 'kernel/b.ko': fp(99), 'kernel/c.ko': null, 'kernel/readme.txt': fp(7) }), t, MODULE_SUFFIXES);
    assert.equal(p.mode, 'patch');
    assert.deepEqual(p.parse.map((x) => x.key).sort(), ['kernel/b.ko', 'updates/new.ko']);
    assert.deepEqual(p.dropPaths, ['kernel/b.ko', 'kernel/c.ko']);
    assert.match(formatPlan('6.1.0-1-amd64', p), /^6\.1\.0-1-amd64: patch \(2 to parse, 2 to drop\)\n {2}parse kernel\/b\.ko\n {2}parse updates\/new\.ko\n {2}drop {2}kernel\/b\.ko\n {2}drop {2}kernel\/c\.ko\n/);
  });

  it('a same-named file in updates/ wins over kernel/ (search order); the loser is remembered', () => {
    const t = tree(BASE);
    const p = decidePatch(observed({ 'updates/dkms/a.ko.xz': fp(60) }), t, MODULE_SUFFIXES);
    assert.deepEqual(p.parse.map((x) => x.key), ['updates/dkms/a.ko.xz']);
    assert.deepEqual(p.dropPaths, ['kernel/a.ko']);
    assert.deepEqual(p.shadowed, [['kernel/a.ko', 'a']]);
  });

  it('a same-named file of equal priority loses to the one found first; when the winner goes, it takes over', () => {
    const t = tree(BASE);
    const lost = decidePatch(observed({ 'kernel/zz/a.ko': fp(61) }), t, MODULE_SUFFIXES);
    assert.equal(lost.mode, 'noop');
    assert.deepEqual(lost.shadowed, [['kernel/zz/a.ko', 'a']]);
    const t2 = tree(BASE, [['kernel/zz/a.ko', 'a']]);
    const p = decidePatch(observed({ 'kernel/a.ko': null, 'kernel/zz/a.ko': fp(61) }), t2, MODULE_SUFFIXES);
    assert.deepEqual(p.parse.map((x) => x.key), ['kernel/zz/a.ko']);
    assert.deepEqual(p.dropPaths, ['kernel/a.ko']);
    assert.deepEqual(p.shadowed, []);
  });

  it('files depmod does not walk or does not take are not modules: excluded names, other suffixes, unwalked', () => {
    const t = tree(BASE);
    const files = observed({ 'kernel/skipme.ko': fp(70), 'kernel/x.ko.bak': fp(71) });
    (files.files as Map<string, { abs: string; fp: Fingerprint | null; walked: boolean }>).set('kernel/hidden.ko', { abs: `${DIR}/kernel/hidden.ko`, fp: fp(72), walked: false });
    assert.equal(decidePatch(files, t, MODULE_SUFFIXES).mode, 'noop');
  });

  it('what cannot be decided locally, or a change of a quarter of the modules, is a recompute', () => {
    const t = tree(BASE);
    assert.equal(decidePatch(observed({}, { unsure: 'x: unsupported file type' }), t, MODULE_SUFFIXES).mode, 'recompute');
    const big = decidePatch(observed(Object.fromEntries(BASE.slice(0, 6).map((k) => [k, null]))), t, MODULE_SUFFIXES);
    assert.equal(big.mode, 'recompute');
    assert.match(big.reason, /6 of 20 modules changed/);
  });
});
