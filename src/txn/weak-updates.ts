// weak-updates across kernels, the shell half: which kernels and candidates there are, their
// facts (kernel-facts.ts), the decision (src/depmod/weak-updates.ts, pure), then the links made and
// removed and the record of what depmod-tx made. The caller merges every kernel this reports once
// and rebuilds its initrd once (src/cli/weak-updates.ts, the commit in src/cli/txn.ts).
//
// State: ROOT/var/lib/depmod-tx/weak-updates.json
//   {"version":1,
//    "links":  {"KVER": {"weak-updates/REL": "TARGET", ...}},   the links depmod-tx made, per kernel
//    "kmps":   {"N-V-R": ["/lib/modules/KVER/updates/x.ko", ...]}, KMPs named to --add-kmp (SUSE)
//    "modules": ["/lib/modules/KVER/foo/x.ko", ...],             --add-modules files outside extra/ (RHEL)
//    "pending": ["KVER", ...]}                                    links changed, merge not yet done
// A recorded link whose file no longer points at the recorded target is someone else's now and is
// left alone; a link is recorded before it is made, so a crash leaves no link depmod-tx forgot.
// Link targets are absolute: /lib/modules/KVER/... on the system itself, ROOT/lib/modules/KVER/...
// under --root ROOT (what weak-modules does with --basedir), so depmod -b ROOT can follow them.
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmdirSync, statSync, symlinkSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stateDirs } from '../cache/store.ts';
import type { KmodBehaviour } from '../depmod/kmod-version.ts';
import { diffLinks, kernelFlavor, planWeakUpdates } from '../depmod/weak-updates.ts';
import type { WeakKernel, WeakKernelPlan, WeakKmp, WeakLink, WeakModule, WeakRejection, WeakRules, WeakSource } from '../depmod/weak-updates.ts';
import { FormatError, IoError, UsageError } from '../errors.ts';
import { crashPoint, fsyncDir, writeDurable } from '../io/atomic.ts';
import { listDirIfPossible, locateModuleTree, moduleTreeGone, type ModuleTree } from '../io/tree.ts';
import { installedKernels } from '../merge/check.ts';
import { isModulePath } from '../module/suffixes.ts';
import { parseModuleFacts, readKernelFacts, type KernelFacts } from './kernel-facts.ts';
import { acquireLock, type Lock } from '../io/lock.ts';
import { weakStateFile } from './weak-rules.ts';
import { classifyModulePath, type ModulePath } from './paths.ts';

export interface WeakState {
  version: 1;
  links: Record<string, Record<string, string>>;
  kmps: Record<string, string[]>;
  modules: string[];
  /** Kernels whose links changed and that were not merged since (a call killed in between): merged by the next call. */
  pending?: string[];
}



const emptyState = (): WeakState => ({ version: 1, links: {}, kmps: {}, modules: [] });

const isStringRecord = (v: unknown): v is Record<string, string> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** The record of depmod-tx's links; missing is empty, anything malformed an error naming the file. */
export function readWeakState(root: string): WeakState {
  const file = weakStateFile(root);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw new IoError(file, `cannot read the weak-updates record: ${(err as Error).message}`, (err as NodeJS.ErrnoException).code, { cause: err });
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new FormatError(file, `not JSON (${(err as Error).message}); move it away to start over (the links it lists are then left alone)`);
  }
  const s = v as Partial<WeakState>;
  const ok =
    typeof v === 'object' && v !== null && s.version === 1 &&
    typeof s.links === 'object' && s.links !== null && Object.values(s.links).every(isStringRecord) &&
    typeof s.kmps === 'object' && s.kmps !== null && Object.values(s.kmps).every(isStrings) &&
    isStrings(s.modules) &&
    (s.pending === undefined || isStrings(s.pending));
  if (!ok) throw new FormatError(file, 'not a depmod-tx weak-updates record (version 1: links, kmps, modules)');
  return s as WeakState;
}

