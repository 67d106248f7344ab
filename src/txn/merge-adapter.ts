// Adapts the incremental update (src/merge, issue 4) to the KernelMerge interface commit() takes,
// so commit stays testable with a fake and the CLI has one obvious production wiring.
import { depmodWarning, type DepmodMessage } from '../depmod/diagnostic.ts';
import { installedKmod, type KmodChoice } from '../merge/installed-kmod.ts';
import { merge } from '../merge/merge.ts';
import { unreadableEntry } from '../merge/kabi-summary.ts';
import type { KernelMerge } from './commit.ts';

export interface UpdateMergeOptions {
  symvers?: string | 'auto';
  workers?: number;
  /** The kmod whose format to write (default: the one installed in the root). */
  kmod?: KmodChoice;
  /** Told every warning and every KABI finding of each kernel's database, known ones included (the CLI prints them on stderr). */
  onFinding?: (kver: string, message: DepmodMessage) => void;
}

export function updateMerge(opts: UpdateMergeOptions = {}): KernelMerge {
  return async (req) => {
    const kmod = opts.kmod ?? installedKmod(req.root);
    if (kmod.warning !== undefined) opts.onFinding?.(req.kver, depmodWarning(kmod.warning));
    const r = await merge({
      kmod: kmod.behaviour,
      root: req.root,
      kver: req.kver,
      hints: req.paths,
      symvers: opts.symvers ?? 'auto',
      ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
    });
    for (const w of r.warnings) opts.onFinding?.(req.kver, w);
    for (const f of r.kabi) opts.onFinding?.(req.kver, depmodWarning(f.message));
    return {
      changed: r.written.length > 0,
      files: r.written,
      ms: r.ms,
      kabi: r.kabiAgainst === 'none' ? undefined : {
        against: r.kabiAgainst,
        unknown: r.kabi.filter((k) => k.kind === 'unknown').length,
        mismatched: r.kabi.filter((k) => k.kind === 'crc-mismatch').length,
      },
      ...(r.unreadable.length > 0 ? { unreadable: r.unreadable.map(unreadableEntry) } : {}),
    };
  };
}
