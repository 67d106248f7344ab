// The command line as data: every command, its arguments and options, each with the one text that
// --help, the man page depmod-tx(1), the bash completion and README's option table all show
// (src/cli/docs.ts renders the last three from here, so none of them can drift from --help).
// main.ts turns this table into yargs commands. Each command's implementation is imported only
// when that command runs: hooks call depmod-tx inside every package transaction, so start-up time
// is paid often.
import type { ReportIo } from './merge-report.ts';

export type OptionType = 'string' | 'boolean' | 'number';

export interface OptionSpec {
  name: string;
  alias?: string;
  type: OptionType;
  /** What the value is called in the docs (DIR, FILE, N); booleans have none. */
  value?: string;
  describe: string;
  default?: string | boolean | number;
  choices?: readonly string[];
  /** May be given several times (a plain string option: a yargs array would swallow the positionals after it). */
  repeatable?: boolean;
  required?: boolean;
  /** A file or directory name: made absolute against the working directory before the command sees it. */
  path?: boolean;
}

export interface PositionalSpec {
  name: string;
  /** How the docs call it: KVER, FILE, PATH. */
  value: string;
  describe: string;
  variadic?: boolean;
  required: boolean;
}

export type Args = Record<string, unknown>;

export interface CommandSpec {
  name: string;
  positionals: readonly PositionalSpec[];
  /** One line: the command list of --help. */
  summary: string;
  options: readonly OptionSpec[];
  /** Runs the command; resolves with its exit code. Paths (OptionSpec.path) are absolute already. */
  run: (a: Args, io: ReportIo) => Promise<number>;
  /**
   * The command reads its arguments itself, with another program's syntax (depmod: kmod's getopt),
   * before yargs is loaded (bin.ts): it has no yargs options, and its --help is that program's.
   */
  ownArguments?: true;
}

// Options several commands share: one definition each, so the text is the same everywhere.
const root: OptionSpec = {
  name: 'root', alias: 'b', type: 'string', value: 'DIR', default: '/', path: true,
  describe: 'the system to work on, like depmod -b: ROOT/lib/modules, ROOT/etc/depmod.d, ROOT/var/cache/depmod-tx',
};
const json = (what: string): OptionSpec => ({ name: 'json', type: 'boolean', default: false, describe: `print ${what} as JSON on stdout` });
const verbose = (what: string): OptionSpec => ({ name: 'verbose', alias: 'v', type: 'boolean', default: false, describe: what });
const symvers = (what: string): OptionSpec => ({ name: 'symvers', alias: 'E', type: 'string', value: 'FILE', path: true, describe: what });
const config: OptionSpec = {
  name: 'config', alias: 'C', type: 'string', value: 'PATH', repeatable: true, path: true,
  describe: 'depmod.d directory or file to read instead of the four default directories under --root (repeatable); a PATH that does not exist is a configuration error',
};
const lockTimeout: OptionSpec = {
  name: 'lock-timeout', type: 'number', value: 'SECONDS', default: 300,
  describe: "how long to wait for a kernel's lock held by another depmod-tx before giving up with exit 75",
};

const mergeOptions: readonly OptionSpec[] = [
  root,
  { name: 'outdir', alias: 'o', type: 'string', value: 'DIR', path: true, describe: 'write the modules.* files into DIR (created if missing) instead of the module directory; the module directory and the cache stay untouched' },
  symvers('Module.symvers (plain, .gz, .xz) to check symbol CRCs against (default: found under /boot, the module directory or the kernel headers)'),
  { name: 'system-map', alias: 'F', type: 'string', value: 'FILE', path: true, describe: 'System.map to check symbol names against when no Module.symvers is given (no CRCs)' },
  config,
  { name: 'strict', type: 'boolean', default: false, describe: 'exit 3 when the KABI check finds unknown symbols or CRC mismatches, 4 when some module files cannot be read (the database is written all the same)' },
  json('the merge report, every KABI finding and every module file kmod cannot read'),
  verbose('print a one-line summary of the merge on stderr'),
  { name: 'workers', type: 'number', value: 'N', describe: 'parser threads (default: one per core)' },
  lockTimeout,
  { name: 'kmod-version', type: 'string', value: 'N', describe: "write the files as kmod N's depmod does (28 to 34; default: the version of the installed depmod)" },
];

const list = (v: unknown): string[] | undefined => (v === undefined ? undefined : ([] as string[]).concat(v as string | string[]));

