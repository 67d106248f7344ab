// Synthetic differential: seeded random trees (duplicates across updates/ extra/ kernel/
// weak-updates/, depmod.d override/exclude/search, modules missing from modules.order, cycles,
// a symbol exported twice, weak and unresolved imports, odd aliases, softdeps, devnames) go through
// Debian's depmod and depmod-tx; every file must be byte-identical, and on a cycle both must write
// nothing and report the same cycles.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { depmodConfigArgs, writeFixtureTree } from '../support/fixture-tree.ts';
import { realKernelSkipReason } from '../support/kernels.ts';
import { randomTree } from '../support/random-tree.ts';
import { compareWithOracle } from './compare.ts';
import { runOurs } from './pipeline.ts';

const skip = realKernelSkipReason();
const SEEDS = Number(process.env.DEPMOD_TX_SYNTH_SEEDS ?? 60);

describe('synthetic trees: depmod-tx equals depmod -a', { skip }, () => {
  it(`${SEEDS} random trees, every file byte-identical (or the same cycle report)`, async () => {
    const base = mkdtempSync(join(tmpdir(), 'depmod-tx-synth-'));
    const failures: string[] = [];
    let cycles = 0;
    try {
      for (let seed = 1; seed <= SEEDS; seed++) {
        const t = randomTree(seed, { ...(seed % 3 === 0 ? { compression: 'mixed' as const } : {}), ...(seed % 4 === 1 ? { cycles: true } : {}) });
        const ourRoot = join(base, `ours-${seed}`);
        const theirRoot = join(base, `theirs-${seed}`);
        for (const root of [ourRoot, theirRoot]) {
          writeFixtureTree(root, t.kver, t.modules, { order: t.order, depmodConf: t.depmodConf, bits: t.bits, endian: t.endian });
        }
        const cfgArgs = depmodConfigArgs(theirRoot, t.depmodConf);
        // A cycle reachable from another cycle makes kmod 30 print cycles forever: cap its output.
        const r = spawnSync('depmod', ['-b', theirRoot, ...cfgArgs, '-a', t.kver], { encoding: 'utf8', timeout: 5000, maxBuffer: 256 * 1024 });
        const oracleDir = join(theirRoot, 'lib', 'modules', t.kver);
        const configDirs = depmodConfigArgs(ourRoot, t.depmodConf).filter((a) => a !== '-C');
        const ours = await runOurs(ourRoot, t.kver, { configDirs });
        const errors = r.stderr
          .split('\n')
          .filter((l) => l.startsWith('depmod: ERROR: '))
          .map((l) => l.slice('depmod: ERROR: '.length));
        if (r.status !== 0) {
          cycles++;
          const written = readdirSync(oracleDir).filter((f) => f.startsWith('modules.') && f !== 'modules.order');
          if (ours.db.cycles === null) failures.push(`seed ${seed}: depmod failed (${r.stderr.trim()}) but depmod-tx found no cycle`);
          else if (ours.db.cycles.truncated) {
            // kmod did not stop either: the lines both printed must agree (depmod's last line may be cut).
            const theirs = errors.slice(0, -1);
            const n = Math.min(theirs.length, ours.db.cycles.messages.length);
            if (r.signal === null || JSON.stringify(ours.db.cycles.messages.slice(0, n)) !== JSON.stringify(theirs.slice(0, n))) {
              failures.push(`seed ${seed}: endless cycle report differs (depmod ${r.signal}):\n  ours:   ${ours.db.cycles.messages.slice(0, 3).join(' | ')}\n  depmod: ${theirs.slice(0, 3).join(' | ')}`);
            }
          } else if (JSON.stringify(ours.db.cycles.messages) !== JSON.stringify(errors.filter((e) => /^(Cycle detected|Found \d+ modules)/.test(e)))) {
            failures.push(`seed ${seed}: cycle report differs:\n  ours:   ${ours.db.cycles.messages.join(' | ')}\n  depmod: ${errors.join(' | ')}`);
          }
          if (ours.db.cycles !== null && !ours.db.cycles.truncated && ours.db.cycles.aborted !== (r.signal === 'SIGABRT')) {
            failures.push(`seed ${seed}: depmod ${r.signal === 'SIGABRT' ? 'aborted' : 'did not abort'} in its cycle report, depmod-tx says aborted=${ours.db.cycles.aborted}`);
          }
          if (written.length !== 0 || ours.files.size !== 0) failures.push(`seed ${seed}: files written despite a cycle: ${written.join(',')} / ${[...ours.files.keys()].join(',')}`);
          continue;
        }
        if (ours.db.cycles !== null) {
          failures.push(`seed ${seed}: depmod-tx reports cycles, depmod did not: ${ours.db.cycles.messages.join(' | ')}`);
          continue;
        }
        const d = compareWithOracle(ours.files, oracleDir);
        if (d.length) failures.push(`seed ${seed}:\n  ${d.join('\n  ')}`);
      }
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
    console.log(`synthetic: ${SEEDS} trees, ${cycles} with cycles, ${failures.length} failing`);
    assert.deepEqual(failures, []);
  });
});
