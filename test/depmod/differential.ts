// One seeded random tree through an oracle depmod (default Debian 12's kmod 30) and depmod-tx's
// pure pipeline writing that kmod's format; returns the differences (empty when every file is
// byte-identical, or both report the same cycles). Shared by test/depmod/synthetic.test.ts (fixed
// seeds in CI) and scripts/fuzz-diff.ts (more).
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { depmodConfigArgs, writeFixtureTree } from '../support/fixture-tree.ts';
import { randomTree } from '../support/random-tree.ts';
import { kmodBehaviour } from '../../src/depmod/kmod-version.ts';
import { kmod30, type DepmodOracle } from '../support/kmod-oracles.ts';
import { compareWithOracle } from './compare.ts';
import { runOurs } from './pipeline.ts';

export interface SeedResult {
  seed: number;
  cycle: boolean;
  problems: string[];
}

/** The tree shape each seed gets: every third mixes compressions, every fourth allows cycles. */
export function treeForSeed(seed: number): ReturnType<typeof randomTree> {
  return randomTree(seed, { ...(seed % 3 === 0 ? { compression: 'mixed' as const } : {}), ...(seed % 4 === 1 ? { cycles: true } : {}) });
}

export async function checkSeed(seed: number, base: string, oracle: DepmodOracle = kmod30()): Promise<SeedResult> {
  const t = treeForSeed(seed);
  const behaviour = kmodBehaviour(oracle.version);
  if (behaviour === undefined) throw new Error(`${oracle.name}: kmod ${oracle.version} is not a version depmod-tx writes`);
  const ourRoot = join(base, `ours-${seed}`);
  const theirRoot = join(base, `theirs-${seed}`);
  const problems: string[] = [];
  try {
    for (const root of [ourRoot, theirRoot]) {
      writeFixtureTree(root, t.kver, t.modules, {
        order: t.order,
        depmodConf: t.depmodConf,
        bits: t.bits,
        endian: t.endian,
        ...(t.builtin ? { builtin: t.builtin } : {}),
        ...(t.builtinModinfo ? { builtinModinfo: t.builtinModinfo } : {}),
      });
    }
    const cfgArgs = depmodConfigArgs(theirRoot, t.depmodConf);
    // kmod's cycle report never ends on some graphs and can eat all memory before printing much:
    // bound depmod's address space, time and output so such a tree cannot take the machine down.
    const r = spawnSync('prlimit', ['--as=1073741824', '--', ...oracle.command, '-b', theirRoot, ...cfgArgs, '-a', t.kver], {
      encoding: 'utf8',
      timeout: 30_000,
      maxBuffer: 8 * 1024 * 1024,
    });
    const oracleDir = join(theirRoot, 'lib', 'modules', t.kver);
    const configDirs = depmodConfigArgs(ourRoot, t.depmodConf).filter((a) => a !== '-C');
    const ours = await runOurs(ourRoot, t.kver, { configDirs, behaviour });
    // A killed depmod may leave a partial last line: only complete lines count.
    const stderr = r.stderr ?? '';
    const complete = stderr.endsWith('\n') ? stderr : stderr.slice(0, stderr.lastIndexOf('\n') + 1);
    const errors = complete
      .split('\n')
      .filter((l) => l.startsWith('depmod: ERROR: '))
      .map((l) => l.slice('depmod: ERROR: '.length));
    if (r.status !== 0) {
      const inputs = new Set(['modules.order', 'modules.builtin', 'modules.builtin.modinfo']);
      const written = readdirSync(oracleDir).filter((f) => f.startsWith('modules.') && !inputs.has(f));
      if (ours.db.cycles === null) problems.push(`depmod failed (${r.stderr.trim()}) but depmod-tx found no cycle`);
      else {
        const theirs = errors.filter((e) => /^(Cycle detected|Found \d+ modules)/.test(e));
        // kmod's report never ends on some graphs (a cycle reachable from another); depmod-tx stops
        // after a bound and marks the report truncated: then depmod's lines must start with ours.
        // depmod's stderr is then cut at spawnSync's buffer limit, so its last line may be partial.
        const n = ours.db.cycles.truncated ? Math.min(ours.db.cycles.messages.length, theirs.length) : Infinity;
        const mine = ours.db.cycles.truncated ? ours.db.cycles.messages.slice(0, n) : ours.db.cycles.messages;
        const compared = ours.db.cycles.truncated ? theirs.slice(0, n) : theirs;
                if (JSON.stringify(mine) !== JSON.stringify(compared)) {
          const clip = (l: string[]): string => l.join(' | ').slice(0, 400);
          problems.push(`cycle report differs (truncated=${ours.db.cycles.truncated}):\n  ours:   ${clip(ours.db.cycles.messages)}\n  depmod: ${clip(theirs)}`);
        }
      }
      if (ours.db.cycles !== null && !ours.db.cycles.truncated && ours.db.cycles.aborted !== (r.signal === 'SIGABRT')) {
        problems.push(`depmod ${r.signal === 'SIGABRT' ? 'aborted' : 'did not abort'} in its cycle report, depmod-tx says aborted=${ours.db.cycles.aborted}`);
      }
      if (written.length !== 0 || ours.files.size !== 0) problems.push(`files written despite a cycle: ${written.join(',')} / ${[...ours.files.keys()].join(',')}`);
      return { seed, cycle: true, problems };
    }
    if (ours.db.cycles !== null) {
      problems.push(`depmod-tx reports cycles, depmod did not: ${ours.db.cycles.messages.join(' | ')}`);
      return { seed, cycle: true, problems };
    }
    problems.push(...compareWithOracle(ours.files, oracleDir));
    return { seed, cycle: false, problems };
  } finally {
    rmSync(ourRoot, { recursive: true, force: true });
    rmSync(theirRoot, { recursive: true, force: true });
  }
}
