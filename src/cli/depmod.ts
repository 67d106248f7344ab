// depmod-tx as the system's depmod: `depmod-tx depmod ARGS...`, and the program itself when it is
// called by the name `depmod` (the Debian package puts a front end carrying FRONT_END_MARK where
// kmod's depmod was and renames kmod's to depmod.kmod). It behaves as the installed kmod's
// `depmod ARGS`: the same files byte for byte, the same stdout, depmod's stderr lines with their
// levels, the same exit status, and it runs through the module cache, so a repeated
// `depmod -a KVER` is an incremental merge (one no-op when nothing changed).
//
// Arguments are read with depmod's own getopt rules (depmod-args.ts), in the option table of the
// kmod being emulated. What depmod-tx does not do itself is handed to kmod's depmod with the same
// arguments (logged to DEPMOD_TX_LOG, /var/log/depmod-tx.log): module file operands, -v (its long
// trace on stdout), -w, -P, kmod 34's -m, -h, anything getopt refuses or the version check rejects,
// a module directory that does not exist, unreadable -E/-F files, and any error of the merge
// (a cycle, a module file kmod's depmod itself dies on, a lock it cannot take). kmod then prints
// what it prints. A module file kmod cannot load is not one of them: its ERROR line is depmod-tx's.
//
// Where the two differ on purpose: kmod rewrites every file on each run, depmod-tx only the files
// whose bytes changed (the same bytes either way; modules.dep's mtime then says when the database
// last changed, which is what `depmod -A` compares with). Like kmod, and unlike depmod-tx's own
// commands, depmod.d is read from the host's directories (or -C) even with -b ROOT. A call with
// no cache to reuse goes to kmod's depmod as well, which does a full parse as fast: -b ROOT where
// ROOT has no depmod-tx state (initramfs-tools runs `depmod -b DESTDIR` on the initrd's tree), -o,
// and the first call for a kernel without a cache (a new kernel's postinst), after which the same
// call builds the cache in the background.
//
// `depmod-calls = defer` is decided before Node.js starts, by the system's front end
// (hooks/depmod); a merge here clears the kernel's deferred mark, as the commit would.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, appendFileSync, constants, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { release, setPriority } from 'node:os';
import { basename, join } from 'node:path';
import { splitLevel, depmodWarning, type DepmodMessage } from '../depmod/diagnostic.ts';
import { outputFiles } from '../depmod/emit.ts';
import { cacheFile, stateDirs } from '../cache/meta.ts';
import { pidAlive } from '../io/atomic.ts';
import { depfileUpToDate } from '../io/depfile-up-to-date.ts';
import { installedKmod, type KmodChoice } from '../merge/installed-kmod.ts';
import { merge, mergeIfChanged, type MergeOptions, type MergeResult } from '../merge/merge.ts';
import { depmodOptionTable, getoptDepmod, isKmodVersionNumber } from './depmod-args.ts';
import pkg from '../../package.json' with { type: 'json' };

export interface DepmodIo {
  stdout: (s: string | Uint8Array) => void;
  stderr: (s: string) => void;
}

/** What a call asks for, once its options are read. */
interface DepmodCall {
  quick: boolean;
  /** -b, made absolute as kmod does (path_make_absolute_cwd). */
  root: string | undefined;
  /** -o (kmod 31+): the output root. */
  outRoot: string | undefined;
  config: string[] | undefined;
  symvers: string | undefined;
  systemMap: string | undefined;
  errsyms: boolean;
  dryRun: boolean;
  kver: string;
}

/** Why a call goes to kmod's depmod instead; `buildCache`: then build this kernel's cache in the background. */
class HandOver {
  constructor(
    readonly reason: string,
    readonly buildCache?: { root: string; kver: string },
  ) {}
}

/** Set in the environment of the background call that builds a kernel's cache (see runCall). */
const BUILD_CACHE = 'DEPMOD_TX_BUILD_CACHE';

const NAME = 'depmod';

function absolute(p: string): string {
  return p.startsWith('/') ? p : `${process.cwd()}/${p}`;
}