function writeWeakState(root: string, state: WeakState): void {
  const file = weakStateFile(root);
  const dir = dirname(file);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    writeDurable(tmp, Buffer.from(`${JSON.stringify(state, null, 1)}\n`));
    renameSync(tmp, file);
    fsyncDir(dir);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      /* not made */
    }
    throw new IoError(file, `cannot save the weak-updates record: ${(err as Error).message}`, (err as NodeJS.ErrnoException).code, { cause: err });
  }
}

export type WeakAction =
  | { kind: 'recompute' }
  | { kind: 'add-kmp' | 'remove-kmp'; nvr: string; files: readonly string[] }
  | { kind: 'add-kernel' | 'remove-kernel' | 'add-kernel-modules' | 'remove-kernel-modules'; kver: string }
  | { kind: 'add-modules' | 'remove-modules'; files: readonly string[] };

export interface WeakRunOptions {
  root: string;
  rules: WeakRules;
  action: WeakAction;
  dryRun: boolean;
  behaviour: KmodBehaviour;
  lockTimeoutMs: number;
  /** Builds a kernel's module cache when it has none (a merge under the kernel's lock). */
  buildCache?: (kver: string) => Promise<void>;
}

export interface KernelReport {
  kver: string;
  /** Why the kernel gets no links (SUSE: no System.map; RHEL: no symvers or System.map; removed). */
  notTarget: string | undefined;
  link: WeakLink[];
  unlink: Array<{ link: string; target: string; why: string }>;
  keep: number;
  rejected: WeakRejection[];
}

export interface WeakReport {
  rules: WeakRules;
  dryRun: boolean;
  kernels: KernelReport[];
  /** Kernels to merge once now (links changed, or the action named them), with the paths that changed (system namespace). */
  merge: Map<string, string[]>;
  /** Module files parsed because no cache vouched for them. */
  parsed: number;
}

/** The module directory of a kernel as package managers name it (/lib/modules/KVER or /usr/lib/modules/KVER). */
function systemModdir(tree: ModuleTree): string {
  return tree.moddir.slice(tree.root === '/' ? 0 : tree.root.replace(/\/+$/, '').length) || '/';
}

function exists(p: string): boolean {
  return statSync(p, { throwIfNoEntry: false }) !== undefined;
}

/** SUSE's targets need a System.map; RHEL's symvers.gz and a System.map (where the tools look). */
function targetProblem(rules: WeakRules, root: string, tree: ModuleTree): string | undefined {
  const map = [join(root, 'boot', `System.map-${tree.kver}`), join(tree.moddir, 'System.map')].some(exists);
  if (rules === 'suse') return map ? undefined : 'no System.map (weak-modules2 links only into installed kernels)';
  const symvers = [join(root, 'boot', `symvers-${tree.kver}.gz`), join(tree.moddir, 'symvers.gz')].some(exists);
  if (!symvers) return 'no symvers.gz (weak-modules checks only kernels with symvers and System.map)';
  return map ? undefined : 'no System.map (weak-modules checks only kernels with symvers and System.map)';
}

/** `rpm -qa` of the installed KMPs (*-kmp-*): their module files and whether they provide kmp_in_kernel. */
function rpmKmps(root: string): Map<string, { files: string[]; inKernel: boolean }> | undefined {
  // The system's database where it is, whatever rpm's configured default (Debian's rpm says ~/.rpmdb).
  const db = ['usr/lib/sysimage/rpm', 'var/lib/rpm'].find((d) => existsSync(join(root, d)));
  if (db === undefined) return undefined;
  let out: string;
  try {
    const format = '==%{NAME}-%{VERSION}-%{RELEASE}\\n[P %{PROVIDENAME}\\n][F %{FILENAMES}\\n]';
    out = execFileSync('rpm', [...(root === '/' ? [] : ['--root', root]), '--dbpath', `/${db}`, '-qa', '--nodigest', '--nosignature', '--qf', format, '*-kmp-*'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 1 << 26,
      timeout: 120_000,
    });
  } catch {
    return undefined;
  }
  const kmps = new Map<string, { files: string[]; inKernel: boolean }>();
  let cur: { files: string[]; inKernel: boolean } | undefined;
  for (const line of out.split('\n')) {
    if (line.startsWith('==')) kmps.set(line.slice(2), (cur = { files: [], inKernel: false }));
    else if (cur !== undefined && line === 'P kmp_in_kernel') cur.inKernel = true;
    else if (cur !== undefined && line.startsWith('F ') && isModulePath(line)) cur.files.push(line.slice(2));
  }
  return kmps;
}

