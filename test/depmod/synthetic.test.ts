// Synthetic differential: seeded random trees (duplicates across updates/ extra/ kernel/
// weak-updates/, depmod.d override/exclude/search, modules missing from modules.order or named
// twice, cycles, a symbol exported twice, weak and unresolved imports, odd aliases, softdeps,
// weakdeps, devnames, builtin modules) go through an oracle depmod and depmod-tx writing that kmod's
// format; every file must be byte-identical, and on a cycle both must write nothing and report the
// same cycles. Oracles: Debian 12's kmod 30 and Debian 13's kmod 34.2 (CI), and any kmod a developer
// built from kmod's tags (.cache/kmod-builds). `npm run fuzz:diff -- --trees N` runs more seeds.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { realKernelSkipReason } from '../support/kernels.ts';
import { kmod30, kmod34, localKmodBuilds, type DepmodOracle } from '../support/kmod-oracles.ts';
import { checkSeed } from './differential.ts';

const skip = realKernelSkipReason();
const SEEDS = Number(process.env.DEPMOD_TX_SYNTH_SEEDS ?? 200);

/** Seeds per oracle: the two Debian kmods in full, developer builds a sample each. */
const plan: Array<[() => DepmodOracle, number]> = [
  [kmod30, SEEDS],
  [kmod34, Math.ceil(SEEDS / 2)],
  ...(skip ? [] : localKmodBuilds().map((o): [() => DepmodOracle, number] => [() => o, 40])),
];

describe('synthetic trees: depmod-tx equals depmod -a', { skip }, () => {
  for (const [oracleOf, seeds] of plan) it(`random trees, every file byte-identical (or the same cycle report): ${seeds} seeds`, async () => {
    const oracle = oracleOf();
    const base = mkdtempSync(join(tmpdir(), 'depmod-tx-synth-'));
    const failures: string[] = [];
    let cycles = 0;
    try {
      for (let seed = 1; seed <= seeds; seed++) {
        const r = await checkSeed(seed, base, oracle);
        if (r.cycle) cycles++;
        if (r.problems.length) failures.push(`seed ${seed}:\n  ${r.problems.join('\n  ')}`);
      }
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
    console.log(`synthetic ${oracle.name} (kmod ${oracle.version}): ${seeds} trees, ${cycles} with cycles, ${failures.length} failing`);
    assert.deepEqual(failures, []);
  });
});
