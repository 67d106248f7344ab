// The transaction commands: record, commit, replay, status, apt-hook. They are thin: the work is in
// src/txn (journal, locks, collectors) and src/merge (one merge per kernel).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT, exitCodeFor, exitCodeForKind } from './exit-codes.ts';
import type { ReportIo } from './merge-report.ts';
import type { KernelMerge, KernelResult } from '../txn/commit.ts';
import type { Lock } from '../io/lock.ts';
import { DepmodTxError, InputError } from '../errors.ts';
import { kabiSummary, unreadableSummary } from '../merge/kabi-summary.ts';
import { splitLevel, type DepmodMessage } from '../depmod/diagnostic.ts';

/** "WARNING: KVER: text": a kernel's message in a commit's output, at depmod's level. */
function findingLine(kver: string, m: DepmodMessage): string {
  const { level, text } = splitLevel(m);
  return `${level}: ${kver}: ${text}`;
}

export interface TxnArgs {
  root: string;
  json: boolean;
  verbose?: boolean;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function runRecord(a: TxnArgs & { op: 'add' | 'remove'; package?: string; txn?: string; paths: string[] }, io: ReportIo): Promise<number> {
  const { recordEvents } = await import('../txn/record.ts');
  const { parsePathList } = await import('../txn/collect-rpm.ts');
  const paths = a.paths.length === 0 || (a.paths.length === 1 && a.paths[0] === '-') ? parsePathList(await readStdin()) : a.paths;
  const r = await recordEvents({ root: a.root, op: a.op, package: a.package ?? null, ...(a.txn ? { txn: a.txn } : {}), paths });
  for (const e of r.refused) io.stderr(`depmod-tx: refused: ${e.message}\n`);
  if (a.json) io.stdout(`${JSON.stringify({ txn: r.txn, journal: r.journal ?? null, recorded: r.recorded, ignored: r.ignored, refused: r.refused.map((e) => e.message) })}\n`);
  else if (a.verbose) io.stderr(`recorded ${r.recorded} event(s) in ${r.journal ?? '(nothing)'}; ${r.ignored} path(s) not modules; ${r.refused.length} refused\n`);
  return r.refused.length > 0 ? EXIT.usage : EXIT.ok;
}

/**
 * Rebuilds the initrd of every kernel whose database a commit changed, once. `tools` (weak-modules'
 * --dracut and --check-initramfs-prog): another dracut, or a program run with KVER instead.
 */
export async function finishKernels(
  root: string,
  results: KernelResult[],
  io: ReportIo,
  json: boolean,
  tools: { dracut?: string | undefined; checkProgram?: string | undefined } = {},
): Promise<Array<{ kver: string; action: string; detail: string }>> {
  // A change a deferred depmod call asked for is depmod's own: depmod does not rebuild initrds.
  const changed = results.filter((r) => r.status === 'merged' && r.changed && r.deferred !== true);
  if (changed.length === 0) return [];
  const { readInitrdPolicy, refreshInitrd } = await import('../txn/initrd.ts');
  const { execa } = await import('execa');
  const policy = readInitrdPolicy(root, (w) => io.stderr(`depmod-tx: WARNING: ${w}\n`));
  const which = (cmd: string): string | undefined =>
    cmd === 'dracut' && tools.dracut !== undefined
      ? tools.dracut
      : ['/usr/sbin', '/sbin', '/usr/bin', '/bin', ...(process.env.PATH ?? '').split(':')].map((d) => join(d, cmd)).find((p) => existsSync(p));
  const actions = [];
  for (const r of changed) {
    if (tools.checkProgram !== undefined) {
      const p = await execa(tools.checkProgram, [r.kver], { reject: false, stdio: ['ignore', 'inherit', 'pipe'] });
      actions.push({ kver: r.kver, action: p.exitCode === 0 ? 'checked' : 'failed', detail: `${tools.checkProgram} ${r.kver} exited ${p.exitCode ?? 1}` });
      continue;
    }
    const a = await refreshInitrd(r.kver, policy, {
      root,
      which,
      exec: async (cmd, args) => {
        const p = await execa(cmd, args, { reject: false, stdio: ['ignore', 'inherit', 'pipe'] });
        return { code: p.exitCode ?? 1, stderr: String(p.stderr ?? '') };
      },
    });
    actions.push(a);
    if (!json) io.stderr(`${r.kver}: initrd ${a.action}: ${a.detail}\n`);
  }
  return actions;
}

export async function runCommit(
  a: TxnArgs & { scan: boolean; kernels?: string[] | undefined; source?: string | undefined; lockTimeoutMs?: number; readyFd?: number | undefined },
  io: ReportIo,
): Promise<number> {
  const { updateMerge } = await import('../txn/merge-adapter.ts');
  const { validateKver } = await import('../txn/paths.ts');
  for (const k of a.kernels ?? []) validateKver(k);
  // What the hooks collected in shell (src/txn/spool.ts) joins the journal first; a spool file that
  // is torn or foreign, or a hook killed while writing one, makes this commit scan as well.
  const { ingestSpool } = await import('../txn/spool.ts');
  const spooled = await ingestSpool({ root: a.root });
  for (const e of spooled.refused) io.stderr(`depmod-tx: refused: ${e.message}\n`);
  for (const w of spooled.warnings) io.stderr(`depmod-tx: WARNING: ${w}\n`);
  for (const e of spooled.errors) io.stderr(`depmod-tx: ${e.message}\n`);
  if (spooled.scan) a = { ...a, scan: true };
  const merge = updateMerge({ onFinding: (kver, m) => io.stderr(`depmod-tx: ${findingLine(kver, m)}\n`) });
  // With someone waiting on --ready-fd (the hook): a new kernel whose database kmod's depmod has just
  // written gets its cache built after the answer (src/txn/cache-later.ts).
  let later: string[] = [];
  let pending: string[] | undefined;
  if (a.readyFd !== undefined) {
    const [{ cacheLaterKernels, markBuilding }, { readJournal }, { deferredKernels }] = await Promise.all([import('../txn/cache-later.ts'), import('../txn/journal.ts'), import('../txn/deferred.ts')]);
    pending = [...new Set((await readJournal(a.root)).events.map((e) => e.module.kver))];
    const candidates = new Set([...pending, ...deferredKernels(a.root)]);
    later = cacheLaterKernels(a.root, [...candidates].filter((k) => !a.kernels?.length || a.kernels.includes(k)));
    for (const k of later) markBuilding(a.root, k);
  }
  const only = a.kernels?.length ? a.kernels : undefined;
  // weak-updates (where on): the links every kernel should have, made before the merges, so that
  // each kernel is merged once with them (src/cli/weak-updates.ts).
  const weak = only !== undefined ? undefined : await weakUpdatesBeforeCommit(a.root, a.lockTimeoutMs ?? 300_000, io, a.json);
  const now = later.length > 0 ? (only ?? pending!).filter((k) => !later.includes(k)) : only;
  const code =
    (await commitKernels(a, merge, { kernels: now, skip: later, weak: weak?.merge }, io)) ??
    (weak?.error !== undefined ? exitCodeFor(weak.error) : spooled.errors.length > 0 ? exitCodeFor(spooled.errors[0]) : EXIT.ok);
  if (a.readyFd !== undefined) {
    const { closeSync, writeSync } = await import('node:fs');
    try {
      writeSync(a.readyFd, `ready ${code}\n`);
      closeSync(a.readyFd);
    } catch {
      /* nobody waits any more */
    }
  }
  if (later.length > 0) {
    const { clearBuilding } = await import('../txn/cache-later.ts');
    const { setPriority } = await import('node:os');
    try {
      setPriority(10);
    } catch {
      /* not permitted: full speed then */
    }
    try {
      await commitKernels({ ...a, scan: true, kernels: later }, merge, { kernels: later, skip: [], weak: undefined }, io);
    } finally {
      for (const k of later) clearBuilding(a.root, k);
    }
  }
  return code;
}

/**
 * One merge per kernel with journal events (only `which.kernels` when given) or weak-updates links
 * changed (`which.weak`), then, with `a.scan`, of every kernel whose tree changed without a record
 * (only `a.kernels` when given; never those in `which.skip`); the summary printed. The exit code of
 * a failed kernel, or undefined.
 */
async function commitKernels(
  a: TxnArgs & { scan: boolean; kernels?: string[] | undefined; source?: string | undefined; lockTimeoutMs?: number },
  merge: KernelMerge,
  which: { kernels: string[] | undefined; skip: readonly string[]; weak: Map<string, string[]> | undefined },
  io: ReportIo,
): Promise<number | undefined> {
  const { commit, formatKernelResult } = await import('../txn/commit.ts');
  const summary = await commit({
    root: a.root,
    merge,
    ...(which.kernels !== undefined ? { kernels: which.kernels } : {}),
    ...(a.lockTimeoutMs !== undefined ? { lockTimeoutMs: a.lockTimeoutMs } : {}),
    ...(which.weak !== undefined ? { extra: which.weak } : {}),
  });
  // Kernels whose trees changed without a record (a plain dpkg -i); commit() and the scan each
  // record their own results in status.json.
  if (a.scan) {
    const { mergeUnrecorded } = await import('../txn/scan.ts');
    summary.kernels.push(
      ...(await mergeUnrecorded({
        root: a.root,
        merge,
        done: [...summary.kernels.map((k) => k.kver), ...which.skip],
        ...(a.kernels?.length ? { only: a.kernels } : {}),
        ...(a.lockTimeoutMs !== undefined ? { lockTimeoutMs: a.lockTimeoutMs } : {}),
      })),
    );
  }
  for (const w of summary.warnings) io.stderr(`depmod-tx: WARNING: ${w.message}\n`);
  if (which.weak !== undefined) await weakMergesAfterCommit(a.root, which.weak, summary.kernels, a.lockTimeoutMs ?? 300_000);
  const initrd = await finishKernels(a.root, summary.kernels, io, a.json);
  if (a.json) io.stdout(`${JSON.stringify({ source: a.source ?? null, kernels: summary.kernels, initrd, warnings: summary.warnings.map((w) => w.message) }, null, 2)}\n`);
  else {
    if (summary.kernels.length === 0 && a.verbose) io.stderr('depmod-tx: nothing pending\n');
    for (const k of summary.kernels) io.stdout(`${formatKernelResult(k)}\n`);
  }
  return failureExit(summary.kernels);
}

/** The kernels merged for their weak-updates links are no longer pending (src/txn/weak-updates.ts). */
async function weakMergesAfterCommit(root: string, asked: ReadonlyMap<string, string[]>, results: readonly KernelResult[], lockTimeoutMs: number): Promise<void> {
  const done = results.filter((k) => asked.has(k.kver) && k.status !== 'failed').map((k) => k.kver);
  const { weakMergesDone } = await import('../txn/weak-updates.ts');
  await weakMergesDone(root, done, lockTimeoutMs);
}

/** The weak-updates step of a commit: only where weak-updates is on and something is pending. */
async function weakUpdatesBeforeCommit(root: string, lockTimeoutMs: number, io: ReportIo, json: boolean): Promise<{ merge: Map<string, string[]> | undefined; error?: Error } | undefined> {
  const { readSettings } = await import('../txn/settings.ts');
  if (readSettings(root).weakUpdates === 'off') return undefined;
  // A commit with nothing journaled and no weak-updates record costs a readdir and a stat, as before.
  const { journalDir } = await import('../txn/journal.ts');
  const { weakStateFile } = await import('../txn/weak-rules.ts');
  let journaled = false;
  try {
    journaled = readdirSync(journalDir(root)).some((f) => f.endsWith('.jsonl'));
  } catch {
    /* no journal directory: nothing journaled */
  }
  if (!journaled && !existsSync(weakStateFile(root))) return undefined;
  // Where the answer is no (Debian: no search line names weak-updates), nothing more is loaded.
  const [{ installedKmod }, { configuredWeakRules }] = await Promise.all([import('../merge/installed-kmod.ts'), import('../txn/weak-rules.ts')]);
  const { rules } = configuredWeakRules(root, installedKmod(root).behaviour, (w) => io.stderr(`depmod-tx: WARNING: ${w}\n`));
  if (rules === undefined) return undefined;
  if (!journaled) {
    // Nothing journaled but a call killed between its links and its merges: finish that.
    const { readWeakState } = await import('../txn/weak-updates.ts');
    if ((readWeakState(root).pending ?? []).length === 0) return undefined;
  }
  const { weakStepForCommit } = await import('./weak-updates.ts');
  return weakStepForCommit(root, rules, lockTimeoutMs, io, json);
}

/**
 * The exit code of the worst failed kernel: its database could not be written (disk full, read-only,
 * permission) → 74; a malformed module or config in its tree → 65 / 78; a missing input → 66;
 * anything else (a lock held past --lock-timeout) → 75.
 */
export function failureExit(kernels: readonly KernelResult[]): number | undefined {
  const failed = kernels.filter((k) => k.status === 'failed');
  if (failed.length === 0) return undefined;
  for (const kind of ['io', 'format', 'config', 'noinput'] as const) if (failed.some((k) => k.errorKind === kind)) return exitCodeForKind(kind);
  return EXIT.state;
}

export async function runReplay(a: TxnArgs & { files: string[]; since?: string; lockTimeoutMs?: number }, io: ReportIo): Promise<number> {
  const { replay } = await import('../txn/replay.ts');
  const { formatKernelResult } = await import('../txn/commit.ts');
  const { updateMerge } = await import('../txn/merge-adapter.ts');
  const { parseSince } = await import('../txn/logs/time.ts');
  const since = a.since === undefined ? undefined : parseSince(a.since);
  let weak: Awaited<ReturnType<typeof weakUpdatesBeforeCommit>>;
  const r = await replay({
    root: a.root,
    files: a.files,
    ...(since ? { since } : {}),
    merge: updateMerge({ onFinding: (kver, m) => io.stderr(`depmod-tx: ${findingLine(kver, m)}\n`) }),
    ...(a.lockTimeoutMs !== undefined ? { lockTimeoutMs: a.lockTimeoutMs } : {}),
    beforeCommit: async () => {
      weak = await weakUpdatesBeforeCommit(a.root, a.lockTimeoutMs ?? 300_000, io, a.json);
      return weak?.merge;
    },
  });
  for (const e of r.refused) io.stderr(`depmod-tx: refused: ${e.message}\n`);
  for (const w of [...r.warnings, ...r.commit.warnings]) io.stderr(`depmod-tx: WARNING: ${w.message}\n`);
  if (weak?.merge !== undefined) await weakMergesAfterCommit(a.root, weak.merge, r.commit.kernels, a.lockTimeoutMs ?? 300_000);
  const initrd = await finishKernels(a.root, r.commit.kernels, io, a.json);
  if (a.json) io.stdout(`${JSON.stringify({ recorded: r.recorded, ignored: r.ignored, logs: r.logs, scanned: r.scanned, kernels: r.commit.kernels, initrd }, null, 2)}\n`);
  else {
    for (const l of r.logs) {
      io.stdout(`${l.file}: ${l.format}, ${l.changes} package change(s)${since ? ` since ${since.toISOString()}` : ''}: ${l.installed.length} installed (${l.installed.join(', ') || 'none'}), ${l.gone.length} gone (${l.gone.join(', ') || 'none'})\n`);
    }
    io.stdout(`replayed ${r.recorded} event(s) (${r.ignored} non-module path(s) ignored, ${r.refused.length} refused)${r.scanned ? '; kernels with changed trees merged too' : ''}\n`);
    for (const k of r.commit.kernels) io.stdout(`${formatKernelResult(k)}\n`);
  }
  return failureExit(r.commit.kernels) ?? (r.refused.length > 0 ? EXIT.usage : weak?.error !== undefined ? exitCodeFor(weak.error) : EXIT.ok);
}

export async function runStatus(a: TxnArgs, io: ReportIo): Promise<number> {
  const { status } = await import('../txn/status.ts');
  const s = await status({ root: a.root });
  if (a.json) {
    io.stdout(`${JSON.stringify(s, null, 2)}\n`);
    return EXIT.ok;
  }
  if (s.spooled > 0) io.stdout(`pending: ${s.spooled} spool file(s) the hooks collected, for the next commit\n`);
  if (s.pending.length === 0 && s.spooled === 0) io.stdout('pending: nothing\n');
  for (const p of s.pending) io.stdout(`pending: ${p.kver}: ${p.events} event(s) (${p.add} add, ${p.remove} remove) from ${p.packages.join(', ') || 'unknown packages'}\n`);
  for (const [kver, l] of Object.entries(s.last)) {
    if (l.status === 'removed') io.stdout(`last: ${kver} at ${l.at}: kernel removed (its modules are gone): no database written, cache dropped\n`);
    else {
      const unreadable = unreadableSummary(l.unreadable ?? []);
      io.stdout(`last: ${kver} at ${l.at}: ${l.status}${l.changed ? ', database changed' : ''}${l.error ? `: ${l.error}` : ''}${l.kabi ? `, ${kabiSummary(l.kabi.against ?? 'symvers', l.kabi.unknown, l.kabi.mismatched)}` : ''}${unreadable !== '' ? `, ${unreadable}` : ''}\n`);
    }
  }
  for (const w of s.warnings) io.stderr(`depmod-tx: WARNING: ${w.message}\n`);
  return EXIT.ok;
}

/** apt DPkg::Pre-Install-Pkgs with protocol version 3: the transaction's plan on stdin. */
export async function runAptHook(a: TxnArgs & { input?: string }, io: ReportIo): Promise<number> {
  const { collectAptHook } = await import('../txn/collect-apt.ts');
  let text: string;
  try {
    text = a.input ? readFileSync(a.input, 'utf8') : await readStdin();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new InputError(a.input ?? '-', `cannot read the apt hook protocol text: ${e.code ?? e.message}`, e.code, { cause: err });
  }
  const txn = `apt-${process.pid}-${Date.now()}`;
  const r = await collectAptHook({ root: a.root, text, txn });
  for (const e of [...r.refused, ...r.errors]) io.stderr(`depmod-tx: ${e.message}\n`);
  if (a.verbose) io.stderr(`apt hook: recorded ${r.recorded} event(s), ${r.ignored} non-module path(s)\n`);
  return r.errors.length > 0 ? EXIT.format : EXIT.ok;
}

/**
 * libzypp commit plugin session (src/txn/zypp-plugin.ts): frames on stdin, answers on `replyFd`
 * (the hook gives fd 3 and points stdout at stderr, so nothing the commit or an initrd tool prints
 * can land in the protocol). Returns the exit code of the commit, for the hook's failure log.
 */
export async function runZyppPlugin(a: TxnArgs & { replyFd: number }, io: ReportIo): Promise<number> {
  const { writeSync } = await import('node:fs');
  const { serveZyppPlugin, markZyppCommit, clearZyppCommit } = await import('../txn/zypp-plugin.ts');
  const { exitCodeFor } = await import('./exit-codes.ts');
  // Loaded before the commit starts: the transaction may be the one that removes depmod-tx.
  await Promise.all([import('../txn/commit.ts'), import('../txn/merge-adapter.ts'), import('../txn/paths.ts'), import('../txn/initrd.ts'), import('execa')]);
  const zypper = process.env.ZYPP_IS_RUNNING;
  let code: number = EXIT.ok;
  // With the answers on stdout, the commit's summary lines must not go there too.
  const commitIo: ReportIo = a.replyFd === 1 ? { stdout: io.stderr, stderr: io.stderr } : io;
  await serveZyppPlugin(process.stdin, (f) => void writeSync(a.replyFd, f), {
    // Without zypper's pid the triggers cannot tell this zypper from another: no mark, they commit as usual.
    begin: () => zypper && markZyppCommit(a.root, zypper),
    commit: async () => {
      try {
        code = Math.max(code, await runCommit({ root: a.root, json: false, scan: false, source: 'zypper' }, commitIo));
      } catch (err) {
        code = Math.max(code, exitCodeFor(err));
        throw err;
      }
    },
    end: () => zypper && clearZyppCommit(a.root, zypper),
    log: (m) => io.stderr(`depmod-tx zypp plugin: ${m}\n`),
  });
  return code;
}