function classifyQuietly(p: string): ModulePath | undefined {
  try {
    return classifyModulePath(p);
  } catch {
    return undefined;
  }
}

/** Applies the action to the record of KMPs and extra modules (SUSE's and RHEL's candidate lists). */
function registerAction(state: WeakState, a: WeakAction): void {
  if (a.kind === 'add-kmp') state.kmps[a.nvr] = a.files.filter(isModulePath);
  else if (a.kind === 'remove-kmp') delete state.kmps[a.nvr];
  else if (a.kind === 'add-modules' || a.kind === 'remove-modules') {
    const outside = a.files.filter((f) => classifyQuietly(f) !== undefined && !classifyQuietly(f)!.rel.startsWith('extra/'));
    const set = new Set(state.modules);
    for (const f of outside) (a.kind === 'add-modules' ? set.add(f) : set.delete(f));
    state.modules = [...set].sort();
  }
}

/** Kernels an action names: they are merged whether or not their links changed (their own modules did). */
function namedKernels(a: WeakAction): string[] {
  switch (a.kind) {
    case 'recompute':
    case 'remove-kernel':
      return [];
    case 'add-kernel':
    case 'add-kernel-modules':
    case 'remove-kernel-modules':
      return [a.kver];
    default:
      return [...new Set(a.files.map(classifyQuietly).filter((m) => m !== undefined).map((m) => m.kver))];
  }
}

/** DEPMOD_TX_TRACE=1: how long each phase of the decision took (stderr), as merges report theirs. */
function tracer(): (phase: string) => void {
  if (process.env.DEPMOD_TX_TRACE !== '1') return () => {};
  let last = performance.now();
  let cpu = process.cpuUsage();
  return (phase) => {
    const now = performance.now();
    const used = process.cpuUsage(cpu);
    process.stderr.write(`depmod-tx trace: weak-updates: ${phase} ${(now - last).toFixed(1)} ms (cpu ${((used.user + used.system) / 1000).toFixed(1)} ms)\n`);
    last = now;
    cpu = process.cpuUsage();
  };
}