/** The call, kmod's depmod's job (HandOver), or the version request; `early` gets what getopt's loop prints. */
function readCall(args: readonly string[], kmod: KmodChoice, early: DepmodMessage[]): DepmodCall | HandOver | 'version' {
  const g = getoptDepmod(args, depmodOptionTable(kmod.behaviour.major), process.env.POSIXLY_CORRECT !== undefined);
  let later: HandOver | undefined;
  const call: Omit<DepmodCall, 'kver'> = { quick: false, root: undefined, outRoot: undefined, config: undefined, symvers: undefined, systemMap: undefined, errsyms: false, dryRun: false };
  for (const o of g.options) {
    const v = o.value ?? '';
    switch (o.letter) {
      case 'a':
        break; // -a is what a call without module files does anyway
      case 'A':
        call.quick = true;
        break;
      case 'b':
        call.root = absolute(v);
        break;
      case 'o':
        call.outRoot = absolute(v);
        break;
      case 'C':
        (call.config ??= []).push(v);
        break;
      case 'E':
        call.symvers = v;
        break;
      case 'F':
        call.systemMap = v;
        break;
      case 'e':
        call.errsyms = true;
        break;
      case 'n':
        call.dryRun = true;
        break;
      case 'u':
      case 'q':
      case 'r':
      case 'm':
        // kmod 34's -m is --moduledir; before, -m is the deprecated --map.
        if (o.letter === 'm' && kmod.behaviour.major >= 34) later ??= new HandOver('-m (another module directory)');
        else early.push(depmodWarning(`Ignored deprecated option ${o.long !== undefined ? `--${o.long}` : `-${o.letter}`}`));
        break;
      case 'P':
        if (v.length !== 1) return new HandOver('-P with a value that is not one character');
        later ??= new HandOver('-P (symbol prefix)');
        break;
      case 'v':
        later ??= new HandOver("-v (depmod's verbose trace)");
        break;
      case 'w':
        later ??= new HandOver('-w (duplicate warnings)');
        break;
      case 'h':
        return new HandOver('-h');
      case 'V':
        return 'version';
    }
  }
  if (g.error !== undefined) return new HandOver(`getopt: ${g.error}`);
  if (later !== undefined) return later;
  const [kver, ...files] = g.operands;
  if (kver !== undefined && !isKmodVersionNumber(kver)) return new HandOver(`not a kernel version: ${kver}`);
  if (files.length > 0) return new HandOver('module files named on the command line');
  return { ...call, kver: kver ?? release() };
}

function handOverLog(args: readonly string[], reason: string): void {
  const file = process.env.DEPMOD_TX_LOG ?? '/var/log/depmod-tx.log';
  try {
    appendFileSync(file, `${new Date().toISOString()} depmod ${args.map((a) => JSON.stringify(a)).join(' ')}: handed to kmod's depmod: ${reason}\n`, { mode: 0o644 });
  } catch {
    /* a user without write access to the log: the call still runs */
  }
}

/** KVER.cache.building beside the cache: the pid of the background call building it. */
const buildMark = (root: string, kver: string): string => `${cacheFile(root, kver)}.building`;

/**
 * The same call again, detached and at a lower priority, to build the kernel's cache (BUILD_CACHE):
 * through $DEPMOD_TX when set (the depmod-tx the hooks run), else this program. Its pid goes to the
 * build mark, which the next calls wait on.
 */
function buildCacheInBackground(args: readonly string[], at: { root: string; kver: string }): void {
  const self = process.env.DEPMOD_TX !== undefined ? [process.env.DEPMOD_TX, 'depmod'] : [process.execPath, process.argv[1] ?? '', ...(basename(process.argv[1] ?? '') === 'depmod' ? [] : ['depmod'])];
  try {
    const child = spawn(self[0]!, [...self.slice(1), ...args], { detached: true, stdio: 'ignore', env: { ...process.env, [BUILD_CACHE]: '1' } });
    child.on('error', () => {});
    if (child.pid !== undefined) {
      setPriority(child.pid, 10);
      mkdirSync(stateDirs(at.root).cache, { recursive: true, mode: 0o755 });
      writeFileSync(buildMark(at.root, at.kver), `${child.pid}\n`, { mode: 0o644 });
    }
    child.unref();
  } catch {
    /* the next call builds it */
  }
}

