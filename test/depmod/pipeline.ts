// Test helper: depmod-tx's full rebuild on a tree, with the file-system side done the simplest way
// (sequential reads, no workers). Shared by the real-tree and synthetic differential tests.
import { readFileSync, statSync } from 'node:fs';
import { listDirInReaddirOrder, statTypeFollowingLinks, listDirIfPossible } from '../../src/io/tree.ts';
import { parseModuleFile } from '../../src/module/parse.ts';
import type { ModuleRecord } from '../../src/module/record.ts';
import { configFileOrder, DEFAULT_CONFIG_DIRS, type ConfigListing } from '../../src/depmod/config.ts';
import type { KernelSymbols } from '../../src/depmod/kernel-symbols.ts';
import { planRebuild, rebuildOutputs } from '../../src/depmod/rebuild.ts';
import type { ComputedDatabase } from '../../src/depmod/compute.ts';
import type { KmodBehaviour } from '../../src/depmod/kmod-version.ts';

function readOpt(path: string): Uint8Array | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

export function listConfig(dirs: readonly string[] = DEFAULT_CONFIG_DIRS): ConfigListing[] {
  return dirs.map((path) => {
    try {
      if (!statSync(path).isDirectory()) return { path, entries: 'file' as const };
      return { path, entries: listDirInReaddirOrder(path) };
    } catch {
      return { path, entries: undefined };
    }
  });
}

export interface OursResult {
  files: Map<string, Uint8Array>;
  db: ComputedDatabase;
  warnings: string[];
  parseMs: number;
  buildRenderMs: number;
  records: Map<string, ModuleRecord>;
}

export async function runOurs(
  root: string,
  kver: string,
  opts: { configDirs?: readonly string[]; kernelSymbols?: KernelSymbols; records?: Map<string, ModuleRecord>; behaviour?: KmodBehaviour } = {},
): Promise<OursResult> {
  const dirname = `${root}/lib/modules/${kver}`;
  const cfgOrder = configFileOrder(listConfig(opts.configDirs));
  const configFiles = cfgOrder.paths.map((path) => ({ path, text: readFileSync(path, 'latin1') }));
  const plan = planRebuild({
    kver,
    dirname,
    configFiles,
    ...(opts.behaviour ? { behaviour: opts.behaviour } : {}),
    io: {
      listDir: listDirIfPossible,
      statType: statTypeFollowingLinks,
    },
  });
  const t0 = performance.now();
  const records = opts.records ?? new Map<string, ModuleRecord>();
  for (const m of plan.modules) {
    if (!records.has(m.abspath)) records.set(m.abspath, await parseModuleFile(readFileSync(m.abspath), m.relpath ?? m.abspath));
  }
  const t1 = performance.now();
  const orderBytes = readOpt(`${dirname}/modules.order`);
  const out = rebuildOutputs({
    dirname,
    modules: plan.modules,
    records,
    order: orderBytes === undefined ? undefined : Buffer.from(orderBytes).toString('latin1'),
    kernelSymbols: opts.kernelSymbols,
    builtin: readOpt(`${dirname}/modules.builtin`),
    builtinModinfo: readOpt(`${dirname}/modules.builtin.modinfo`),
    ...(opts.behaviour ? { behaviour: opts.behaviour } : {}),
  });
  const t2 = performance.now();
  return {
    files: out.files,
    db: out.db,
    warnings: [...plan.configWarnings.map((w) => w.message), ...plan.searchWarnings, ...out.db.warnings, ...out.warnings],
    parseMs: t1 - t0,
    buildRenderMs: t2 - t1,
    records,
  };
}
