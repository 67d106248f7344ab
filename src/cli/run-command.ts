// Runs one command of the table (spec.ts) with its parsed arguments: numbers checked, paths made
// absolute once, here at the edge, errors turned into exit codes (exit-codes.ts). Shared by the
// yargs front (main.ts) and the direct path bin.ts takes for the hooks' plain calls (plain-args.ts).
import { resolve } from 'node:path';
import { UsageError } from '../errors.ts';
import { EXIT, exitCodeFor } from './exit-codes.ts';
import type { ReportIo } from './merge-report.ts';
import { resolvePathOptions, type Args, type CommandSpec } from './spec.ts';

export const processIo: ReportIo = {
  stdout: (s: string): void => void process.stdout.write(s),
  stderr: (s: string): void => void process.stderr.write(s),
};

function fail(err: unknown, io: ReportIo): number {
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

/** Runs `c`; resolves with its exit code. */
export async function runCommand(c: CommandSpec, a: Args, io: ReportIo = processIo): Promise<number> {
  try {
    checkNumbers(c, a);
    return await c.run(resolvePathOptions(c, a, (p) => resolve(p)), io);
  } catch (err) {
    return fail(err, io);
  }
}
