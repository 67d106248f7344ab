// Fixture → parseModule round trip over every module of many random trees (all ELF classes, byte
// orders, CRC layouts, duplicate exports, versionOnly entries, weak and unresolved imports).
// test/module/parse.test.ts pins the reader's rules on hand-written modules; this one checks the
// fixture writer and the reader agree on the whole range of shapes randomTree draws.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseModule } from '../../src/module/parse.ts';
import { buildModuleElf, kmodExports, kmodImports } from './fixture-elf.ts';
import { randomTree } from './random-tree.ts';

const COMBOS = [
  { bits: 32, endian: 'le' },
  { bits: 32, endian: 'be' },
  { bits: 64, endian: 'le' },
  { bits: 64, endian: 'be' },
] as const;

test('every random-tree module parses back to its description in all four ELF classes', () => {
  let n = 0;
  const styles = new Set<string>();
  for (let seed = 1; seed <= 30; seed++) {
    for (const { module, path } of randomTree(seed).modules) {
      styles.add(module.crcStyle ?? 'kcrctab');
      for (const combo of COMBOS) {
        const rec = parseModule(buildModuleElf(module, combo), path);
        const what = `seed ${seed} ${path} ELF${combo.bits}${combo.endian}`;
        const file = path.split('/').pop() ?? '';
        assert.equal(rec.name, file.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_'), what);
        assert.deepEqual(rec.modinfo, module.modinfo ?? [], what);
        assert.deepEqual(rec.exports, kmodExports(module), what);
        assert.deepEqual(rec.imports, kmodImports(module), what);
        n++;
      }
    }
  }
  assert.deepEqual([...styles].sort(), ['crc-absolute', 'crc-section', 'kcrctab']);
  assert.ok(n > 1000, `only ${n} modules`);
});
