// depmod-tx command line: the table in spec.ts run as commands, errors turned into exit codes
// (exit-codes.ts), and paths made absolute once, here at the edge. A command line fast-args.ts
// understands runs at once; everything else (--help, --version, usage errors) goes to yargs
// (yargs-cli.ts), loaded only then: the package managers' calls never pay for it.
import { resolve } from 'node:path';
import { UsageError } from '../errors.ts';
import { EXIT, exitCodeFor } from './exit-codes.ts';
import { fastParse } from './fast-args.ts';
import { io } from './io.ts';
import { COMMANDS, resolvePathOptions, type Args, type CommandSpec } from './spec.ts';

function fail(err: unknown): number {
  const msg = err instanceof Error ? err.message : String(err);
  const code = exitCodeFor(err);
  io.stderr(`depmod-tx: ${msg}\n`);
  if (code === EXIT.internal && process.env.DEPMOD_TX_DEBUG && err instanceof Error) io.stderr(`${err.stack}\n`);
  return code;
}

/** Number options take finite, non-negative values: NaN workers or a negative timeout is a usage error. */
function checkNumbers(c: CommandSpec, a: Args): void {
  for (const o of c.options) {
    if (o.type !== 'number' || a[o.name] === undefined) continue;
    const v = a[o.name] as number;
    if (!Number.isFinite(v) || v < 0) throw new UsageError(`--${o.name}: expected a number >= 0, got ${String(v)}`);
  }
}

export async function run(c: CommandSpec, a: Args): Promise<void> {
  let code: number;
  try {
    checkNumbers(c, a);
    code = await c.run(resolvePathOptions(c, a, (p) => resolve(p)), io);
  } catch (err) {
    code = fail(err);
  }
  process.exitCode = code;
}

export async function main(argv: string[]): Promise<void> {
  const fast = fastParse(argv, COMMANDS);
  if (fast !== undefined) return run(fast.command, fast.args);
  const { yargsMain } = await import('./yargs-cli.ts');
  await yargsMain(argv);
}