export async function runWeakUpdates(opts: WeakRunOptions): Promise<WeakReport> {
  const { root, rules, action } = opts;
  const trace = tracer();
  let lock: Lock | undefined;
  if (!opts.dryRun) lock = await acquireLock(join(stateDirs(root).lib, 'weak-updates.lock'), opts.lockTimeoutMs);
  try {
    trace('lock');
    const state = readWeakState(root);
    const registryBefore = JSON.stringify([state.kmps, state.modules]);
    registerAction(state, action);
    const kvers = installedKernels(root);
    const trees = new Map<string, ModuleTree>();
    for (const k of kvers) trees.set(k, locateModuleTree(root, k));
    // Recorded links still pointing where depmod-tx pointed them; the others are no longer ours.
    const current = new Map<string, Map<string, string>>();
    for (const k of kvers) {
      const mine = new Map<string, string>();
      for (const [link, target] of Object.entries(state.links[k] ?? {})) {
        try {
          if (readlinkSync(join(trees.get(k)!.moddir, link)) === target) mine.set(link, target);
        } catch {
          /* gone or not a link: not ours any more */
        }
      }
      current.set(k, mine);
    }
    const removing = action.kind === 'remove-kernel' ? action.kver : undefined;
    const gone = new Set(kvers.filter((k) => k === removing || moduleTreeGone(trees.get(k)!.moddir)));
    const notTarget = new Map<string, string | undefined>();
    for (const k of kvers) {
      notTarget.set(k, k === removing ? 'being removed' : gone.has(k) ? 'kernel removed (no modules left)' : targetProblem(rules, root, trees.get(k)!));
    }

    // Candidates: SUSE's KMPs (recorded and rpm's), RHEL's kernels with extra/ modules.
    const sourceFile = (p: string): { kver: string; rel: string; abs: string } | undefined => {
      const mp = classifyQuietly(p);
      const tree = mp === undefined ? undefined : trees.get(mp.kver);
      // A kernel being removed keeps its KMPs' files (they belong to the KMPs): still candidates.
      if (mp === undefined || tree === undefined) return undefined;
      const abs = `${tree.moddir}/${mp.rel}`;
      return exists(abs) ? { kver: mp.kver, rel: mp.rel, abs } : undefined;
    };
    const kmpFiles = new Map<string, string[]>(Object.entries(state.kmps));
    if (rules === 'suse') {
      const fromRpm = rpmKmps(root);
      for (const [nvr, p] of fromRpm ?? []) {
        if (p.inKernel) kmpFiles.delete(nvr);
        else if (p.files.length > 0) kmpFiles.set(nvr, p.files);
      }
    }
    trace('state, kernels, candidates');
    const kmpSpecs = [...kmpFiles].map(([nvr, files]) => {
      const all = files.map(classifyQuietly).filter((m) => m !== undefined);
      const present = files.map(sourceFile).filter((f) => f !== undefined);
      const kernelsOf = [...new Set(all.map((m) => m.kver))];
      const invalid =
        kernelsOf.length > 1 ? `modules for several kernels (${kernelsOf.join(', ')})`
        : all.some((m) => /^(kernel|weak-updates)\//.test(m.rel)) ? 'modules in kernel/ or weak-updates/'
        : undefined;
      return { nvr, kver: kernelsOf[0] ?? '', present, invalid };
    }).filter((s) => s.present.length > 0);
    const hasExtra = (k: string): boolean => filesBelowAny(join(trees.get(k)!.moddir, 'extra'));

    // Facts only where a decision needs them: targets with a candidate from another kernel, and RHEL's sources.
    const needFacts = new Set<string>();
    if (rules === 'suse') {
      const fromOther = (k: string): boolean => kmpSpecs.some((s) => s.kver !== k && kernelFlavor(s.kver) === kernelFlavor(k));
      for (const k of kvers) if (notTarget.get(k) === undefined && fromOther(k)) needFacts.add(k);
    } else {
      const sources = kvers.filter(hasExtra);
      for (const k of sources) needFacts.add(k);
      const extraOutside = state.modules.map(sourceFile).filter((f) => f !== undefined);
      const fromOther = (k: string): boolean => sources.some((s) => s !== k) || extraOutside.some((f) => f.kver !== k);
      for (const k of kvers) if (notTarget.get(k) === undefined && fromOther(k)) needFacts.add(k);
    }
    const facts = new Map<string, KernelFacts>();
    let parsed = 0;
    for (const k of kvers) {
      if (!needFacts.has(k)) continue;
      const exclude = new Set([...current.get(k)!.keys()].map((l) => join(trees.get(k)!.moddir, l)));
      const build = opts.buildCache ? { buildCache: opts.buildCache } : {};
      const f = await readKernelFacts({ root, kver: k, exclude, behaviour: opts.behaviour, ...build });
      parsed += f.parsed;
      facts.set(k, f);
      trace(`facts of ${k} (${f.modules.length} modules, ${f.parsed} parsed)`);
    }
    const known = new Map<string, WeakModule>();
    for (const f of facts.values()) for (const m of f.modules) known.set(m.path, m);
    const sourcesOf = async (files: ReadonlyArray<{ kver: string; rel: string; abs: string }>): Promise<WeakSource[]> => {
      const missing = files.filter((f) => !known.has(f.abs)).map((f) => f.abs);
      if (missing.length > 0) {
        for (const [p, m] of await parseModuleFacts(missing)) known.set(p, m);
        parsed += missing.length;
      }
      return files.map((f) => ({ kver: f.kver, rel: f.rel, module: known.get(f.abs)! }));
    };
    const kmps: WeakKmp[] = [];
    if (rules === 'suse') for (const s of kmpSpecs) kmps.push({ nvr: s.nvr, kver: s.kver, files: await sourcesOf(s.present), invalid: s.invalid });
    const extraSources = rules === 'rhel' ? await sourcesOf(state.modules.map(sourceFile).filter((f) => f !== undefined)) : [];

    const kernels: WeakKernel[] = kvers.map((k) => {
      const f = facts.get(k);
      const tree = trees.get(k)!;
      // A kernel without facts has no candidate from another kernel: it keeps no link.
      const none = { modules: [], symbols: undefined, basis: 'modules' as const, config: { searches: [], overrides: [], externals: [], excludes: [] }, foreign: [] };
      return { kver: k, moddir: tree.moddir, ...(f ?? none), notTarget: notTarget.get(k) };
    });
    trace('candidate facts');
    const plans = planWeakUpdates({ rules, kernels, kmps, extraSources });
    trace('decision');

    const reports: KernelReport[] = plans.map((p) => kernelReport(p, current.get(p.kver)!, notTarget.get(p.kver)));
    const merge = new Map<string, string[]>();
    for (const k of [...namedKernels(action), ...(state.pending ?? [])]) if (trees.has(k) && !gone.has(k)) merge.set(k, []);
    for (const r of reports) {
      if (r.link.length === 0 && r.unlink.length === 0) continue;
      const sys = systemModdir(trees.get(r.kver)!);
      if (!gone.has(r.kver)) merge.set(r.kver, [...(merge.get(r.kver) ?? []), ...[...r.link, ...r.unlink].map((l) => `${sys}/${l.link}`)]);
    }
    if (!opts.dryRun) applyChanges(root, state, reports, trees, gone, registryBefore, [...merge.keys()]);
    trace('links');
    return { rules, dryRun: opts.dryRun, kernels: reports, merge, parsed };
  } finally {
    await lock?.release();
  }
}

function filesBelowAny(dir: string): boolean {
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    for (const e of listDirIfPossible(d) ?? []) {
      if (e.type === 'dir') stack.push(`${d}/${e.name}`);
      else if (isModulePath(e.name)) return true;
    }
  }
  return false;
}