function mergeArgs(a: Args) {
  return {
    kver: a.kver as string,
    root: a.root as string,
    outdir: a.outdir as string | undefined,
    symvers: a.symvers as string | undefined,
    systemMap: a['system-map'] as string | undefined,
    config: list(a.config),
    check: (a.check as boolean | undefined) ?? false,
    strict: a.strict as boolean,
    json: a.json as boolean,
    verbose: a.verbose as boolean,
    workers: a.workers as number | undefined,
    lockTimeoutMs: (a['lock-timeout'] as number) * 1000,
    kmodVersion: a['kmod-version'] as string | undefined,
  };
}

const kver: PositionalSpec = { name: 'kver', value: 'KVER', required: true, describe: 'kernel version: the directory name under /lib/modules' };

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'inspect',
    positionals: [{ name: 'files', value: 'FILE', variadic: true, required: true, describe: 'module files (.ko, .ko.gz, .ko.xz, .ko.zst)' }],
    summary: 'Print what depmod reads from module files: name, modinfo, exported and imported symbols with CRCs',
    options: [json('one array of records')],
    run: async (a, io) => {
      const { runInspect } = await import('./inspect.ts');
      const { readFile } = await import('node:fs/promises');
      return runInspect(a.files as string[], { json: a.json as boolean }, { ...io, readFile: (p) => readFile(p) });
    },
  },
  {
    name: 'rebuild',
    positionals: [kver],
    summary: "Full rebuild of a kernel's module database, like depmod -a, byte-identical to kmod 30",
    options: [
      ...mergeOptions.slice(0, 5),
      { name: 'check', type: 'boolean', default: false, describe: 'check every module\'s symbol CRCs (KABI) against the kernel and the exporting modules' },
      ...mergeOptions.slice(5),
    ],
    run: async (a, io) => {
      const { runRebuild } = await import('./rebuild.ts');
      return runRebuild(mergeArgs(a), io);
    },
  },
  {
    name: 'update',
    positionals: [kver, { name: 'paths', value: 'PATH', variadic: true, required: false, describe: 'module files the transaction touched, absolute or relative to the module directory: a hint, the tree is the truth' }],
    summary: 'Incremental merge: parse only the module files that changed, then write what depmod -a would; always checks KABI',
    options: [
      ...mergeOptions,
      { name: 'full-scan', type: 'boolean', default: false, describe: 're-stat every module file instead of trusting directories whose mtime is unchanged' },
      { name: 'verify', type: 'boolean', default: false, describe: 'parse every module again after the merge and require identical files (exit 70 otherwise)' },
      { name: 'plan', type: 'boolean', default: false, describe: 'print what the merge would do (parse, drop, patch or recompute, and why) and change nothing (with --json: as JSON)' },
    ],
    run: async (a, io) => {
      const { runUpdate } = await import('./rebuild.ts');
      return runUpdate({ ...mergeArgs(a), paths: (a.paths as string[] | undefined) ?? [], fullScan: a['full-scan'] as boolean, verify: a.verify as boolean, plan: a.plan as boolean }, io);
    },
  },
  {
    name: 'depmod',
    positionals: [
      {
        name: 'args', value: 'ARG', variadic: true, required: false,
        describe: "kmod depmod's own options and operands, read as its getopt reads them: -a, -A, -b DIR, -o DIR (kmod 31+), -C PATH, -e, -E FILE, -F FILE, -n, -V, and KVER (default: the running kernel)",
      },
    ],
    summary:
      "Be the installed kmod's depmod (also when called by the name depmod): the same files, output and exit status, through the module cache; module files, -v, -w, -P, -h and anything it cannot do go to kmod's own depmod",
    options: [],
    ownArguments: true,
    run: async (a) => {
      // Reached only through main() (bin.ts hands `depmod-tx depmod ...` over before the table is
      // read); the process's descriptors, since -n writes the binary indexes to stdout.
      const [{ runDepmod }, { io }] = await Promise.all([import('./depmod.ts'), import('./io.ts')]);
      return runDepmod((a.args as string[] | undefined) ?? [], io);
    },
  },
  {
    name: 'check',
    positionals: [{ name: 'operands', value: 'KVER|FILE', variadic: true, required: true, describe: 'kernel versions and module files, in any order (a module file name ends in .ko[.gz|.xz|.zst])' }],
    summary: 'KABI dry run: would these module files load on these kernels (KVER... or --all)? Writes nothing',
    options: [
      root,
      { name: 'all', type: 'boolean', default: false, describe: 'check against every kernel installed under --root' },
      symvers("Module.symvers to check against (default: each kernel's own, as update finds it)"),
      config,
      json('the verdict per kernel with every problem'),
      verbose('add how many installed modules were compared, where their records came from, and the time taken'),
    ],
    run: async (a, io) => {
      const { runCheck } = await import('./check.ts');
      return runCheck(
        { root: a.root as string, all: a.all as boolean, json: a.json as boolean, verbose: a.verbose as boolean, symvers: a.symvers as string | undefined, config: list(a.config), operands: a.operands as string[] },
        io,
      );
    },
  },
  {
    name: 'record',
    positionals: [{ name: 'paths', value: 'PATH', variadic: true, required: false, describe: 'absolute module paths as the package manager names them; none or - reads them from stdin, one per line' }],
    summary: 'Append the module paths a transaction touched to the journal (for scripts; the shipped hooks spool them in shell, without Node.js)',
    options: [
      { name: 'op', type: 'string', value: 'OP', choices: ['add', 'remove'], required: true, describe: 'whether the package adds or removes these files' },
      { name: 'package', type: 'string', value: 'NAME', describe: 'the package the paths belong to (shown by status)' },
      { name: 'txn', type: 'string', value: 'ID', describe: 'transaction id: names the journal file (default: one per call)' },
      root,
      json('what was recorded, ignored and refused'),
      verbose('print what was recorded on stderr'),
    ],
    run: async (a, io) => {
      const { runRecord } = await import('./txn.ts');
      return runRecord(
        { root: a.root as string, json: a.json as boolean, verbose: a.verbose as boolean, op: a.op as 'add' | 'remove', package: a.package as string | undefined, txn: a.txn as string | undefined, paths: (a.paths as string[] | undefined) ?? [] },
        io,
      );
    },
  },
  {
    name: 'commit',
    positionals: [],
    summary: "Ingest what the hooks spooled, then merge every kernel with pending journal events: one merge per kernel, kernels in parallel",
    options: [
      root,
      { name: 'scan', type: 'boolean', default: false, describe: 'also merge kernels whose trees changed without a journal entry (after a plain dpkg -i)' },
      { name: 'kernel', type: 'string', value: 'KVER', repeatable: true, describe: 'only this kernel (repeatable)' },
      { name: 'source', type: 'string', value: 'NAME', describe: 'who called (rpm, dpkg, ...): repeated in the --json report' },
      {
        name: 'ready-fd', type: 'number', value: 'FD',
        describe: "write 'ready CODE' to FD and close it once every database is written; a new kernel's cache (its database just written by kmod's depmod) is built afterwards (the hooks wait on this)",
      },
      json('the result per kernel'),
      verbose('say so on stderr when nothing is pending'),
      lockTimeout,
    ],
    run: async (a, io) => {
      const { runCommit } = await import('./txn.ts');
      return runCommit(
        {
          root: a.root as string, json: a.json as boolean, verbose: a.verbose as boolean, scan: a.scan as boolean, kernels: list(a.kernel), source: a.source as string | undefined,
          lockTimeoutMs: (a['lock-timeout'] as number) * 1000, readyFd: a['ready-fd'] as number | undefined,
        },
        io,
      );
    },
  },
  {
    name: 'replay',
    positionals: [
      {
        name: 'files', value: 'FILE', variadic: true, required: true,
        describe: "a saved depmod-tx journal (JSON lines), a list of absolute module paths, one per line, or a package manager's log (dpkg.log, apt history.log, zypp history, dnf history info output, pacman.log)",
      },
    ],
    summary: "Record and commit a saved journal, a plain list of module paths (as rpm hands to file triggers) or a package manager's own log",
    options: [
      root,
      { name: 'since', type: 'string', value: 'TIME', describe: 'package manager logs: only what happened at or after TIME (YYYY-MM-DD[ HH:MM[:SS]], local time)' },
      json('what was replayed and the result per kernel'),
      lockTimeout,
    ],
    run: async (a, io) => {
      const { runReplay } = await import('./txn.ts');
      return runReplay({ root: a.root as string, json: a.json as boolean, files: a.files as string[], since: a.since as string | undefined, lockTimeoutMs: (a['lock-timeout'] as number) * 1000 }, io);
    },
  },
  {
    name: 'status',
    positionals: [],
    summary: 'Show pending journal events and the last result per kernel, KABI findings and unreadable module files included',
    options: [root, json('pending events and last results')],
    run: async (a, io) => {
      const { runStatus } = await import('./txn.ts');
      return runStatus({ root: a.root as string, json: a.json as boolean }, io);
    },
  },
  {
    name: 'weak-updates',
    positionals: [{ name: 'operand', value: 'KVER|NVR', required: false, describe: 'the kernel (--add-kernel, --remove-kernel: default the running one; --add-kernel-modules, --remove-kernel-modules) or the KMP package name-version-release (--add-kmp, --remove-kmp)' }],
    summary:
      "Link other kernels' KABI-compatible modules into each kernel's weak-updates/ by SUSE's or RHEL's rules, decided from the module caches; merge each changed kernel once. Also when called as weak-modules2 or weak-modules",
    options: [
      root,
      { name: 'rules', type: 'string', value: 'FAMILY', choices: ['suse', 'rhel'], describe: "whose rules: SUSE's weak-modules2 or RHEL's weak-modules (default: /etc/depmod-tx.conf weak-updates, else the installed tool, else the depmod.d search line)" },
      { name: 'add-modules', type: 'boolean', default: false, describe: 'RHEL: module files (paths on stdin) were installed: link them where they fit' },
      { name: 'remove-modules', type: 'boolean', default: false, describe: 'RHEL: module files (paths on stdin) were removed: drop their links' },
      { name: 'add-kernel', type: 'boolean', default: false, describe: 'a kernel was installed: link the modules that fit it' },
      { name: 'remove-kernel', type: 'boolean', default: false, describe: "a kernel is being removed: drop depmod-tx's links in it" },
      { name: 'add-kernel-modules', type: 'boolean', default: false, describe: "SUSE: a kernel subpackage added modules (paths on stdin, not needed): recompute that kernel's links" },
      { name: 'remove-kernel-modules', type: 'boolean', default: false, describe: 'SUSE: a kernel subpackage removed modules: recompute, dropping links that stopped working' },
      { name: 'add-kmp', type: 'boolean', default: false, describe: "SUSE: a KMP was installed (its files on stdin, else from rpm -ql NVR): link it into the kernels of its flavour it fits" },
      { name: 'remove-kmp', type: 'boolean', default: false, describe: 'SUSE: a KMP was removed (its files on stdin): drop its links, link an older version where one fits' },
      { name: 'dry-run', type: 'boolean', default: false, describe: 'decide and report, change nothing (no link, no merge, no initrd)' },
      json('per kernel the links made and removed, and every module not linked with the reason (unknown or mismatched symbols, the group that failed)'),
      { name: 'no-initramfs', type: 'boolean', default: false, describe: "do not rebuild the initrd of kernels whose database changed" },
      verbose('also list the kernels and modules that were not linked, and why'),
      lockTimeout,
    ],
    run: async (a, io) => {
      const { runWeakUpdatesCommand, weakArgsFromTable } = await import('./weak-updates.ts');
      return runWeakUpdatesCommand(weakArgsFromTable(a), io);
    },
  },
  {
    name: 'apt-hook',
    positionals: [],
    summary: "apt DPkg::Pre-Install-Pkgs hook (protocol version 3 on stdin) in Node.js: record the transaction's module paths (the shipped hook does it in shell)",
    options: [
      root,
      { name: 'input', type: 'string', value: 'FILE', path: true, describe: 'read the protocol text from FILE instead of stdin' },
      verbose('print what was recorded on stderr'),
    ],
    run: async (a, io) => {
      const { runAptHook } = await import('./txn.ts');
      return runAptHook({ root: a.root as string, json: false, verbose: a.verbose as boolean, input: a.input as string | undefined }, io);
    },
  },
  {
    name: 'zypp-plugin',
    positionals: [],
    summary: 'libzypp commit plugin (frames on stdin) in Node.js: one commit at the end of each zypper transaction (the shipped plugin is bash)',
    options: [root, { name: 'reply-fd', type: 'number', value: 'FD', default: 1, describe: 'file descriptor for the answers to libzypp' }],
    run: async (a, io) => {
      const { runZyppPlugin } = await import('./txn.ts');
      return runZyppPlugin({ root: a.root as string, json: false, replyFd: a['reply-fd'] as number }, io);
    },
  },
];

/** Options every command has (yargs adds them): shown once in the docs. */
export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  { name: 'help', alias: 'h', type: 'boolean', describe: 'show help (of a command: depmod-tx COMMAND --help)' },
  { name: 'version', type: 'boolean', describe: 'show the version number' },
];

/** `update <kver> [paths..]`: the yargs command string of a command. */
export function yargsCommand(c: CommandSpec): string {
  return [c.name, ...c.positionals.map((p) => (p.required ? `<${p.name}${p.variadic ? '..' : ''}>` : `[${p.name}${p.variadic ? '..' : ''}]`))].join(' ');
}

/** Makes every path option absolute: a relative --root must not make the cache belong to another path. */
export function resolvePathOptions(c: CommandSpec, a: Args, resolve: (p: string) => string): Args {
  const out: Args = { ...a };
  for (const o of c.options) {
    if (!o.path || out[o.name] === undefined) continue;
    const v = out[o.name] as string | string[];
    out[o.name] = Array.isArray(v) ? v.map(resolve) : resolve(v);
    if (o.alias !== undefined) out[o.alias] = out[o.name];
  }
  return out;
}
