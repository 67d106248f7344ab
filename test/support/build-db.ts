// Test helper: the pure pipeline (module set → compute → emit) on records given in memory, with the
// database described as plain values (module names in array order, symbol owners) for assertions.
import type { ComputedDatabase } from '../../src/depmod/compute.ts';
import type { KernelSymbols } from '../../src/depmod/kernel-symbols.ts';
import type { KmodBehaviour } from '../../src/depmod/kmod-version.ts';
import type { ModuleSet } from '../../src/depmod/module-set.ts';
import { rebuildOutputs } from '../../src/depmod/rebuild.ts';
import { kmodModname } from '../../src/depmod/search.ts';
import type { ModuleRecord } from '../../src/module/record.ts';

export interface BuildDbInput {
  modules: ReadonlyArray<{ path: string; record: ModuleRecord }>;
  order?: string;
  kernelSymbols?: KernelSymbols;
  dirname?: string;
  moduleCrcCheck?: boolean;
  behaviour?: KmodBehaviour;
  builtin?: Uint8Array;
  builtinModinfo?: Uint8Array;
}

export interface DescribedDb {
  set: ModuleSet;
  db: ComputedDatabase;
  /** Modules in array order. */
  modules: Array<{ name: string; path: string; idx: number }>;
  /** Symbols in kmod's hash iteration order; owner is a module idx, null for the kernel's own. */
  symbols: Array<{ name: string; owner: number | null }>;
  kabi: ComputedDatabase['kabi'];
  cycles: ComputedDatabase['cycles'];
  warnings: string[];
  files: Map<string, Uint8Array>;
}

export function buildDb(input: BuildDbInput): DescribedDb {
  const dirname = input.dirname ?? '/lib/modules/test';
  const found = input.modules.map((m) => ({
    name: kmodModname(m.path),
    abspath: m.path.startsWith('/') ? m.path : `${dirname}/${m.path}`,
    relpath: m.path.startsWith('/') ? null : m.path,
  }));
  const records = new Map(found.map((f, i) => [f.abspath, input.modules[i]!.record]));
  const r = rebuildOutputs({
    dirname,
    modules: found,
    records,
    order: input.order,
    kernelSymbols: input.kernelSymbols,
    moduleCrcCheck: input.moduleCrcCheck,
    builtin: input.builtin,
    builtinModinfo: input.builtinModinfo,
    ...(input.behaviour ? { behaviour: input.behaviour } : {}),
  });
  const { set, db } = r;
  const modules = Array.from(db.order, (s, idx) => ({ name: set.name(s), path: set.path(s), idx }));
  const symbols = Array.from(db.symbolOrder, (id) => ({ name: set.pool.name(id), owner: db.owner[id]! >= 0 ? db.owner[id]! : null }));
  return { set, db, modules, symbols, kabi: db.kabi, cycles: db.cycles, warnings: [...db.warnings, ...r.warnings], files: r.files };
}