function kernelReport(p: WeakKernelPlan, current: ReadonlyMap<string, string>, notTarget: string | undefined): KernelReport {
  const d = diffLinks(current, p.links);
  const why = (target: string): string => {
    if (!exists(target)) return 'module file gone';
    if (notTarget !== undefined) return notTarget;
    const r = p.rejected.find((x) => x.modules.includes(target));
    if (r !== undefined) return `${r.reason}: ${r.detail}`;
    const replaced = p.links.find((l) => l.target === target);
    return replaced !== undefined ? `now linked as ${replaced.link}` : 'no longer a candidate';
  };
  const unlink = d.remove.map((r) => ({ ...r, why: why(r.target) }));
  return { kver: p.kver, notTarget: p.notTarget, link: d.add, unlink, keep: d.keep, rejected: p.rejected };
}

/**
 * Makes the decided links real. The record first lists every link that may exist afterwards (old
 * and new), then the file system changes, then the record lists exactly what exists: a crash in
 * between leaves at most a recorded link that is missing, which the next run forgets.
 */
function applyChanges(
  root: string,
  state: WeakState,
  reports: readonly KernelReport[],
  trees: ReadonlyMap<string, ModuleTree>,
  gone: ReadonlySet<string>,
  registryBefore: string,
  toMerge: readonly string[],
): void {
  const changes = reports.some((r) => r.link.length > 0 || r.unlink.length > 0);
  const pending = [...new Set([...(state.pending ?? []), ...toMerge])].filter((k) => trees.has(k) && !gone.has(k)).sort();
  // Nothing to make, remove, register or merge: the record stays as it is (no write per commit).
  const registryChanged = registryBefore !== JSON.stringify([state.kmps, state.modules]);
  if (!changes && !registryChanged && JSON.stringify(pending) === JSON.stringify(state.pending ?? [])) return;
  const next: WeakState = { ...state, links: {}, pending };
  for (const r of reports) {
    const links = { ...(state.links[r.kver] ?? {}) };
    for (const l of r.link) links[l.link] = l.target;
    if (Object.keys(links).length > 0) next.links[r.kver] = links;
  }
  writeWeakState(root, next);
  crashPoint('weak:recorded');
  for (const r of reports) {
    const moddir = trees.get(r.kver)!.moddir;
    for (const u of r.unlink) {
      const file = join(moddir, u.link);
      try {
        if (readlinkSync(file) === u.target) unlinkSync(file);
      } catch {
        /* already gone */
      }
      pruneEmptyDirs(dirname(file), moddir);
    }
    for (const l of r.link) makeLink(join(moddir, l.link), l.target);
    if (gone.has(r.kver)) pruneEmptyDirs(join(moddir, 'weak-updates'), dirname(moddir));
  }
  crashPoint('weak:linked');
  const final: WeakState = { ...state, links: {}, pending };
  for (const r of reports) {
    const links: Record<string, string> = {};
    const moddir = trees.get(r.kver)!.moddir;
    for (const [link, target] of Object.entries(next.links[r.kver] ?? {})) {
      if (r.unlink.some((u) => u.link === link && u.target === target)) continue;
      try {
        if (readlinkSync(join(moddir, link)) === target) links[link] = target;
      } catch {
        /* not there */
      }
    }
    if (Object.keys(links).length > 0) final.links[r.kver] = links;
  }
  writeWeakState(root, final);
}

