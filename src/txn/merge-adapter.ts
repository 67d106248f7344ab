// Adapts the incremental update (src/merge, issue 4) to the KernelMerge interface commit() takes,
// so commit stays testable with a fake and the CLI has one obvious production wiring.
import { merge } from '../merge/merge.ts';
import type { KernelMerge } from './commit.ts';

export function updateMerge(opts: { symvers?: string | 'auto'; workers?: number; kabiScope?: 'all' | 'affected' } = {}): KernelMerge {
  return async (req) => {
    const r = await merge({
      root: req.root,
      kver: req.kver,
      hints: req.paths,
      symvers: opts.symvers ?? 'auto',
      kabiScope: opts.kabiScope ?? 'affected',
      ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
    });
    return {
      changed: r.written.length > 0,
      files: r.written,
      ms: r.ms,
      kabi: {
        unknown: r.kabi.filter((k) => k.kind === 'unknown').length,
        mismatched: r.kabi.filter((k) => k.kind === 'crc-mismatch').length,
      },
    };
  };
}
