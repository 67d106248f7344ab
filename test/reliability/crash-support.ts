// Shared helpers for the reliability tests: run the real CLI as a child, list state temporaries.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../support/kernels.ts';
import type { FixtureTreeModule } from '../support/fixture-tree.ts';

export const BIN = join(repoRoot, 'src', 'cli', 'bin.ts');

/** `depmod-tx ARGS` in a child process (tsx), optionally killed at a crash point. */
export function cli(args: string[], opts: { crashAt?: string; input?: string; env?: Record<string, string>; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  delete env.DEPMOD_TX_CRASH_AT;
  if (opts.crashAt !== undefined) env.DEPMOD_TX_CRASH_AT = opts.crashAt;
  return spawnSync(process.execPath, ['--import', 'tsx', BIN, ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    env,
    timeout: opts.timeoutMs ?? 120_000,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
}

/** Every `*.tmp` below `dir` (relative names), recursively; none when dir is missing. */
export function tempFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    let ents;
    try {
      ents = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) walk(join(d, e.name), r);
      else if (e.name.endsWith('.tmp')) out.push(r);
    }
  };
  walk(dir, '');
  return out;
}

/** A synthetic kernel's modules: a dependency chain with exports/imports, aliases padding the database. */
export function syntheticModules(n: number, tag: string, aliasesEach = 4): FixtureTreeModule[] {
  return Array.from({ length: n }, (_, i) => ({
    path: `kernel/drivers/${tag}/${tag}_${i}.ko`,
    module: {
      modinfo: [
        ...Array.from({ length: aliasesEach }, (_, a) => ['alias', `platform:${tag}-device-number-${i}-variant-${a}-with-a-long-name`] as [string, string]),
        ['depends', i > 0 ? `${tag}_${i - 1}` : ''],
      ],
      exports: [{ name: `${tag}_sym_${i}`, crc: 0x1000 + i }],
      imports: i > 0 ? [{ name: `${tag}_sym_${i - 1}`, crc: 0x1000 + i - 1 }] : [],
    },
  }));
}