/** A symbolic link made under a temporary name and renamed into place: never a moment without one. */
function makeLink(file: string, target: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  const tmp = join(dirname(file), `.${file.slice(file.lastIndexOf('/') + 1)}.depmod-tx-${process.pid}.tmp`);
  try {
    try {
      unlinkSync(tmp);
    } catch {
      /* none left over */
    }
    symlinkSync(target, tmp);
    const st = lstatSync(file, { throwIfNoEntry: false });
    if (st !== undefined && !st.isSymbolicLink()) throw new UsageError(`${file}: a file that is not a link is in the way`);
    renameSync(tmp, file);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      /* not made */
    }
    if (err instanceof UsageError) throw err;
    throw new IoError(file, `cannot make the weak-updates link: ${(err as Error).message}`, (err as NodeJS.ErrnoException).code, { cause: err });
  }
}

/** Removes DIR and its parents while they are empty, up to and excluding STOP. */
function pruneEmptyDirs(dir: string, stop: string): void {
  for (let d = dir; d.startsWith(`${stop}/`); d = dirname(d)) {
    try {
      rmdirSync(d);
    } catch {
      return;
    }
  }
}

/**
 * The kernels a call merged after changing their links: no longer pending. Under the weak-updates
 * lock; a kernel whose links changed again meanwhile stays pending only if that call said so.
 */
export async function weakMergesDone(root: string, merged: readonly string[], lockTimeoutMs: number): Promise<void> {
  if (merged.length === 0) return;
  const lock = await acquireLock(join(stateDirs(root).lib, 'weak-updates.lock'), lockTimeoutMs);
  try {
    const state = readWeakState(root);
    const pending = (state.pending ?? []).filter((k) => !merged.includes(k));
    if (pending.length !== (state.pending ?? []).length) writeWeakState(root, { ...state, pending });
  } finally {
    await lock.release();
  }
}
