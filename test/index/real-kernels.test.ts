// Every binary index Debian's depmod wrote for two real kernels, rebuilt from the text files of
// the same run and compared byte for byte; then both files read back and compared with the text.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { normalizeAlias } from '../../src/depmod/alias.ts';
import { diffIndexes, readIndex, type IndexTrie, type IndexValue } from '../../src/index/trie.ts';
import { oracleOutput, realKernel, realKernelSkipReason, type Flavour } from '../support/kernels.ts';
import {
  aliasBinFromText,
  builtinAliasBinFromModinfo,
  builtinBinFromText,
  depBinFromText,
  moduleIndex,
  pathToModname,
  symbolsBinFromText,
} from './oracle-text.ts';

const skip = realKernelSkipReason();

/**
 * The map the text says an index holds, grouped by key independently of IndexTrie: values in
 * priority order, and among equal priorities the later line first (kmod index_add_value).
 */
function expectedFromText(entries: [string, string, number][]): Map<string, IndexValue[]> {
  const byKey = new Map<string, { priority: number; value: string; line: number }[]>();
  entries.forEach(([key, value, priority], line) => {
    const list = byKey.get(key) ?? [];
    list.push({ priority, value, line });
    byKey.set(key, list);
  });
  const out = new Map<string, IndexValue[]>();
  for (const [key, list] of byKey) {
    list.sort((x, y) => x.priority - y.priority || y.line - x.line);
    out.set(key, list.map(({ priority, value }) => ({ priority, value })));
  }
  return out;
}

function textLines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

function assertSameIndex(name: string, ours: Uint8Array, oracle: Uint8Array, expected: Map<string, IndexValue[]>): void {
  const oracleMap = readIndex(oracle, `oracle ${name}`);
  const ourMap = readIndex(ours, `our ${name}`);
  assert.deepEqual(diffIndexes(oracleMap, ourMap).slice(0, 20), [], `${name}: oracle vs ours`);
  assert.deepEqual(diffIndexes(expected, oracleMap).slice(0, 20), [], `${name}: text vs oracle`);
  assert.equal(ours.length, oracle.length, `${name}: size`);
  assert.ok(Buffer.from(ours).equals(Buffer.from(oracle)), `${name}: bytes differ`);
}

for (const flavour of ['cloud-amd64', 'amd64'] as Flavour[]) {
  describe(`binary indexes of ${flavour} equal Debian depmod's`, { skip }, () => {
    const k = realKernel(flavour);
    const dir = oracleOutput(k, 'none');
    const text = (f: string): string => readFileSync(join(dir, f), 'utf8');
    const bin = (f: string): Uint8Array => new Uint8Array(readFileSync(join(dir, f)));
    const dep = text('modules.dep');
    const idx = moduleIndex(dep);

    it('modules.dep.bin', () => {
      const entries = textLines(dep).map((l, i): [string, string, number] => [pathToModname(l.slice(0, l.indexOf(':'))), l, i]);
      assertSameIndex('modules.dep.bin', depBinFromText(dep).serialize(), bin('modules.dep.bin'), expectedFromText(entries));
    });

    it('modules.symbols.bin', () => {
      const symbols = text('modules.symbols');
      const entries = textLines(symbols).map((l): [string, string, number] => {
        const [, key, mod] = l.split(' ') as [string, string, string];
        return [key, mod, idx.get(mod)!];
      });
      assert.ok(entries.length > 5000);
      const ours = symbolsBinFromText(symbols, idx).serialize();
      assertSameIndex('modules.symbols.bin', ours, bin('modules.symbols.bin'), expectedFromText(entries));
    });

    it('modules.alias.bin (with alias_normalize)', (t) => {
      const aliases = text('modules.alias');
      const entries: [string, string, number][] = [];
      for (const l of textLines(aliases)) {
        const sp = l.lastIndexOf(' ');
        const key = normalizeAlias(l.slice('alias '.length, sp));
        if (key !== null) entries.push([key, l.slice(sp + 1), idx.get(l.slice(sp + 1))!]);
      }
      const t0 = performance.now();
      const { trie, skipped } = aliasBinFromText(aliases, idx);
      const ours = trie.serialize();
      const ms = performance.now() - t0;
      t.diagnostic(`${entries.length} aliases (${skipped.length} skipped) normalised, inserted and serialized in ${ms.toFixed(1)} ms`);
      assertSameIndex('modules.alias.bin', ours, bin('modules.alias.bin'), expectedFromText(entries));
    });

    it('modules.builtin.bin', () => {
      const builtin = text('modules.builtin');
      const entries = textLines(builtin).map((l): [string, string, number] => [pathToModname(l), '', 0]);
      assertSameIndex('modules.builtin.bin', builtinBinFromText(builtin).serialize(), bin('modules.builtin.bin'), expectedFromText(entries));
    });

    it('modules.builtin.alias.bin', () => {
      const modinfo = bin('modules.builtin.modinfo');
      // Plain reading of the records (all well-formed in a real kernel): "mod.alias=value".
      const entries: [string, string, number][] = [];
      for (const rec of new TextDecoder().decode(modinfo).split('\0')) {
        const m = /^([^.]+)\.alias=(.+)$/s.exec(rec);
        const key = m ? normalizeAlias(m[2]!) : null;
        if (m && key !== null) entries.push([key, m[1]!, 0]);
      }
      assert.ok(entries.length > 50);
      const ours: IndexTrie = builtinAliasBinFromModinfo(modinfo);
      assertSameIndex('modules.builtin.alias.bin', ours.serialize(), bin('modules.builtin.alias.bin'), expectedFromText(entries));
    });
  });
}
