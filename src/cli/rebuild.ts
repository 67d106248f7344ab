// `depmod-tx rebuild` and `depmod-tx update`: the same merge, with and without the cache.
import { mkdirSync } from 'node:fs';
import { IoError } from '../errors.ts';
import { locateModuleTree } from '../io/tree.ts';
import { assertNamedInputsExist } from '../merge/inputs.ts';
import { merge, mergeIfChanged, type MergeOptions } from '../merge/merge.ts';
import { EXIT } from './exit-codes.ts';
import { reportMerge, type ReportIo } from './merge-report.ts';
import { progressBar } from './progress.ts';

export interface MergeCommandArgs {
  kver: string;
  root: string;
  outdir?: string | undefined;
  symvers?: string | undefined;
  systemMap?: string | undefined;
  config?: string[] | undefined;
  check: boolean;
  strict: boolean;
  json: boolean;
  verbose?: boolean;
  workers?: number | undefined;
  lockTimeoutMs: number;
  paths?: string[];
  fullScan?: boolean;
  /** --kmod-version: write this kmod's format instead of the installed one's. */
  kmodVersion?: string | undefined;
  /** --verify: parse everything again and require the same output (exit 70 otherwise). */
  verify?: boolean;
  /** --plan: print the plan and change nothing. */
  plan?: boolean;
}

/**
 * What can be known wrong before any work is refused before it: a missing module directory, symvers
 * or System.map (66), --config (78), an --outdir that cannot be created (74; depmod -o creates it too). Nothing is
 * created under --root then, not even the lock file.
 */
function prepare(a: MergeCommandArgs): void {
  locateModuleTree(a.root, a.kver);
  assertNamedInputsExist(a.root, a);
  if (a.outdir !== undefined) {
    try {
      mkdirSync(a.outdir, { recursive: true, mode: 0o755 });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new IoError(a.outdir, `cannot create output directory: ${e.code ?? e.message}`, e.code, { cause: err });
    }
  }
}

async function runMerge(command: 'rebuild' | 'update', a: MergeCommandArgs, io: ReportIo): Promise<number> {
  prepare(a);
  const { installedKmod, requestedKmod } = await import('../merge/installed-kmod.ts');
  const kmod = a.kmodVersion !== undefined ? requestedKmod(a.kmodVersion) : installedKmod(a.root, { persist: a.outdir === undefined });
  if (kmod.warning !== undefined) io.stderr(`depmod-tx: WARNING: ${kmod.warning}\n`);
  const bar = progressBar(`depmod-tx ${command} ${a.kver}`);
  const opts: MergeOptions = {
    kmod: kmod.behaviour,
    verify: a.verify ?? false,
    planOnly: a.plan ?? false,
    root: a.root,
    kver: a.kver,
    outdir: a.outdir,
    config: a.config,
    full: command === 'rebuild',
    fullScan: a.fullScan ?? false,
    hints: a.paths ?? [],
    // Every merge checks KABI as update does (against the kernel's symvers when one is found), so the
    // cache a rebuild leaves serves the next update's patch; rebuild reports it only when asked. An
    // explicit --symvers wins over --system-map, which wins over the discovered symvers.
    symvers: a.symvers ?? (a.systemMap === undefined ? 'auto' : undefined),
    systemMap: a.systemMap,
    workers: a.workers,
    onProgress: bar.update,
  };
  if (a.plan === true) {
    // Reads only, like depmod -n: no lock (the cache and outputs are replaced by rename, never seen half-written).
    const r = await merge(opts);
    const { formatPlan } = await import('../merge/plan.ts');
    const plan = r.plan ?? { mode: 'noop' as const, reason: 'nothing changed since the cache was written', parse: [], drop: [], shadowed: [], notes: [] };
    if (a.json) io.stdout(`${JSON.stringify({ command, kver: a.kver, mode: plan.mode, reason: plan.reason, parse: plan.parse.map((p) => p.key), drop: plan.dropPaths ?? [], shadowed: plan.shadowed, notes: plan.notes }, null, 2)}\n`);
    else io.stdout(formatPlan(a.kver, plan));
    return EXIT.ok;
  }
  // Nothing changed: answered from the cache header alone, no lock needed (mergeIfChanged).
  if (command === 'update' && a.outdir === undefined) {
    const quick = await mergeIfChanged(opts);
    if (!('kind' in quick)) return reportMerge(quick, { json: a.json, strict: a.strict, verbose: a.verbose ?? false, command }, io);
    opts.probe = quick;
  }
  // The same per-kernel lock commit takes: a manual update never races a package transaction.
  const { KernelState } = await import('../kernel/kernel-state.ts');
  const lock = a.outdir === undefined ? await new KernelState(a.root, a.kver).lock(a.lockTimeoutMs) : undefined;
  try {
    const merged = await merge(opts);
    bar.done();
    const reportsKabi = command === 'update' || a.check || a.strict || a.symvers !== undefined || a.systemMap !== undefined;
    const r = reportsKabi ? merged : { ...merged, kabi: [], kabiAgainst: 'none' as const, warnings: merged.warnings };
    return reportMerge(r, { json: a.json, strict: a.strict, verbose: a.verbose ?? false, command }, io);
  } finally {
    bar.done();
    await lock?.release();
  }
}

export const runRebuild = (a: MergeCommandArgs, io: ReportIo): Promise<number> => runMerge('rebuild', a, io);
export const runUpdate = (a: MergeCommandArgs, io: ReportIo): Promise<number> => runMerge('update', a, io);
