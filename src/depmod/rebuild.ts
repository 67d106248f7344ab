// The pure half of a full rebuild, in depmod's own sequence (tools/depmod.c do_depmod): config →
// module search → (the shell parses the chosen files) → module set → compute → emit. The shell owns
// everything with a file descriptor: it lists depmod.d directories and the module tree, reads config
// files, modules.order, modules.builtin(.modinfo), symvers, parses modules (in workers) and writes
// the result atomically. Note for the shell: kmod reads depmod.d from the host's directories and
// external directories as written, NOT under -b ROOT; only the module directory is under ROOT.
import { readingFor, type ModuleRecord } from '../module/record.ts';
import { computeDatabase, type ComputedDatabase, type KabiBasis } from './compute.ts';
import { configFileOrder, parseDepmodConfig, type ConfigFile, type ConfigListing, type ConfigWarning, type DepmodConfig } from './config.ts';
import type { DepmodMessage } from './diagnostic.ts';
import { emitDatabase, type EmitResult } from './emit.ts';
import type { KernelSymbols } from './kernel-symbols.ts';
import { DEFAULT_BEHAVIOUR, type KmodBehaviour } from './kmod-version.ts';
import { ModuleSet, orderPositions, sortIdxOf } from './module-set.ts';
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
  /** The kmod whose rules apply (default: kmod 30, Debian 12). */
  behaviour?: KmodBehaviour;
}

export interface Plan {
  config: DepmodConfig;
  configWarnings: ConfigWarning[];
  /** The files to parse: one per module name. */
  modules: FoundModule[];
  /** Module files that lost to a file of the same name. */
  shadowed: FoundModule[];
  searchWarnings: DepmodMessage[];
}

/** Which config files to read, given the listings of the config directories (behaviour.configDirs or -C). */
export function planConfigFiles(listings: readonly ConfigListing[]): { paths: string[]; warnings: ConfigWarning[] } {
  return configFileOrder(listings);
}

export { DEFAULT_BEHAVIOUR } from './kmod-version.ts';

export function planRebuild(input: PlanInput): Plan {
  const behaviour = input.behaviour ?? DEFAULT_BEHAVIOUR;
  const { config, warnings } = parseDepmodConfig(input.configFiles, input.kver, { exclude: behaviour.supportsExclude });
  const found = searchModules({ dirname: input.dirname, config, io: input.io, ...(input.suffixes ? { suffixes: input.suffixes } : {}) });
  return { config, configWarnings: warnings, modules: found.modules, shadowed: found.shadowed, searchWarnings: found.warnings };
}

export interface RebuildInput {
  dirname: string;
  modules: readonly FoundModule[];
  /** Parsed record per FoundModule.abspath (a module missing here is an error of the caller). */
  records: ReadonlyMap<string, ModuleRecord>;
  order?: string | undefined;
  kernelSymbols?: KernelSymbols | undefined;
  builtin?: Uint8Array | undefined;
  builtinModinfo?: Uint8Array | undefined;
  symPrefix?: string;
  /** Without kernel symbols, still compare imports with exporting modules (KabiBasis 'modules'). */
  moduleCrcCheck?: boolean;
  behaviour?: KmodBehaviour;
}

const NO_FINGERPRINT = { size: 0n, mtimeNs: 0n, ctimeNs: 0n, ino: 0n };

/** A module set of the search winners and their records (fingerprints unknown: a pure rebuild). */
export function moduleSetOf(input: RebuildInput): ModuleSet {
  const behaviour = input.behaviour ?? DEFAULT_BEHAVIOUR;
  const set = new ModuleSet();
  const order = orderPositions(input.order, behaviour.orderFirstLineWins, input.dirname);
  for (const m of input.modules) {
    const record = input.records.get(m.abspath);
    if (record === undefined) throw new Error(`${m.abspath}: no parsed record was passed for this module`);
    const path = m.relpath ?? m.abspath;
    const read = readingFor(record, behaviour.major);
    set.add(path, NO_FINGERPRINT, read.record, sortIdxOf(order, path), read.byKmod);
  }
  if (input.kernelSymbols !== undefined) set.setKernelSymbols(input.kernelSymbols.source, input.kernelSymbols.symbols);
  return set;
}

/** The KABI basis of a rebuild: the kernel's symbols when given, else modules only on request. */
export function kabiBasisOf(kernelSymbols: KernelSymbols | undefined, moduleCrcCheck: boolean | undefined): KabiBasis {
  return kernelSymbols?.source ?? (moduleCrcCheck === true ? 'modules' : 'none');
}

/** Build + render in one call. Empty `files` means depmod would write nothing (cycles). */
export function rebuildOutputs(input: RebuildInput): { set: ModuleSet; db: ComputedDatabase } & EmitResult {
  const behaviour = input.behaviour ?? DEFAULT_BEHAVIOUR;
  const set = moduleSetOf(input);
  const db = computeDatabase(set, {
    kabi: kabiBasisOf(input.kernelSymbols, input.moduleCrcCheck),
    dirname: input.dirname,
    unsizedZstdUnreadable: behaviour.zstdNeedsSizedFrame,
    ...(input.symPrefix !== undefined ? { symPrefix: input.symPrefix } : {}),
  });
  db.warnings.push(...orderPositions(input.order, behaviour.orderFirstLineWins, input.dirname).warnings);
  const out = emitDatabase({ set, db, behaviour, dirname: input.dirname, builtin: input.builtin, builtinModinfo: input.builtinModinfo });
  return { set, db, ...out };
}
