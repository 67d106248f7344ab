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
    // Repeatable, not a yargs array: an array option would swallow the KVER after it.
    .option('config', { alias: 'C', type: 'string', describe: 'depmod.d directory or file instead of the defaults (repeatable)' })
    .option('check', { type: 'boolean', default: false, describe: 'KABI check of every module' })
    .option('strict', { type: 'boolean', default: false, describe: 'exit 3 when the KABI check finds problems' })
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable summary and KABI report on stdout' })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'print a summary line' })
    .option('workers', { type: 'number', describe: 'parser threads (default: all cores)' })
    .option('kmod-version', { type: 'string', describe: 'write the format of this kmod (28 to 34; default: the installed depmod\'s)' });
}

function mergeArgs(a: Record<string, unknown>) {
  return {
    kver: a.kver as string,
    root: a.root as string,
    outdir: a.outdir as string | undefined,
    symvers: a.symvers as string | undefined,
    systemMap: a['system-map'] as string | undefined,
    config: a.config === undefined ? undefined : ([] as string[]).concat(a.config as string | string[]),
    check: a.check as boolean,
    strict: a.strict as boolean,
    json: a.json as boolean,
    verbose: a.verbose as boolean,
    workers: a.workers as number | undefined,
    kmodVersion: a['kmod-version'] as string | undefined,
  };
}

export async function main(argv: string[]): Promise<void> {
  // `depmod-tx ... | head`: a closed pipe ends the output, it is not a crash.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
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
          .option('full-scan', { type: 'boolean', default: false, describe: 're-stat every module file' })
          .option('verify', { type: 'boolean', default: false, describe: 'parse every module again and require identical output (exit 70 otherwise)' }),
      (a) =>
        run(async () => {
          const { runUpdate } = await import('./rebuild.ts');
          return runUpdate({ ...mergeArgs(a), paths: (a.paths as string[] | undefined) ?? [], fullScan: a['full-scan'] as boolean, verify: a.verify as boolean }, io);
        }),
    )
    .command(
      'check <operands..>',
      'KABI dry run: would these module files load on these kernels (KVER... or --all)? Writes nothing',
      (y) =>
        y
          .positional('operands', { type: 'string', array: true, demandOption: true, describe: 'kernel versions and module files' })
          .option('root', { alias: 'b', type: 'string', default: '/' })
          .option('all', { type: 'boolean', default: false, describe: 'every installed kernel' })
          .option('symvers', { alias: 'E', type: 'string', describe: 'Module.symvers to check against (default: discovered per kernel)' })
          .option('config', { alias: 'C', type: 'string', describe: 'depmod.d directory (repeatable)' })
          .option('json', { type: 'boolean', default: false })
          .option('verbose', { alias: 'v', type: 'boolean', default: false }),
      (a) =>
        run(async () => {
          const { runCheck } = await import('./check.ts');
          return runCheck(
            {
              root: a.root,
              all: a.all,
              json: a.json,
              verbose: a.verbose,
              symvers: a.symvers,
              config: a.config === undefined ? undefined : ([] as string[]).concat(a.config as string | string[]),
              operands: a.operands as string[],
            },
            io,
          );
        }),
    )
    .command(
      'record [paths..]',
      'Append module paths a transaction touched to the journal (paths as arguments, or - / none for stdin)',
      (y) =>
        y
          .positional('paths', { type: 'string', array: true })
          .option('op', { choices: ['add', 'remove'] as const, demandOption: true })
          .option('package', { type: 'string' })
          .option('txn', { type: 'string', describe: 'transaction id (names the journal file)' })
          .option('root', { alias: 'b', type: 'string', default: '/' })
          .option('json', { type: 'boolean', default: false })
          .option('verbose', { alias: 'v', type: 'boolean', default: false }),
      (a) =>
        run(async () => {
          const { runRecord } = await import('./txn.ts');
          return runRecord({ root: a.root, json: a.json, verbose: a.verbose, op: a.op, package: a.package, txn: a.txn, paths: (a.paths as string[] | undefined) ?? [] }, io);
        }),
    )
    .command(
      'commit',
      'Merge every kernel with pending journal events (one merge per kernel, kernels in parallel)',
      (y) =>
        y
          .option('root', { alias: 'b', type: 'string', default: '/' })
          .option('scan', { type: 'boolean', default: false, describe: 'also merge kernels whose trees changed without a journal entry (plain dpkg -i)' })
          .option('kernel', { type: 'string', describe: 'only this kernel (repeatable)' })
          .option('source', { type: 'string', describe: 'who called (for logs)' })
          .option('json', { type: 'boolean', default: false })
          .option('verbose', { alias: 'v', type: 'boolean', default: false }),
      (a) =>
        run(async () => {
          const { runCommit } = await import('./txn.ts');
          return runCommit({ root: a.root, json: a.json, verbose: a.verbose, scan: a.scan, kernels: a.kernel === undefined ? undefined : ([] as string[]).concat(a.kernel as string | string[]), source: a.source }, io);
        }),
    )
    .command(
      'replay <files..>',
      "Record and commit a saved journal, a plain list of paths (as rpm hands to file triggers), or a package manager's log (dpkg.log, apt history.log, zypp history, dnf history info output, pacman.log)",
      (y) =>
        y
          .positional('files', { type: 'string', array: true, demandOption: true })
          .option('root', { alias: 'b', type: 'string', default: '/' })
          .option('since', { type: 'string', describe: 'package manager logs: only what happened at or after this time (YYYY-MM-DD[ HH:MM[:SS]], local)' })
          .option('json', { type: 'boolean', default: false }),
      (a) =>
        run(async () => {
          const { runReplay } = await import('./txn.ts');
          return runReplay({ root: a.root, json: a.json, files: a.files as string[], since: a.since }, io);
        }),
    )
    .command(
      'status',
      'Show pending journal events and the last result per kernel',
      (y) => y.option('root', { alias: 'b', type: 'string', default: '/' }).option('json', { type: 'boolean', default: false }),
      (a) =>
        run(async () => {
          const { runStatus } = await import('./txn.ts');
          return runStatus({ root: a.root, json: a.json }, io);
        }),
    )
    .command(
      'apt-hook',
      "apt DPkg::Pre-Install-Pkgs hook (protocol version 3 on stdin): record the transaction's module paths",
      (y) =>
        y
          .option('root', { alias: 'b', type: 'string', default: '/' })
          .option('input', { type: 'string', describe: 'read the protocol text from this file instead of stdin' })
          .option('verbose', { alias: 'v', type: 'boolean', default: false }),
      (a) =>
        run(async () => {
          const { runAptHook } = await import('./txn.ts');
          return runAptHook({ root: a.root, json: false, verbose: a.verbose, input: a.input }, io);
        }),
    )
    .command(
      'zypp-plugin',
      'libzypp commit plugin (frames on stdin): one commit at the end of each zypper transaction',
      (y) =>
        y
          .option('root', { alias: 'b', type: 'string', default: '/' })
          .option('reply-fd', { type: 'number', default: 1, describe: 'file descriptor for the answers to libzypp' }),
      (a) =>
        run(async () => {
          const { runZyppPlugin } = await import('./txn.ts');
          return runZyppPlugin({ root: a.root, json: false, replyFd: a['reply-fd'] }, io);
        }),
    )
    .demandCommand(1, 'name a command')
    .parseAsync();
}
