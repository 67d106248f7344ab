// `depmod-tx weak-updates ACTION`, and the same program called as SUSE's `weak-modules2` or RHEL's
// `weak-modules` (their options, their exit status 0/1). Every action ends the same way: the links
// every kernel should have are decided from the module caches (src/txn/weak-updates.ts), made, and
// each kernel whose links changed (or that the action names) is merged once and its initrd rebuilt
// once. The commit of a transaction calls weakStepForCommit before merging.
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { WeakRules } from '../depmod/weak-updates.ts';
import { ConfigError, DepmodTxError, UsageError } from '../errors.ts';
import type { KmodBehaviour } from '../depmod/kmod-version.ts';
import type { WeakAction, WeakReport } from '../txn/weak-updates.ts';
import { formatKernelResult, type KernelResult } from '../txn/commit.ts';
import { getoptDepmod, type DepmodOptionSpec } from './depmod-args.ts';
import { EXIT, exitCodeFor } from './exit-codes.ts';
import type { ReportIo } from './merge-report.ts';

const WEAK_ACTIONS = [
  'add-modules', 'remove-modules', 'add-kernel', 'remove-kernel', 'add-kernel-modules', 'remove-kernel-modules', 'add-kmp', 'remove-kmp',
] as const;
type WeakActionName = (typeof WEAK_ACTIONS)[number];

export interface WeakCliArgs {
  root: string;
  rules?: WeakRules | undefined;
  action: WeakActionName;
  /** KVER or NVR, as the action takes it. */
  operand?: string | undefined;
  dryRun: boolean;
  json: boolean;
  initramfs: boolean;
  verbose: number;
  lockTimeoutMs: number;
  dracut?: string | undefined;
  checkProgram?: string | undefined;
}

