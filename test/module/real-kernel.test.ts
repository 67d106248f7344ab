// Issue 2's core check: every module of Debian's 6.1 cloud-amd64 kernel, parsed plain, .ko.xz and
// .ko.zst, against what Debian's depmod (kmod 30) wrote for that tree and against the kernel
// build's own Module.symvers. Expectations come from those files only, never from our output.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isModulePath, moduleSuffix } from '../../src/module/decompress.ts';
import { parseModuleFile } from '../../src/module/parse.ts';
import type { ModuleRecord } from '../../src/module/record.ts';
import { oracleOutput, realKernel, realKernelSkipReason, recompressedKernel, type RealKernel } from '../support/kernels.ts';

const skip = realKernelSkipReason();

function listModules(moddir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(moddir, rel), { withFileTypes: true })) {
      const p = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && isModulePath(p)) out.push(p);
    }
  };
  walk('');
  return out;
}

const stripSuffix = (p: string): string => p.slice(0, p.length - (moduleSuffix(p)?.length ?? 0));

/** Records keyed by path without the compression suffix (`kernel/lib/libcrc32c`). */
async function parseTree(k: RealKernel): Promise<Map<string, ModuleRecord>> {
  const files = listModules(k.moddir);
  const out = new Map<string, ModuleRecord>();
  const width = 8;
  for (let i = 0; i < files.length; i += width) {
    const batch = files.slice(i, i + width);
    const recs = await Promise.all(batch.map(async (f) => parseModuleFile(await readFile(join(k.moddir, f)), f)));
    batch.forEach((f, j) => out.set(stripSuffix(f), recs[j] as ModuleRecord));
  }
  return out;
}

interface Symvers {
  crc: Map<string, number>;
  owner: Map<string, string>; // 'vmlinux' or module path like 'lib/libcrc32c'
}

function readSymvers(path: string): Symvers {
  const crc = new Map<string, number>();
  const owner = new Map<string, string>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line === '') continue;
    const [c, name, mod] = line.split('\t');
    assert.ok(c !== undefined && name !== undefined && mod !== undefined, `bad Module.symvers line ${line}`);
    crc.set(name, Number(c));
    owner.set(name, mod);
  }
  return { crc, owner };
}

test('cloud-amd64: every module parses identically plain, .ko.xz and .ko.zst, and matches depmod and Module.symvers', { skip }, async (t) => {
  const k = realKernel('cloud-amd64');
  const oracle = oracleOutput(k, 'none');
  const symvers = readSymvers(k.symvers);

  const t0 = performance.now();
  const plain = await parseTree(k);
  const tPlain = performance.now() - t0;
  assert.equal(plain.size, 1121, 'module count of 6.1 cloud-amd64 (spec/depmod.md)');

  for (const comp of ['xz', 'zst'] as const) {
    const t1 = performance.now();
    const other = await parseTree(recompressedKernel(k, comp));
    t.diagnostic(`${comp}: ${other.size} modules parsed in ${(performance.now() - t1).toFixed(0)} ms`);
    assert.deepEqual([...other.keys()].sort(), [...plain.keys()].sort());
    let differing = 0;
    for (const [p, rec] of plain) if (!isDeepStrictEqualRecord(rec, other.get(p))) differing++;
    assert.equal(differing, 0, `${comp}: records differing from the plain .ko ones`);
  }

  // Module array order, as depmod used it: the line order of modules.dep.
  const order = readFileSync(join(oracle, 'modules.dep'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => stripSuffix(l.slice(0, l.indexOf(':'))));
  assert.equal(order.length, plain.size);
  const inOrder = order.map((p) => {
    const r = plain.get(p);
    assert.ok(r, `modules.dep lists ${p} but the tree walk did not find it`);
    return r;
  });

  // modules.alias and modules.softdep, rebuilt from the records in depmod's module order (output_aliases/output_softdeps).
  let aliases = 0;
  let alias = '# Aliases extracted from modules themselves.\n';
  let softdep = '# Soft dependencies extracted from modules themselves.\n';
  for (const r of inOrder) {
    for (const [key, value] of r.modinfo) {
      if (key === 'alias') {
        alias += `alias ${value} ${r.name}\n`;
        aliases++;
      } else if (key === 'softdep') softdep += `softdep ${r.name} ${value}\n`;
    }
  }
  assert.equal(alias, readFileSync(join(oracle, 'modules.alias'), 'latin1'), 'modules.alias');
  assert.equal(softdep, readFileSync(join(oracle, 'modules.softdep'), 'latin1'), 'modules.softdep');

  // Exports: the (symbol, module) pairs of modules.symbols; CRCs: Module.symvers of the same build.
  const oracleSymbols = new Set(
    readFileSync(join(oracle, 'modules.symbols'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('alias symbol:'))
      .map((l) => l.slice('alias symbol:'.length)),
  );
  const ours = new Set<string>();
  const exporter = new Map<string, ModuleRecord>();
  let exportCrcMismatch = 0;
  let exportsCount = 0;
  for (const [p, r] of plain) {
    for (const e of r.exports) {
      exportsCount++;
      ours.add(`${e.name} ${r.name}`);
      exporter.set(e.name, r);
      const want = symvers.crc.get(e.name);
      if (want !== e.crc || symvers.owner.get(e.name) !== p.replace(/^kernel\//, '')) exportCrcMismatch++;
    }
  }
  const missing = [...oracleSymbols].filter((s) => !ours.has(s));
  const extra = [...ours].filter((s) => !oracleSymbols.has(s));
  assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, 'exports vs modules.symbols');
  assert.equal(exportCrcMismatch, 0, 'export CRCs differing from Module.symvers');

  // Imports: the CRC each module expects equals its exporter's (vmlinux: Module.symvers; a module: its export CRC).
  let importsWithCrc = 0;
  let importMismatch = 0;
  let unresolved = 0;
  let weak = 0;
  for (const r of plain.values()) {
    for (const i of r.imports) {
      if (i.weak) weak++;
      const mod = exporter.get(i.name);
      const want = mod !== undefined ? mod.exports.find((e) => e.name === i.name)?.crc : symvers.owner.get(i.name) === 'vmlinux' ? symvers.crc.get(i.name) : undefined;
      if (want === undefined) {
        unresolved++;
        continue;
      }
      importsWithCrc++;
      if (i.crc !== want) importMismatch++;
    }
  }
  t.diagnostic(
    `plain: ${plain.size} modules in ${tPlain.toFixed(0)} ms; exports ${exportsCount} (modules.symbols ${oracleSymbols.size}); ` +
      `aliases ${aliases}; imports with CRC checked ${importsWithCrc} (weak ${weak}, no exporter ${unresolved})`,
  );
  assert.equal(importMismatch, 0, 'import CRCs differing from the exporter');
  assert.ok(importsWithCrc > 10_000, `only ${importsWithCrc} imports checked`);
  assert.equal(unresolved, 0, 'imports whose symbol neither a module nor vmlinux exports');
});

function isDeepStrictEqualRecord(a: ModuleRecord, b: ModuleRecord | undefined): boolean {
  try {
    assert.deepStrictEqual(a, b);
    return true;
  } catch {
    return false;
  }
}
