// Synthetic differential: seeded random trees (duplicates across updates/ extra/ kernel/
// weak-updates/, depmod.d override/exclude/search, modules missing from modules.order, cycles,
// a symbol exported twice, weak and unresolved imports, odd aliases, softdeps, devnames) go through
// Debian's depmod and depmod-tx; every file must be byte-identical, and on a cycle both must write
// nothing and report the same cycles. `npm run fuzz:diff -- --trees N` runs more seeds.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { realKernelSkipReason } from '../support/kernels.ts';
import { checkSeed } from './differential.ts';

const skip = realKernelSkipReason();
const SEEDS = Number(process.env.DEPMOD_TX_SYNTH_SEEDS ?? 200);

describe('synthetic trees: depmod-tx equals depmod -a', { skip }, () => {
  it(`${SEEDS} random trees, every file byte-identical (or the same cycle report)`, async () => {
    const base = mkdtempSync(join(tmpdir(), 'depmod-tx-synth-'));
    const failures: string[] = [];
    let cycles = 0;
    try {
      for (let seed = 1; seed <= SEEDS; seed++) {
        const r = await checkSeed(seed, base);
        if (r.cycle) cycles++;
        if (r.problems.length) failures.push(`seed ${seed}:\n  ${r.problems.join('\n  ')}`);
      }
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
    console.log(`synthetic: ${SEEDS} trees, ${cycles} with cycles, ${failures.length} failing`);
    assert.deepEqual(failures, []);
  });
});
