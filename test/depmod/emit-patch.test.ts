// Patching the database files (src/depmod/emit-patch.ts) against writing them whole (emit.ts, which
// the byte-identity suites pin to kmod): after random adds and drops, every patched file and its
// layout must equal what the writers produce from scratch, for kmod 30's and kmod 34's formats.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildState, databaseOf, updateState } from '../../src/depmod/db-state.ts';
import { patchDatabase } from '../../src/depmod/emit-patch.ts';
import { emitDatabase } from '../../src/depmod/emit.ts';
import { kmodBehaviour } from '../../src/depmod/kmod-version.ts';
import { ModuleSet } from '../../src/depmod/module-set.ts';
import type { ModuleRecord } from '../../src/module/record.ts';
import { mulberry32 } from '../support/random-tree.ts';


const FP = { size: 1n, mtimeNs: 1n, ctimeNs: 1n, ino: 1n };
const KERNEL = ['printk', 'kmalloc', 'kfree'];
const ALIASES = ['pci:v00008086d*', 'pci:v00008086d00001234sv*', 'usb:v1D6Bp*', 'acpi*:PNP0A03:*', 'of:N*T*Cfoo', 'fs-ext4', 'char-major-10-200', 'devname:fuse', 'block-major-8-*', 'net-pf-10', 'x[ab]y', 'bad[bracket', 'a-b_c'];

function randomRecord(r: () => number, name: string): ModuleRecord {
  const level = Math.floor(r() * 5);
  const modinfo: Array<[string, string]> = [];
  const na = Math.floor(r() * 4);
  for (let i = 0; i < na; i++) modinfo.push(['alias', r() < 0.6 ? ALIASES[Math.floor(r() * ALIASES.length)]! : `${name}-alias${Math.floor(r() * 3)}`]);
  if (r() < 0.1) modinfo.push(['softdep', `pre: ${name}x`]);
  if (r() < 0.1) modinfo.push(['weakdep', `${name}w`]);
  const exports = [];
  for (let i = 0, ne = Math.floor(r() * 3); i < ne; i++) exports.push({ name: `lv${level}_${Math.floor(r() * 4)}`, crc: Math.floor(r() * 2) });
  const imports = [];
  for (let i = 0, ni = Math.floor(r() * 4); i < ni; i++) {
    const lv = level === 0 ? -1 : Math.floor(r() * level);
    imports.push({ name: lv < 0 || r() < 0.2 ? KERNEL[Math.floor(r() * 3)]! : `lv${lv}_${Math.floor(r() * 4)}`, crc: Math.floor(r() * 2), weak: false });
  }
  return { name, modinfo, exports, imports, ...(r() < 0.05 ? { zstdUnsized: true as const } : {}) };
}

describe('patchDatabase', () => {
  for (const version of ['30', '34']) {
    it(`every file equals a full write after random adds and drops (kmod ${version} format, 300 sequences of 5 steps)`, () => {
      const behaviour = kmodBehaviour(version)!;
      const opts = { kabi: 'symvers' as const, unsizedZstdUnreadable: behaviour.zstdNeedsSizedFrame };
      let patchedSomething = 0;
      for (let seed = 1; seed <= 300; seed++) {
        const r = mulberry32(seed * 104729);
        const set = new ModuleSet();
        set.setKernelSymbols('symvers', new Map(KERNEL.map((k, i) => [k, i])));
        let next = 0;
        const addOne = (): number => {
          const i = next++;
          const dir = r() < 0.3 ? 'updates/' : 'kernel/drivers/';
          return set.add(`${dir}m${i}.ko`, FP, randomRecord(r, `m${i}`), r() < 0.3 ? -Math.floor(r() * 40) - 1 : 1);
        };
        for (let i = 0, n = Math.floor(r() * 20); i < n; i++) addOne();
        let state = buildState(set, opts);
        let out = emitDatabase({ set, db: databaseOf(set, state), behaviour, dirname: '/d' });
        let files = out.files;
        let layout = out.layout;
        for (let step = 0; step < 5; step++) {
          const dropped = set.liveSlots().filter(() => r() < 0.15);
          for (const s of dropped) set.drop(s);
          const added: number[] = [];
          for (let i = 0, k = Math.floor(r() * 4); i < k; i++) added.push(addOne());
          const up = updateState(set, state, added, dropped, opts);
          const patched = patchDatabase({ set, prev: state, next: up.state, delta: up.delta, added, dropped, behaviour, old: files, layout });
          const full = emitDatabase({ set, db: databaseOf(set, buildState(set, opts)), behaviour, dirname: '/d' });
          for (const [name, bytes] of full.files) {
            if (name.startsWith('modules.builtin')) continue;
            const got = patched.files.get(name);
            assert.ok(got !== undefined, `seed ${seed} step ${step}: ${name} not patched`);
            assert.equal(Buffer.from(got).toString('latin1'), Buffer.from(bytes).toString('latin1'), `seed ${seed} step ${step}: ${name}`);
            assert.deepEqual(patched.layout.get(name), full.layout.get(name), `seed ${seed} step ${step}: layout of ${name}`);
          }
          patchedSomething += added.length + dropped.length;
          state = up.state;
          files = patched.files;
          layout = patched.layout;
        }
      }
      assert.ok(patchedSomething > 500, `only ${patchedSomething} modules added or dropped`);
    });
  }
});
