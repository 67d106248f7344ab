// The database state an update patches (src/depmod/db-state.ts) against the references: buildState
// against computeDatabase (the code every byte-identity test pins to kmod), and updateState after
// random adds and drops against buildState of the resulting set — order, owners, dependencies,
// findings and every line must be the same; `lineChanged` must name every line that differs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeDatabase, type KabiBasis } from '../../src/depmod/compute.ts';
import { buildState, findingsOf, kabiFindings, listOf, updateState, type DbState } from '../../src/depmod/db-state.ts';
import { ModuleSet } from '../../src/depmod/module-set.ts';
import type { ModuleRecord } from '../../src/module/record.ts';
import { mulberry32 } from '../support/random-tree.ts';


const FP = { size: 1n, mtimeNs: 1n, ctimeNs: 1n, ino: 1n };
const KERNEL = ['printk', 'kmalloc', 'kfree', '.memcpy_k'];

/**
 * A module record: exports and imports of symbols "lvL_K". Without cycles, a module of level L exports
 * level-L symbols and imports lower levels only, so dependencies exist but never loop; with cycles,
 * any level. Some imports are kernel symbols, weak, or ppc64-dotted.
 */
function randomRecord(r: () => number, name: string, cycles: boolean): ModuleRecord {
  const level = Math.floor(r() * 6);
  const exports = [];
  const imports = [];
  const ne = Math.floor(r() * 3);
  for (let i = 0; i < ne; i++) exports.push({ name: `lv${level}_${Math.floor(r() * 4)}`, crc: Math.floor(r() * 3) });
  const ni = Math.floor(r() * 5);
  for (let i = 0; i < ni; i++) {
    const k = r();
    const lv = cycles ? Math.floor(r() * 6) : level === 0 ? -1 : Math.floor(r() * level);
    const sym = k < 0.2 || lv < 0 ? KERNEL[Math.floor(r() * KERNEL.length)]! : `${k < 0.25 ? '.' : ''}lv${lv}_${Math.floor(r() * 4)}`;
    imports.push({ name: sym, crc: Math.floor(r() * 3), weak: r() < 0.1 });
  }
  return { name, modinfo: [['alias', `a-${name}`]], exports, imports, ...(r() < 0.05 ? { zstdUnsized: true as const } : {}) };
}

function compareWithFull(set: ModuleSet, st: DbState, basis: KabiBasis, unsized: boolean, label: string): void {
  const ref = buildState(set, { kabi: basis, unsizedZstdUnreadable: unsized });
  assert.deepEqual([...st.order], [...ref.order], `${label}: order`);
  for (const s of set.liveSlots()) {
    assert.equal(st.idxOf[s], ref.idxOf[s], `${label}: idx of ${s}`);
    assert.deepEqual([...listOf(st.deps, s)], [...listOf(ref.deps, s)], `${label}: deps of ${set.name(s)}`);
    assert.deepEqual(findingsOf(st, s), findingsOf(ref, s), `${label}: findings of ${set.name(s)}`);
    if (ref.cycles === null) assert.deepEqual([...listOf(st.lines, s)], [...listOf(ref.lines, s)], `${label}: line of ${set.name(s)}`);
  }
  for (let id = 0; id < Math.min(st.ownerSlot.length, ref.ownerSlot.length); id++) {
    assert.equal(st.ownerSlot[id], ref.ownerSlot[id], `${label}: owner of ${set.pool.name(id)}`);
    assert.equal(st.ownerCrc[id], ref.ownerCrc[id], `${label}: owner CRC of ${set.pool.name(id)}`);
  }
  assert.equal(st.cycles === null, ref.cycles === null, `${label}: cycles`);
  if (ref.cycles !== null) assert.deepEqual(st.cycles!.messages, ref.cycles.messages, `${label}: cycle report`);
}

describe('db-state', () => {
  it('buildState equals computeDatabase (order, lines, findings, cycles) on 300 random sets', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = mulberry32(seed);
      const set = new ModuleSet();
      const n = 1 + Math.floor(r() * 30);
      for (let i = 0; i < n; i++) set.add(`kernel/m${i}.ko`, FP, randomRecord(r, `m${i}`, r() < 0.3), r() < 0.5 ? i - n : 1);
      set.setKernelSymbols('symvers', new Map(KERNEL.map((k, i) => [k.replace(/^\./, ''), i % 2])));
      const basis: KabiBasis = (['symvers', 'modules', 'none', 'system-map'] as const)[seed % 4]!;
      const st = buildState(set, { kabi: basis, unsizedZstdUnreadable: seed % 3 === 0 });
      const db = computeDatabase(set, { kabi: basis, dirname: '/d', unsizedZstdUnreadable: seed % 3 === 0 });
      assert.deepEqual([...st.order], [...db.order], `seed ${seed}: order`);
      assert.equal(st.cycles === null, db.cycles === null, `seed ${seed}: cycles`);
      if (db.cycles !== null) assert.deepEqual(st.cycles!.messages, db.cycles.messages);
      else {
        for (let i = 0; i < db.order.length; i++) {
          const line = [...db.allList.subarray(db.allStart[i]!, db.allStart[i + 1]!)].map((x) => db.order[x]!);
          assert.deepEqual([...listOf(st.lines, db.order[i]!)], line, `seed ${seed}: line ${i}`);
        }
      }
      assert.deepEqual(kabiFindings(set, st, '/d'), db.kabi, `seed ${seed}: findings`);
    }
  });

  it('updateState after random adds and drops equals buildState of the result (500 sequences of 6 steps)', () => {
    for (let seed = 1; seed <= 500; seed++) {
      const r = mulberry32(seed * 7919);
      const cycles = seed % 10 === 0;
      const set = new ModuleSet();
      set.setKernelSymbols('symvers', new Map(KERNEL.map((k, i) => [k.replace(/^\./, ''), i % 2])));
      const basis: KabiBasis = (['symvers', 'modules', 'none'] as const)[seed % 3]!;
      const unsized = seed % 2 === 0;
      const n = Math.floor(r() * 25);
      let next = 0;
      const addOne = (): number => {
        const i = next++;
        return set.add(`kernel/m${i}.ko`, FP, randomRecord(r, `m${i}`, cycles), r() < 0.3 ? -Math.floor(r() * 50) - 1 : 1);
      };
      for (let i = 0; i < n; i++) addOne();
      let st = buildState(set, { kabi: basis, unsizedZstdUnreadable: unsized });
      for (let step = 0; step < 6; step++) {
        const dropped: number[] = [];
        for (const s of set.liveSlots()) if (r() < 0.15) dropped.push(s);
        for (const s of dropped) set.drop(s);
        const added: number[] = [];
        const k = Math.floor(r() * 4);
        for (let i = 0; i < k; i++) added.push(addOne());
        const before = st;
        const { state, delta } = updateState(set, st, added, dropped, { kabi: basis, unsizedZstdUnreadable: unsized });
        const label = `seed ${seed} step ${step}`;
        compareWithFull(set, state, basis, unsized, label);
        if (state.cycles === null && before.cycles === null) {
          for (const s of set.liveSlots()) {
            const was = s < before.idxOf.length && before.idxOf[s]! >= 0 ? [...listOf(before.lines, s)] : undefined;
            if (was === undefined || JSON.stringify(was) !== JSON.stringify([...listOf(state.lines, s)])) assert.ok(delta.lineChanged.has(s), `${label}: line of ${set.name(s)} changed but is not reported`);
          }
        }
        st = state;
      }
    }
  });
});
