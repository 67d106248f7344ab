// depmod-tx command line. Each command's implementation is imported only when that command runs:
// hooks call depmod-tx inside every package transaction, so start-up time is paid often.
import yargs, { type Argv } from 'yargs';
import { EXIT, EXIT_CODE_HELP, exitCodeFor } from './exit-codes.ts';

const io = {
  stdout: (s: string): void => void process.stdout.write(s),
  stderr: (s: string): void => void process.stderr.write(s),
};

function fail(err: unknown): number {
  const msg = err instanceof Error ? err.message : String(err);
  const code = exitCodeFor(err);
  io.stderr(`depmod-tx: ${msg}\n`);
  if (code === EXIT.internal && process.env.DEPMOD_TX_DEBUG && err instanceof Error) io.stderr(`${err.stack}\n`);
  return code;
}

async function run(body: () => Promise<number>): Promise<void> {
  let code: number;
  try {
    code = await body();
  } catch (err) {
    code = fail(err);
  }
  process.exitCode = code;
}

function mergeOptions<T>(y: Argv<T>) {
  return y
    .option('root', { alias: 'b', type: 'string', default: '/', describe: 'base directory, like depmod -b' })
    .option('outdir', { alias: 'o', type: 'string', describe: 'write modules.* here; the tree and cache stay untouched' })
    .option('symvers', { alias: 'E', type: 'string', describe: 'Module.symvers (plain/.gz/.xz) for the KABI check' })
    .option('system-map', { alias: 'F', type: 'string', describe: 'System.map for the KABI check (names only)' })
    .option('config', { alias: 'C', type: 'string', array: true, describe: 'depmod.d directories or files instead of the defaults' })
    .option('check', { type: 'boolean', default: false, describe: 'KABI check of every module' })
    .option('strict', { type: 'boolean', default: false, describe: 'exit 3 when the KABI check finds problems' })
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable summary and KABI report on stdout' })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'print a summary line' })
    .option('workers', { type: 'number', describe: 'parser threads (default: all cores)' });
}

function mergeArgs(a: Record<string, unknown>) {
  return {
    kver: a.kver as string,
    root: a.root as string,
    outdir: a.outdir as string | undefined,
    symvers: a.symvers as string | undefined,
    systemMap: a['system-map'] as string | undefined,
    config: a.config as string[] | undefined,
    check: a.check as boolean,
    strict: a.strict as boolean,
    json: a.json as boolean,
    verbose: a.verbose as boolean,
    workers: a.workers as number | undefined,
  };
}

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('depmod-tx')
    .usage('$0 <command> [options]\n\nIncremental kernel module database (depmod) for package transactions.')
    .epilogue(EXIT_CODE_HELP)
    .strict()
    .help()
    .version(false)
    .fail((msg, err) => {
      if (err) throw err;
      io.stderr(`depmod-tx: ${msg}\nTry 'depmod-tx --help'.\n`);
      process.exit(EXIT.usage);
    })
    .command(
      'inspect <files..>',
      'Print what depmod reads from module files (.ko, .ko.gz, .ko.xz, .ko.zst)',
      (y) => y.positional('files', { type: 'string', array: true, demandOption: true }).option('json', { type: 'boolean', default: false }),
      (a) =>
        run(async () => {
          const { runInspect } = await import('./inspect.ts');
          const { readFile } = await import('node:fs/promises');
          return runInspect(a.files as string[], { json: a.json }, { ...io, readFile: (p) => readFile(p) });
        }),
    )
    .command(
      'rebuild <kver>',
      "Full rebuild of a kernel's module database (like depmod -a), byte-identical to kmod 30",
      (y) => mergeOptions(y.positional('kver', { type: 'string', demandOption: true })),
      (a) =>
        run(async () => {
          const { runRebuild } = await import('./rebuild.ts');
          return runRebuild(mergeArgs(a), io);
        }),
    )
    .command(
      'update <kver> [paths..]',
      'Incremental merge: parse only what changed (PATHs are a hint; the tree is the truth)',
      (y) =>
        mergeOptions(y.positional('kver', { type: 'string', demandOption: true }).positional('paths', { type: 'string', array: true }))
          .option('full-scan', { type: 'boolean', default: false, describe: 're-stat every module file' }),
      (a) =>
        run(async () => {
          const { runUpdate } = await import('./rebuild.ts');
          return runUpdate({ ...mergeArgs(a), paths: (a.paths as string[] | undefined) ?? [], fullScan: a['full-scan'] as boolean }, io);
        }),
    )
    .demandCommand(1, 'name a command')
    .parseAsync();
}
