// `depmod-tx rebuild` and `depmod-tx update`: the same merge, with and without the cache.
import { merge, type MergeOptions } from '../merge/merge.ts';
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
  paths?: string[];
  fullScan?: boolean;
  /** --kmod-version: write this kmod's format instead of the installed one's. */
  kmodVersion?: string | undefined;
  /** --verify: parse everything again and require the same output (exit 70 otherwise). */
  verify?: boolean;
}

async function runMerge(command: 'rebuild' | 'update', a: MergeCommandArgs, io: ReportIo): Promise<number> {
  const { installedKmod, requestedKmod } = await import('../merge/installed-kmod.ts');
  const kmod = a.kmodVersion !== undefined ? requestedKmod(a.kmodVersion) : installedKmod(a.root, { persist: a.outdir === undefined });
  if (kmod.warning !== undefined) io.stderr(`depmod-tx: WARNING: ${kmod.warning}\n`);
  const bar = progressBar(`depmod-tx ${command} ${a.kver}`);
  const opts: MergeOptions = {
    kmod: kmod.behaviour,
    verify: a.verify ?? false,
    root: a.root,
    kver: a.kver,
    outdir: a.outdir,
    config: a.config,
    full: command === 'rebuild',
    fullScan: a.fullScan ?? false,
    hints: a.paths ?? [],
    // update always checks KABI when the kernel's symvers can be found; rebuild only when asked.
    symvers: a.symvers ?? (command === 'update' || a.check || a.strict ? 'auto' : undefined),
    systemMap: a.systemMap,
    kabiScope: command === 'update' ? 'affected' : 'all',
    workers: a.workers,
    onProgress: bar.update,
  };
  // The same per-kernel lock commit takes: a manual update never races a package transaction.
  const { assertSafeKernelVersion } = await import('../io/tree.ts');
  assertSafeKernelVersion(a.kver);
  const { acquireLock, kernelLockFile } = await import('../txn/lock.ts');
  const lock = a.outdir === undefined ? await acquireLock(kernelLockFile(a.root, a.kver), 300_000) : undefined;
  try {
    const r = await merge(opts);
    bar.done();
    return reportMerge(r, { json: a.json, strict: a.strict, verbose: a.verbose ?? false, command }, io);
  } finally {
    bar.done();
    await lock?.release();
  }
}

export const runRebuild = (a: MergeCommandArgs, io: ReportIo): Promise<number> => runMerge('rebuild', a, io);
export const runUpdate = (a: MergeCommandArgs, io: ReportIo): Promise<number> => runMerge('update', a, io);
