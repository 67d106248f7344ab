// Spawns the CLI as users and package managers run it: the built bundle behind bin/depmod-tx.mjs
// (scripts/test.mjs builds it before any test runs), so what is tested is what ships: the bundled
// yargs, the man page and completion in dist/.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFixtureTree, type FixtureTreeModule } from './fixture-tree.ts';
import { repoRoot } from './kernels.ts';

export const BUILT_BIN = join(repoRoot, 'bin', 'depmod-tx.mjs');
export const DIST = join(repoRoot, 'dist');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: readonly string[], opts: { input?: string; env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): CliRun {
  if (!existsSync(join(DIST, 'depmod-tx.mjs'))) throw new Error('dist/depmod-tx.mjs is missing: run npm run build (npm test does)');
  const env: NodeJS.ProcessEnv = { ...process.env, DEPMOD_TX_TRACE: '', ...opts.env };
  delete env.DEPMOD_TX_CRASH_AT;
  if (opts.env?.DEPMOD_TX_CRASH_AT !== undefined) env.DEPMOD_TX_CRASH_AT = opts.env.DEPMOD_TX_CRASH_AT;
  const r = spawnSync(process.execPath, [BUILT_BIN, ...args], {
    encoding: 'utf8',
    env,
    cwd: opts.cwd ?? repoRoot,
    timeout: opts.timeoutMs ?? 120_000,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A root with two kernels of a small base tree (core exporting core_fn, a.ko using it) and an empty etc/depmod.d. */
export interface CliRoot {
  root: string;
  kvers: string[];
  /** ROOT/etc/depmod.d, for -C (depmod -b does not read depmod.d inside the root). */
  cfg: string;
}

export const BASE_TREE: FixtureTreeModule[] = [
  { path: 'kernel/lib/core.ko', module: { exports: [{ name: 'core_fn', crc: 0x10 }] } },
  { path: 'kernel/drivers/a.ko', module: { modinfo: [['alias', 'pci:v1d2*']], imports: [{ name: 'core_fn', crc: 0x10 }] } },
];
export const BASE_ORDER = BASE_TREE.map((m) => m.path);

export function makeCliRoot(): CliRoot {
  const root = mkdtempSync(join(tmpdir(), 'dtx-cli-'));
  const kvers = ['6.1.0-1-test', '6.12.0-1-test'];
  const cfg = join(root, 'etc', 'depmod.d');
  mkdirSync(cfg, { recursive: true });
  for (const k of kvers) writeFixtureTree(root, k, BASE_TREE, { order: BASE_ORDER });
  return { root, kvers, cfg };
}

/** Runs `body` on a fresh root (makeCliRoot) and removes the root afterwards, whatever happened. */
export function withCliRoot(body: (r: CliRoot) => void): void {
  const r = makeCliRoot();
  try {
    body(r);
  } finally {
    rmSync(r.root, { recursive: true, force: true });
  }
}
