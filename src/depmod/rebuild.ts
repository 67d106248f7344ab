// The pure half of a full rebuild, in depmod's own sequence (tools/depmod.c do_depmod): config →
// module search → (the shell parses the chosen files) → build → render. The shell owns everything
// with a file descriptor: it lists depmod.d directories and the module tree, reads config files,
// modules.order, modules.builtin(.modinfo), symvers, parses modules (in workers) and writes the
// result atomically. Note for the shell: kmod 30 reads depmod.d from the host's directories and
// external directories as written, NOT under -b ROOT; only the module directory is under ROOT.
import type { ModuleRecord } from '../module/record.ts';
import { buildDatabase, type Database } from './build.ts';
import { configFileOrder, parseDepmodConfig, type ConfigFile, type ConfigListing, type ConfigWarning, type DepmodConfig } from './config.ts';
import type { KernelSymbols } from './kernel-symbols.ts';
import { renderDatabase, type RenderResult } from './render.ts';
import { searchModules, type FoundModule, type SearchIo } from './search.ts';

export { configFileOrder, DEFAULT_CONFIG_DIRS } from './config.ts';

export interface PlanInput {
  kver: string;
  /** ROOT/lib/modules/KVER, spelled as depmod spells cfg.dirname. */
  dirname: string;
  /** depmod.d files in configFileOrder's order, already read. */
  configFiles: readonly ConfigFile[];
  io: SearchIo;
  suffixes?: readonly string[];
}

export interface Plan {
  config: DepmodConfig;
  configWarnings: ConfigWarning[];
  /** The files to parse: one per module name. */
  modules: FoundModule[];
  searchWarnings: string[];
}

/** Which config files to read, given the listings of the config directories (DEFAULT_CONFIG_DIRS or -C). */
export function planConfigFiles(listings: readonly ConfigListing[]): { paths: string[]; warnings: ConfigWarning[] } {
  return configFileOrder(listings);
}

export function planRebuild(input: PlanInput): Plan {
  const { config, warnings } = parseDepmodConfig(input.configFiles, input.kver);
  const found = searchModules({ dirname: input.dirname, config, io: input.io, ...(input.suffixes ? { suffixes: input.suffixes } : {}) });
  return { config, configWarnings: warnings, modules: found.modules, searchWarnings: found.warnings };
}

export interface ComputeInput {
  dirname: string;
  modules: readonly FoundModule[];
  /** Parsed record per FoundModule.abspath (a module missing here is an error of the caller). */
  records: ReadonlyMap<string, ModuleRecord>;
  order?: string | undefined;
  kernelSymbols?: KernelSymbols | undefined;
  builtin?: Uint8Array | undefined;
  builtinModinfo?: Uint8Array | undefined;
  symPrefix?: string;
  /** See BuildInput.moduleCrcCheck. */
  moduleCrcCheck?: boolean;
}

export function computeDatabase(input: ComputeInput): Database {
  const modules = input.modules.map((m) => {
    const record = input.records.get(m.abspath);
    if (record === undefined) throw new Error(`${m.abspath}: no parsed record was passed for this module`);
    return { path: m.relpath ?? m.abspath, record };
  });
  return buildDatabase({
    modules,
    order: input.order,
    kernelSymbols: input.kernelSymbols,
    dirname: input.dirname,
    ...(input.symPrefix !== undefined ? { symPrefix: input.symPrefix } : {}),
    ...(input.moduleCrcCheck !== undefined ? { moduleCrcCheck: input.moduleCrcCheck } : {}),
  });
}

/** Build + render in one call. Empty `files` means depmod would write nothing (cycles). */
export function rebuildOutputs(input: ComputeInput): { db: Database } & RenderResult {
  const db = computeDatabase(input);
  return { db, ...renderDatabase({ db, builtin: input.builtin, builtinModinfo: input.builtinModinfo }) };
}

export { renderDatabase };
