// `depmod-tx check [--root DIR] [--symvers F] (KVER... | --all) FILE...`: a KABI dry run for module
// files not installed yet. Per kernel "OK" or the problems in depmod -e's wording; --json for tools.
// Exit 0 when the files would load on every kernel asked, 3 (EXIT.kabi) otherwise; writes nothing.
import { UsageError } from '../errors.ts';
import { checkModules, type CheckProblem, type KernelVerdict } from '../merge/check.ts';
import { assertNamedInputsExist } from '../merge/inputs.ts';
import { isModulePath } from '../module/suffixes.ts';
import { EXIT } from './exit-codes.ts';
import type { ReportIo } from './merge-report.ts';

export interface CheckArgs {
  root: string;
  symvers?: string | undefined;
  config?: string[] | undefined;
  all: boolean;
  json: boolean;
  verbose?: boolean;
  /**
   * KVERs and FILEs as typed. A module file name ends in .ko[.gz|.xz|.zst] and a kernel version
   * never does, so the split needs no separator. `kvers` / `files` may be given instead.
   */
  operands?: string[];
  kvers?: string[];
  files?: string[];
}

function hex(n: number | null): string | null {
  return n === null ? null : `0x${n.toString(16).padStart(8, '0')}`;
}

function problemJson(p: CheckProblem): Record<string, unknown> {
  return {
    kind: p.kind,
    file: p.file,
    module: p.module,
    symbol: p.symbol,
    expected: hex(p.expectedCrc),
    found: hex(p.foundCrc),
    provider: p.provider,
    message: p.message,
  };
}

export function splitOperands(a: CheckArgs): { kvers: string[]; files: string[] } {
  const kvers = [...(a.kvers ?? [])];
  const files = [...(a.files ?? [])];
  for (const op of a.operands ?? []) (isModulePath(op) ? files : kvers).push(op);
  return { kvers, files };
}

export async function runCheck(a: CheckArgs, io: ReportIo): Promise<number> {
  const { kvers, files } = splitOperands(a);
  if (files.length === 0) throw new UsageError('check: name at least one module file (.ko, .ko.xz, .ko.zst, .ko.gz)');
  if (a.all && kvers.length > 0) throw new UsageError('check: give kernel versions or --all, not both');
  if (!a.all && kvers.length === 0) throw new UsageError('check: name at least one kernel version, or --all');
  assertNamedInputsExist(a.root, { config: a.config, symvers: a.symvers });
  const verdicts = await checkModules({ root: a.root, kernels: a.all ? 'all' : kvers, files, symvers: a.symvers, config: a.config });
  if (a.all && verdicts.length === 0) throw new UsageError(`check --all: no kernel module directories under ${a.root}`);
  for (const v of verdicts) {
    if (v.records === 'parsed') io.stderr(`depmod-tx: ${v.kver}: ${v.cacheNote ?? 'no module cache'}; parsed the installed modules instead (not saved)\n`);
  }
  const ok = verdicts.every((v) => v.ok);
  if (a.json) {
    io.stdout(
      `${JSON.stringify(
        {
          command: 'check',
          ok,
          files,
          kernels: verdicts.map((v: KernelVerdict) => ({
            kver: v.kver,
            ok: v.ok,
            records: v.records,
            cacheNote: v.cacheNote ?? null,
            installedModules: v.installedModules,
            symvers: v.symvers ?? null,
            problems: v.problems.map(problemJson),
            ms: Math.round(v.ms * 10) / 10,
          })),
        },
        null,
        2,
      )}\n`,
    );
  } else {
    for (const v of verdicts) {
      const timing = a.verbose ? ` (${v.installedModules} modules from ${v.records}, ${v.ms.toFixed(1)} ms)` : '';
      if (v.ok) io.stdout(`${v.kver}: OK${timing}\n`);
      else {
        io.stdout(`${v.kver}: ${v.problems.length} problem(s)${timing}\n`);
        for (const p of v.problems) io.stdout(`  ${p.message}\n`);
      }
    }
  }
  return ok ? EXIT.ok : EXIT.kabi;
}