async function readStdinLines(): Promise<string[]> {
  if (process.stdin.isTTY) return [];
  let text: string;
  try {
    text = readFileSync(0, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

/**
 * The rules when none were asked for: the setting when it names a family, else the tool being
 * replaced (suse-module-tools' weak-modules2, kmod's weak-modules), else the depmod.d search line.
 */
async function defaultRules(root: string, behaviour: KmodBehaviour): Promise<WeakRules> {
  const { searchLineRules } = await import('../txn/weak-rules.ts');
  const { readSettings } = await import('../txn/settings.ts');
  const setting = readSettings(root).weakUpdates;
  if (setting === 'suse' || setting === 'rhel') return setting;
  if (existsSync(join(root, 'usr/lib/module-init-tools/weak-modules2'))) return 'suse';
  if (['sbin/weak-modules', 'usr/sbin/weak-modules'].some((p) => existsSync(join(root, p)))) return 'rhel';
  const c = searchLineRules(root, behaviour);
  if (c.rules !== undefined) return c.rules;
  const why = `${c.why}; no weak-modules2 or weak-modules installed`;
  throw new ConfigError(join(root, 'etc/depmod.d'), `cannot tell SUSE's rules from RHEL's (${why}): give --rules suse or --rules rhel`);
}

function rpmFiles(root: string, nvr: string): string[] {
  try {
    const db = ['usr/lib/sysimage/rpm', 'var/lib/rpm'].find((d) => existsSync(join(root, d)));
    const out = execFileSync('rpm', [...(root === '/' ? [] : ['--root', root]), ...(db ? ['--dbpath', `/${db}`] : []), '-ql', '--nodigest', '--nosignature', nvr], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return out.split('\n').filter((l) => l.startsWith('/'));
  } catch (err) {
    throw new UsageError(`--add-kmp ${nvr}: no module list on stdin and rpm -ql failed: ${((err as { stderr?: string }).stderr ?? (err as Error).message).trim()}`);
  }
}

function actionOf(a: WeakCliArgs, paths: string[]): WeakAction {
  const needs = (what: string): string => {
    if (a.operand === undefined || a.operand === '') throw new UsageError(`--${a.action} needs ${what}`);
    return a.operand;
  };
  switch (a.action) {
    case 'add-kernel':
    case 'remove-kernel':
      return { kind: a.action, kver: a.operand ?? release() };
    case 'add-kernel-modules':
    case 'remove-kernel-modules':
      return { kind: a.action, kver: needs('a kernel version') };
    case 'add-kmp': {
      const nvr = needs('the KMP package (name-version-release)');
      return { kind: 'add-kmp', nvr, files: paths.length > 0 ? paths : rpmFiles(a.root, nvr) };
    }
    case 'remove-kmp':
      return { kind: 'remove-kmp', nvr: needs('the KMP package (name-version-release)'), files: paths };
    case 'add-modules':
    case 'remove-modules':
      if (a.operand !== undefined) throw new UsageError(`--${a.action} reads the module paths from stdin and takes no operand (got ${a.operand})`);
      return { kind: a.action, files: paths };
  }
}

export interface WeakOutcome {
  report: WeakReport;
  merged: KernelResult[];
  initrd: Array<{ kver: string; action: string; detail: string }>;
}

/** Decide, link, merge each changed kernel once, rebuild its initrd once. */
async function runWeak(a: WeakCliArgs, io: ReportIo): Promise<WeakOutcome> {
  const { installedKmod } = await import('../merge/installed-kmod.ts');
  const { runWeakUpdates } = await import('../txn/weak-updates.ts');
  const { validateKver } = await import('../txn/paths.ts');
  const behaviour = installedKmod(a.root).behaviour;
  const rules = a.rules ?? (await defaultRules(a.root, behaviour));
  const needsStdin = ['add-modules', 'remove-modules', 'remove-kmp', 'add-kmp', 'add-kernel-modules', 'remove-kernel-modules'].includes(a.action);
  const paths = needsStdin ? await readStdinLines() : [];
  const action = actionOf(a, paths);
  if ('kver' in action) validateKver(action.kver);
  // weak-modules returns at once when --add-modules / --remove-modules read no module.
  if ((action.kind === 'add-modules' || action.kind === 'remove-modules') && action.files.length === 0) {
    return { report: { rules, dryRun: a.dryRun, kernels: [], merge: new Map(), parsed: 0 }, merged: [], initrd: [] };
  }
  const report = await runWeakUpdates({
    root: a.root,
    rules,
    action,
    dryRun: a.dryRun,
    behaviour,
    lockTimeoutMs: a.lockTimeoutMs,
    // A dry run writes nothing, not even a cache: a kernel without one is parsed instead.
    ...(a.dryRun ? {} : { buildCache: cacheBuilder(a.root, behaviour, a.lockTimeoutMs) }),
  });
  if (a.dryRun || report.merge.size === 0) return { report, merged: [], initrd: [] };
  const { commit } = await import('../txn/commit.ts');
  const { updateMerge } = await import('../txn/merge-adapter.ts');
  const summary = await commit({ root: a.root, merge: updateMerge(), kernels: [...report.merge.keys()], extra: report.merge, lockTimeoutMs: a.lockTimeoutMs });
  for (const w of summary.warnings) io.stderr(`depmod-tx: WARNING: ${w.message}\n`);
  const { weakMergesDone } = await import('../txn/weak-updates.ts');
  await weakMergesDone(a.root, summary.kernels.filter((k) => k.status !== 'failed').map((k) => k.kver), a.lockTimeoutMs);
  const { finishKernels } = await import('./txn.ts');
  const initrd = a.initramfs ? await finishKernels(a.root, summary.kernels, io, true, { dracut: a.dracut, checkProgram: a.checkProgram }) : [];
  return { report, merged: summary.kernels, initrd };
}

/** A kernel without a module cache gets one (a full merge under its lock) before its facts are read. */
function cacheBuilder(root: string, behaviour: KmodBehaviour, lockTimeoutMs: number): (kver: string) => Promise<void> {
  return async (kver) => {
    const [{ withLock }, { kernelLockFile }, { merge }] = await Promise.all([import('../io/lock.ts'), import('../kernel/kernel-state.ts'), import('../merge/merge.ts')]);
    await withLock(kernelLockFile(root, kver), lockTimeoutMs, () => merge({ root, kver, symvers: 'auto', kmod: behaviour }));
  };
}

function hex(n: number | undefined): string | null {
  return n === undefined ? null : `0x${n.toString(16).padStart(8, '0')}`;
}

function weakJson(o: WeakOutcome): Record<string, unknown> {
  return {
    rules: o.report.rules,
    dryRun: o.report.dryRun,
    kernels: o.report.kernels.map((k) => ({
      kver: k.kver,
      notTarget: k.notTarget ?? null,
      link: k.link,
      unlink: k.unlink,
      keep: k.keep,
      rejected: k.rejected.map((r) => ({ ...r, problems: r.problems.map((p) => ({ ...p, expectedCrc: hex(p.expectedCrc), foundCrc: hex(p.foundCrc) })) })),
    })),
    merged: o.merged,
    initrd: o.initrd,
  };
}

/** Human report: changes always, refusals with -v. */
function printWeak(o: WeakOutcome, verbose: number, io: ReportIo): void {
  for (const k of o.report.kernels) {
    const would = o.report.dryRun ? 'would ' : '';
    if (k.link.length > 0 || k.unlink.length > 0) io.stdout(`${k.kver}: ${would}link ${k.link.length}, ${would}unlink ${k.unlink.length}, keep ${k.keep}\n`);
    for (const l of k.link) io.stdout(`  + ${l.link} -> ${l.target} (${l.unit})\n`);
    for (const u of k.unlink) io.stdout(`  - ${u.link} (${u.why})\n`);
    if (verbose > 0) {
      if (k.notTarget !== undefined) io.stdout(`${k.kver}: no links: ${k.notTarget}\n`);
      for (const r of k.rejected) io.stdout(`${k.kver}: not linked: ${r.unit} (from ${r.from}): ${r.reason}: ${r.detail}\n`);
    }
  }
  for (const r of o.merged) io.stdout(`${formatKernelResult(r)}\n`);
  for (const i of o.initrd) io.stdout(`${i.kver}: initrd ${i.action}: ${i.detail}\n`);
}

export async function runWeakUpdatesCommand(a: WeakCliArgs, io: ReportIo): Promise<number> {
  const o = await runWeak(a, io);
  if (a.json) io.stdout(`${JSON.stringify(weakJson(o), null, 2)}\n`);
  else printWeak(o, a.verbose, io);
  const { failureExit } = await import('./txn.ts');
  return failureExit(o.merged) ?? EXIT.ok;
}

/** The flags of `depmod-tx weak-updates` as the command table hands them over. */
export function weakArgsFromTable(t: Record<string, unknown>): WeakCliArgs {
  const chosen = WEAK_ACTIONS.filter((n) => t[n] === true);
  const flags = (names: readonly string[]): string => names.map((n) => `--${n}`).join(', ');
  if (chosen.length !== 1) throw new UsageError(`weak-updates: give exactly one of ${flags(WEAK_ACTIONS)}${chosen.length > 1 ? ` (got ${flags(chosen)})` : ''}`);
  return {
    root: t.root as string,
    rules: t.rules as WeakRules | undefined,
    action: chosen[0]!,
    operand: t.operand as string | undefined,
    dryRun: t['dry-run'] as boolean,
    json: t.json as boolean,
    initramfs: t['no-initramfs'] !== true,
    verbose: t.verbose === true ? 1 : 0,
    lockTimeoutMs: (t['lock-timeout'] as number) * 1000,
  };
}

// ---- the tools' own command lines ----

const SUSE_USAGE = `Usage:
    weak-modules2 --add-kmp kmp-name-version-release
    weak-modules2 --remove-kmp kmp-name < module-list
    weak-modules2 --add-kernel kernel-release
    weak-modules2 --remove-kernel kernel-release
    weak-modules2 --add-kernel-modules kernel-release < module-list
    weak-modules2 --remove-kernel-modules kernel-release < module-list
    weak-modules2 --verbose ...
    weak-modules2 --dry-run ...
(depmod-tx: the links are decided from depmod-tx's module caches, not by trial depmod runs)
`;

const RHEL_USAGE = `Usage: weak-modules [options] {--add-modules|--remove-modules}
weak-modules [options] {--add-kernel|--remove-kernel} {kernel-release}
--add-modules       Add a list of modules read from standard input.
--remove-modules    Remove compatibility symlinks for a list of modules read from standard input.
--add-kernel        Add compatibility symlinks for all compatible modules to the kernel.
--remove-kernel     Remove all compatibility symlinks for the kernel.
--no-initramfs      Do not generate an initramfs.
--verbose           Print what is done.
--dry-run           Do not create/remove any files.
--basedir DIR       Work on the system under DIR.
(depmod-tx: the links are decided from depmod-tx's module caches, not by trial depmod runs)
`;

/**
 * The tools' command lines through getopt_long (their `getopt -o ... --long ...`): long-only options
 * carry their long name as their "letter". Options given → values (one per time given), operands.
 */
function parseToolArgs(args: readonly string[], table: readonly DepmodOptionSpec[]): { opts: Map<string, string[]>; given: string[]; operands: string[] } {
  const r = getoptDepmod(args, table);
  if (r.error !== undefined) throw new UsageError(r.error);
  const opts = new Map<string, string[]>();
  const given: string[] = [];
  for (const o of r.options) {
    const name = table.find((t) => t.letter === o.letter)!.long;
    opts.set(name, [...(opts.get(name) ?? []), o.value ?? '']);
    given.push(name);
  }
  return { opts, given, operands: r.operands };
}

/**
 * Runs the program as SUSE's weak-modules2 or RHEL's weak-modules: their options and their exit
 * status (1 for a usage error or a failure, 0 otherwise); `--help` prints their usage.
 */
export async function runWeakFrontEnd(tool: 'weak-modules2' | 'weak-modules', args: readonly string[], io: ReportIo): Promise<number> {
  const suse = tool === 'weak-modules2';
  const usage = suse ? SUSE_USAGE : RHEL_USAGE;
  try {
    const actions = suse
      ? ['add-kernel', 'remove-kernel', 'add-kmp', 'remove-kmp', 'add-kernel-modules', 'remove-kernel-modules']
      : ['add-modules', 'remove-modules', 'add-kernel', 'remove-kernel'];
    const long = (name: string, takesValue = false): DepmodOptionSpec => ({ letter: name, long: name, takesValue });
    const table = [
      ...(suse ? [{ letter: 'v', long: 'verbose', takesValue: false }] : [long('verbose')]),
      { letter: 'h', long: 'help', takesValue: false },
      ...actions.map((n) => long(n)),
      long('dry-run'),
      ...(suse
        ? [long('debug'), long('usage'), long('logfile', true)]
        : [long('no-initramfs'), long('delete-modules'), long('basedir', true), long('dracut', true), long('check-initramfs-prog', true)]),
    ];
    const { opts, given, operands } = parseToolArgs(args, table);
    if (opts.has('help') || opts.has('usage')) {
      io.stdout(usage);
      return 0;
    }
    // One action; weak-modules2 keeps the last one given.
    const action = given.filter((n) => actions.includes(n)).pop() as WeakActionName | undefined;
    if (action === undefined) {
      throw new UsageError(suse ? 'Please specify one of the --add-* or --remove-* options' : 'give one of --add-modules, --remove-modules, --add-kernel, --remove-kernel');
    }
    const takesKernel = action === 'add-kernel' || action === 'remove-kernel';
    if (takesKernel && operands.length > 1) throw new UsageError(`Too many arguments to --${action}`);
    if (!takesKernel && suse && operands.length !== 1) throw new UsageError(`Option --${action} requires exactly one argument`);
    if (opts.has('delete-modules')) io.stderr('WARNING: --delete-modules is deprecated, no effect\n');
    const logfile = opts.get('logfile')?.at(-1) ?? (suse ? process.env.WM2_LOGFILE : undefined);
    let err = io.stderr;
    if (logfile !== undefined && logfile !== '') {
      const file = logfile.startsWith('/') ? logfile : `/var/log/${logfile}`;
      const { appendFileSync } = await import('node:fs');
      io.stderr(`${tool}: appending output to ${file}\n`);
      err = (s) => appendFileSync(file, s);
    }
    const verbose = (opts.get('verbose')?.length ?? 0) + (suse ? Number(/^[0-3]$/.test(process.env.WM2_VERBOSE ?? '') ? process.env.WM2_VERBOSE : 0) : 0);
    const root = opts.get('basedir')?.at(-1) ?? process.env.DEPMOD_TX_ROOT ?? '/';
    const out: ReportIo = { stdout: verbose > 0 ? io.stdout : () => {}, stderr: err };
    const o = await runWeak(
      {
        root: root === '' ? '/' : root,
        rules: suse ? 'suse' : 'rhel',
        action,
        operand: operands[0],
        dryRun: opts.has('dry-run'),
        json: false,
        initramfs: !opts.has('no-initramfs'),
        verbose,
        lockTimeoutMs: 300_000,
        dracut: opts.get('dracut')?.at(-1),
        checkProgram: opts.get('check-initramfs-prog')?.at(-1),
      },
      out,
    );
    printWeak(o, verbose, out);
    return o.merged.some((k) => k.status === 'failed') || o.initrd.some((i) => i.action === 'failed') ? 1 : 0;
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`${suse ? 'ERROR: ' : `${tool}: `}${e.message}\n${usage}`);
      return 1;
    }
    io.stderr(`${tool}: ${e instanceof Error ? e.message : String(e)}\n`);
    if (exitCodeFor(e) === EXIT.internal && process.env.DEPMOD_TX_DEBUG && e instanceof Error) io.stderr(`${e.stack}\n`);
    return 1;
  }
}

/**
 * The commit's weak-updates step (weak-updates is on, by `rules`): the links every kernel should
 * have, made before the merges; returns the kernels to merge because of them (with the paths that
 * changed). A failure here is reported and the commit goes on without link changes (the next commit
 * tries again).
 */
export async function weakStepForCommit(
  root: string,
  rules: WeakRules,
  lockTimeoutMs: number,
  io: ReportIo,
  json: boolean,
): Promise<{ merge: Map<string, string[]> | undefined; error?: DepmodTxError | Error }> {
  try {
    const { installedKmod } = await import('../merge/installed-kmod.ts');
    const behaviour = installedKmod(root).behaviour;
    const { runWeakUpdates } = await import('../txn/weak-updates.ts');
    const buildCache = cacheBuilder(root, behaviour, lockTimeoutMs);
    const report = await runWeakUpdates({ root, rules, action: { kind: 'recompute' }, dryRun: false, behaviour, lockTimeoutMs, buildCache });
    if (!json) {
      for (const k of report.kernels) {
        if (k.link.length === 0 && k.unlink.length === 0) continue;
        io.stdout(`weak-updates: ${k.kver}: linked ${k.link.length}, unlinked ${k.unlink.length}, kept ${k.keep} (${rules} rules)\n`);
      }
    }
    return { merge: report.merge };
  } catch (err) {
    io.stderr(`depmod-tx: weak-updates: ${err instanceof Error ? err.message : String(err)}; links left as they were\n`);
    return { merge: undefined, error: err as Error };
  }
}