/** Waits for a background build of the kernel's cache, if one runs; true when the cache exists then. */
async function backgroundBuildDone(root: string, kver: string): Promise<boolean> {
  const mark = buildMark(root, kver);
  const pidOf = (): number | undefined => {
    try {
      const pid = Number(readFileSync(mark, 'utf8'));
      return Number.isInteger(pid) && pid > 0 && pidAlive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  };
  const deadline = Date.now() + 300_000;
  while (pidOf() !== undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  return existsSync(cacheFile(root, kver));
}

function endBuild(root: string, kver: string): void {
  try {
    if (Number(readFileSync(buildMark(root, kver), 'utf8')) === process.pid) rmSync(buildMark(root, kver));
  } catch {
    /* no mark, or another build's */
  }
}

/** Runs kmod's depmod with the same arguments, by the name depmod (kmod picks its tool by argv[0]). */
function handOver(kmod: KmodChoice, args: readonly string[], reason: string, io: DepmodIo, buildCache?: { root: string; kver: string }): number {
  handOverLog(args, reason);
  if (kmod.depmod === undefined) {
    io.stderr(`${NAME}: ERROR: depmod-tx: kmod's depmod is not installed, and depmod-tx does not do this itself (${reason})\n`);
    return 1;
  }
  const r = spawnSync(kmod.depmod, [...args], { stdio: 'inherit', argv0: NAME });
  if (r.error !== undefined) {
    io.stderr(`${NAME}: ERROR: depmod-tx: cannot run ${kmod.depmod}: ${r.error.message}\n`);
    return 1;
  }
  if (buildCache !== undefined && r.status === 0) buildCacheInBackground(args, buildCache);
  return r.status ?? 1;
}

function printVersion(kmod: KmodChoice, io: DepmodIo): number {
  let features: string | undefined;
  if (kmod.depmod !== undefined) {
    const r = spawnSync(kmod.depmod, ['--version'], { encoding: 'utf8', argv0: NAME, timeout: 10_000 });
    features = r.status === 0 ? r.stdout.split('\n')[1] : undefined;
  }
  io.stdout(`kmod version ${kmod.behaviour.version}\n${features !== undefined && features !== '' ? `${features}\n` : ''}`);
  io.stdout(`depmod-tx ${pkg.version}: incremental depmod; kmod's own: ${kmod.depmod ?? 'not found'}\n`);
  return 0;
}

function isDir(p: string): boolean {
  return statSync(p, { throwIfNoEntry: false })?.isDirectory() === true;
}

function readable(p: string): boolean {
  try {
    accessSync(p, constants.R_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function print(messages: readonly DepmodMessage[], io: DepmodIo): void {
  for (const m of messages) if (splitLevel(m).level !== 'INFO') io.stderr(`${NAME}: ${m}\n`);
}

/** The text files `depmod -n` prints, in its order (the binary indexes are not written to stdout). */
function dryRunOutput(r: MergeResult, kmod: KmodChoice, moddir: string, io: DepmodIo): void {
  for (const name of outputFiles(kmod.behaviour)) {
    if (name.endsWith('.bin')) continue;
    const bytes = r.files?.get(name) ?? readFileSync(join(moddir, name));
    io.stdout(bytes);
  }
}

/** depmod -n prints the messages of the text writers only (the index writers return before reading anything). */
function printedByTextWriters(m: DepmodMessage): boolean {
  return /^ERROR: Module '.*' has devname \(/.test(m);
}

/** Prints what depmod prints before it stops here, and depmod's status then. */
function stop(messages: readonly DepmodMessage[], io: DepmodIo): number {
  print(messages, io);
  return 0;
}

async function runCall(call: DepmodCall, kmod: KmodChoice, early: DepmodMessage[], io: DepmodIo): Promise<number | HandOver> {
  const root = call.root ?? '/';
  // kmod's cfg.dirname: ROOT/lib/modules/KVER (no -b: /lib/modules/KVER).
  const moddir = `${call.root ?? ''}/lib/modules/${call.kver}`;
  if (!isDir(moddir)) return new HandOver(`${moddir} is not a directory`);
  const messages = [...early];
  // The background build of a cache merges whatever -A says (kmod's depmod has just written the database).
  if (call.quick && process.env[BUILD_CACHE] !== '1') {
    if (call.dryRun) return stop(messages, io);
    const q = depfileUpToDate(moddir);
    messages.push(...q.messages);
    if (q.current) return stop(messages, io);
  }
  // Without a cache to reuse (-o, or a -b root without depmod-tx's state, as initramfs-tools'
  // `depmod -b DESTDIR` of the initrd's tree) a merge is a full parse, and kmod's is as good.
  if (call.outRoot !== undefined) return new HandOver('-o (no cache for another output root)');
  if (root !== '/' && !isDir(stateDirs(root).cache)) return new HandOver(`no depmod-tx cache under ${root}`);
  if (call.errsyms && call.symvers === undefined && call.systemMap === undefined) {
    messages.push(depmodWarning('-e needs -E or -F'));
    call.errsyms = false;
  }
  for (const f of [call.symvers ?? call.systemMap].filter((x) => x !== undefined)) if (!readable(f)) return new HandOver(`cannot read ${f}`);
  // kmod reads the -C paths that exist (and none of its default directories then), else its
  // default directories, always on the host.
  const config = (call.config ?? [...kmod.behaviour.configDirs]).filter((p) => existsSync(p));
  // A kernel without a cache yet (a new kernel's first depmod, in its postinst): kmod writes the
  // database now, as fast as a full parse here, and the cache is built in the background while
  // the initrd is built from that database; the calls after it wait for that build, then merge.
  if (!call.dryRun && process.env[BUILD_CACHE] !== '1' && !existsSync(cacheFile(root, call.kver)) && !(await backgroundBuildDone(root, call.kver))) {
    return new HandOver('no cache of this kernel yet: kmod writes the database, depmod-tx builds its cache in the background', { root, kver: call.kver });
  }

  const options = (hints: readonly string[]): MergeOptions => ({
    kmod: kmod.behaviour,
    root,
    kver: call.kver,
    hints: [...hints],
    config,
    // Without -E/-F the kernel's own symvers is looked up, as every commit does, so that the
    // cache's no-op path serves both; nothing is printed then, as depmod prints nothing.
    symvers: call.symvers ?? (call.systemMap !== undefined ? undefined : 'auto'),
    systemMap: call.symvers === undefined ? call.systemMap : undefined,
    dryRun: call.dryRun,
  });
  const report = (r: MergeResult): number => {
    messages.push(...r.warnings.slice(0, r.kabiAt));
    if (call.errsyms) messages.push(...r.kabi.map((f) => depmodWarning(f.message)));
    messages.push(...r.warnings.slice(r.kabiAt).filter((m) => !call.dryRun || printedByTextWriters(m)));
    print(messages, io);
    if (call.dryRun) dryRunOutput(r, kmod, r.tree.moddir, io);
    return 0;
  };
  const [journal, deferred] = await Promise.all([import('../txn/journal.ts'), import('../txn/deferred.ts')]);
  // Nothing changed since the cache was written, no event of this kernel journaled and no call of
  // it deferred: answered from the cache header and stats without the lock (Fedora's kernel
  // packages and kernel-install call depmod -a for the same kernel three times in a row).
  let probe: MergeOptions["probe"];
  if (!call.dryRun && !deferred.isDeferred(root, call.kver) && !(await journal.readJournal(root)).events.some((e) => e.module.kver === call.kver)) {
    const quick = await mergeIfChanged(options([]));
    if (!('kind' in quick)) return report(quick);
    probe = quick;
  }

  try {
    // -n writes nothing: it reads the cache (replaced by rename, so never seen half-written) unlocked.
    if (call.dryRun) return report(await merge({ ...options([]), probe }));
    // The journal's events of this kernel (recorded by the apt hook or rpm's file triggers) are hints
    // for this merge and are done with it, and a depmod call deferred to the commit (hooks/depmod,
    // depmod-calls = defer) is done too: the kernel's one sequence (src/kernel/kernel-state.ts).
    const { KernelState, mergeKernel } = await import('../kernel/kernel-state.ts');
    const out = await mergeKernel(new KernelState(root, call.kver), {
      needsEvents: false,
      events: async () => (await journal.readJournal(root)).events.filter((e) => e.module.kver === call.kver),
      merge: (_moddir, hints) => merge({ ...options(hints), probe }),
      removeEvents: (evs) => journal.removeEvents(root, evs),
      clearDeferred: (started) => deferred.clearDeferred(root, call.kver, started),
    });
    if (out.kind !== 'merged') return new HandOver('the kernel has no modules left (its package was removed)');
    return report(out.result);
  } finally {
    if (process.env[BUILD_CACHE] === '1') endBuild(root, call.kver);
  }
}

/** `depmod ARGS`: the exit status depmod would give. */
export async function runDepmod(args: readonly string[], io: DepmodIo): Promise<number> {
  const kmod = installedKmod('/', { persist: false });
  const early: DepmodMessage[] = [];
  const call = readCall(args, kmod, early);
  if (call === 'version') {
    print(early, io);
    return printVersion(kmod, io);
  }
  if (call instanceof HandOver) return handOver(kmod, args, call.reason, io);
  let outcome: number | HandOver;
  try {
    outcome = await runCall(call, kmod, early, io);
  } catch (err) {
    outcome = new HandOver(`depmod-tx failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  return outcome instanceof HandOver ? handOver(kmod, args, outcome.reason, io, outcome.buildCache) : outcome;
}
