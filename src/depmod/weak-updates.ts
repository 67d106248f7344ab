// weak-updates: which modules built for one kernel are linked into another kernel's weak-updates/,
// decided from module facts instead of trial depmod runs. Pure: kernels' module facts in, the links
// each kernel should have (and why the others were refused) out; the shell (src/txn/weak-updates.ts)
// reads the caches, makes and removes the links and merges each changed kernel once.
//
// Both families' rules, as their tools apply them (docs/weak-updates.md has the sources):
//  SUSE (weak-modules2): a KMP (one package's modules, all built for one kernel) is linked into a
//    kernel of the same flavour as weak-updates/<path below its module directory>, all or nothing,
//    when none of its file names exists in that kernel's updates/, extra/ or weak-updates/ and the
//    tree with it added has no unknown symbol and no CRC mismatch anywhere (depmod -ae -E symvers of
//    a copy of the tree, livepatch/ left out); KMPs newest first, one version per KMP name (a newer
//    one replaces an older one), passes repeated while some were added and others skipped (KMPs
//    that need KMPs). Targets need a System.map.
//  RHEL (weak-modules): other kernels' extra/ modules, kernels newest first (their own rpmsort), in
//    groups made from each kernel's dependency lines (depmod -n): the one-module groups together,
//    links that fail dropped until nothing changes; then each larger group all or nothing. A link
//    is checked in a private configuration where weak-updates outranks everything, and only the
//    links' own problems count. A module file name linked once is not tried again for older
//    kernels. Targets need symvers and System.map.
// Both families' "problem" is depmod's: importVerdict (compute.ts), with the symbol's provider as
// depmod's table has it (the kernel's symbols, replaced by module exports, the last exporter in
// module array order winning: compute.ts).
//
// The decision starts from the tree without depmod-tx's own links every time (the links a kernel
// should have, not a change to the ones it has): the same answer whatever the history, and a link
// whose module went away or stopped fitting is never kept.
import { importVerdict, symbolLookupName, type KabiBasis, type KabiKind } from './compute.ts';
import type { DepmodConfig } from './config.ts';
import { hashSuperfast, MODULES_BY_NAME_BUCKETS } from './kmod-hash.ts';
import { compareKernelsNewestFirst, compareNvrNewestFirst, splitNvr } from './rpm-version.ts';
import { existingModuleWins } from './search.ts';

export type WeakRules = 'suse' | 'rhel';

export interface WeakImport {
  name: string;
  crc: number;
  weak: boolean;
}

/** What the decision needs of one module file. */
export interface WeakModule {
  /** Absolute path (a link's facts carry the link's path in the kernel it is linked into). */
  path: string;
  /** kmod's module name. */
  name: string;
  exports: ReadonlyMap<string, number>;
  imports: readonly WeakImport[];
  /** modules.order position (1 when not listed): with the name, the module array order (compute.ts moduleArrayOrder). */
  sortIdx: number;
}

export interface WeakKernel {
  kver: string;
  /** Absolute module directory (ROOT/lib/modules/KVER), as depmod spells cfg.dirname. */
  moddir: string;
  /** The search winners of the tree without depmod-tx's links (other files in weak-updates/ included). */
  modules: readonly WeakModule[];
  /** The kernel's own symbols and CRCs (Module.symvers); undefined without them. */
  symbols: ReadonlyMap<string, number> | undefined;
  basis: KabiBasis;
  /** depmod.d as this kernel's depmod reads it: which of two same-named modules wins (SUSE). */
  config: DepmodConfig;
  /** Paths (relative to moddir) of every non-directory under updates/, extra/ and weak-updates/ that depmod-tx did not make. */
  foreign: readonly string[];
  /** Why links may not go into this kernel (SUSE: no System.map; RHEL: no symvers or System.map), or undefined. */
  notTarget?: string | undefined;
}

/** A module file of a KMP or another kernel's extra/, with its path relative to its own module directory. */
export interface WeakSource {
  kver: string;
  rel: string;
  module: WeakModule;
}

/** SUSE: one installed KMP package. */
export interface WeakKmp {
  /** name-version-release */
  nvr: string;
  /** The kernel its modules are built for (the module directory they are installed in). */
  kver: string;
  files: readonly WeakSource[];
  /** Why it is no KMP weak-modules2 links (modules of several kernels, or in kernel/ or weak-updates/), or undefined. */
  invalid?: string | undefined;
}

export interface WeakInput {
  rules: WeakRules;
  kernels: readonly WeakKernel[];
  /** SUSE: the installed KMPs. */
  kmps?: readonly WeakKmp[];
  /** RHEL: modules given to --add-modules that lie outside extra/ (extra/ modules are found in each kernel's facts). */
  extraSources?: readonly WeakSource[];
}

export interface WeakLink {
  /** Relative to the target's module directory: weak-updates/... */
  link: string;
  /** Absolute path of the module file the link points to. */
  target: string;
  /** Kernel the module was built for. */
  from: string;
  /** The KMP (SUSE) or group (RHEL: its first module's path) it was accepted with. */
  unit: string;
}

export interface WeakProblem {
  kind: KabiKind;
  /** Path of the module as depmod would print it (a link's path for linked modules). */
  module: string;
  symbol: string;
  expectedCrc: number;
  foundCrc?: number;
  /** 'vmlinux' or the exporting module's name (crc-mismatch). */
  provider?: string;
}

export type WeakRefusal =
  | 'kabi' // unknown symbols or CRC mismatches (problems)
  | 'file-name' // SUSE: a file of that name is in updates/, extra/ or weak-updates/
  | 'path-taken' // a file depmod-tx did not make is where the link would go
  | 'duplicate' // another accepted link has the same module name
  | 'invalid-kmp' // SUSE: not a KMP weak-modules2 links
  | 'group'; // RHEL: another module of the group failed

export interface WeakRejection {
  unit: string;
  from: string;
  modules: string[];
  reason: WeakRefusal;
  detail: string;
  problems: WeakProblem[];
}

export interface WeakKernelPlan {
  kver: string;
  /** Why this kernel gets no links, when it gets none for that reason. */
  notTarget: string | undefined;
  links: WeakLink[];
  rejected: WeakRejection[];
}

/** Problems kept per rejection: enough to say why, bounded for a tree-wide failure. */
const MAX_PROBLEMS = 20;

/**
 * The flavour of a kernel release: what follows the last '-'-separated field that starts with a
 * digit ("5.14.21-150500.55.39-default" → "default", as weak-modules2's ${krel##*-}; Debian's
 * "6.1.0-53-cloud-amd64" → "cloud-amd64", where ${krel##*-} would say "amd64" for both flavours).
 */
export function kernelFlavor(kver: string): string {
  const parts = kver.split('-');
  let last = -1;
  parts.forEach((p, i) => {
    if (/^[0-9]/.test(p)) last = i;
  });
  return parts.slice(last + 1).join('-');
}

/** Where a module of another kernel is linked: SUSE keeps its path below the module directory, RHEL drops the first directory (extra/). */
export function weakLinkPath(rules: WeakRules, rel: string): string {
  if (rules === 'suse') return `weak-updates/${rel}`;
  const slash = rel.indexOf('/');
  return `weak-updates/${slash < 0 ? rel : rel.slice(slash + 1)}`;
}

const fileName = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

/** The part of a path depmod compares priorities on (search.ts stemOf): directory + '/' + modname's length. */
function stem(path: string, name: string): string {
  const slash = path.lastIndexOf('/');
  return path.slice(0, slash + 1 + name.length);
}

interface Owner {
  crc: number;
  kernel: boolean;
  provider: string;
}

/**
 * A kernel's tree as depmod sees it, with links laid over it. Built once per kernel (symbols
 * interned, every import of every module in flat arrays, each symbol's provider and importers);
 * each trial recomputes only the symbols whose providers the links change and the modules that
 * import them.
 */
class TrialTree {
  readonly kernel: WeakKernel;
  readonly base: WeakModule[];
  private readonly symId = new Map<string, number>();
  private readonly symName: string[] = [];
  private readonly rank: Float64Array;
  private readonly byName = new Map<string, number>();
  // Imports of module i: impSym/impCrc/impWeak[impStart[i] .. impStart[i + 1]].
  private readonly impStart: Uint32Array;
  private readonly impSym: Int32Array;
  private readonly impCrc: Float64Array;
  private readonly impWeak: Uint8Array;
  // Per symbol: the base tree's provider (module index, -1 kernel or none), its CRC, whether the kernel has it.
  private readonly ownerMod: Int32Array;
  private readonly ownerCrc: Float64Array;
  private readonly ownerSet: Uint8Array;
  // Per symbol: the modules that export it and those that import it (CSR: start, list).
  private readonly expByStart: Uint32Array;
  private readonly expBy: Int32Array;
  private readonly impByStart: Uint32Array;
  private readonly impBy: Int32Array;
  private readonly baseProblemCounts: Int32Array;
  readonly baseProblemCount: number;
  private readonly sortedKeys: ArrayKey[];
  private readonly linkWins: (base: WeakModule, link: WeakModule) => boolean;

  constructor(kernel: WeakKernel, rules: WeakRules) {
    this.kernel = kernel;
    // weak-modules2 leaves livepatch/ out of its copy of the tree (bsc#1250655).
    this.base = rules === 'suse' ? kernel.modules.filter((m) => !m.path.startsWith(`${kernel.moddir}/livepatch/`)) : [...kernel.modules];
    const n = this.base.length;
    const keyed = this.base.map((m, i) => ({ i, key: arrayKey(m) }));
    keyed.sort((a, b) => compareKeys(a.key, b.key));
    this.sortedKeys = keyed.map((k) => k.key);
    this.rank = new Float64Array(n);
    keyed.forEach((k, r) => (this.rank[k.i] = r));
    let imports = 0;
    let exports = 0;
    for (const m of this.base) {
      imports += m.imports.length;
      exports += m.exports.size;
    }
    this.impStart = new Uint32Array(n + 1);
    this.impSym = new Int32Array(imports);
    this.impCrc = new Float64Array(imports);
    this.impWeak = new Uint8Array(imports);
    const impMod = new Int32Array(imports);
    const expMod = new Int32Array(exports);
    const expSym = new Int32Array(exports);
    const expCrc = new Float64Array(exports);
    let k = 0;
    let e = 0;
    this.base.forEach((m, i) => {
      this.byName.set(m.name, i);
      this.impStart[i] = k;
      for (const imp of m.imports) {
        impMod[k] = i;
        this.impSym[k] = this.intern(symbolLookupName(imp.name, ''));
        this.impCrc[k] = imp.crc;
        this.impWeak[k++] = imp.weak ? 1 : 0;
      }
      for (const [name, crc] of m.exports) {
        expMod[e] = i;
        expSym[e] = this.intern(name);
        expCrc[e++] = crc;
      }
    });
    this.impStart[n] = k;
    const symbols = this.symName.length;
    // depmod's table: the kernel's symbols, each replaced by a module export, the last exporter in array order winning.
    this.ownerMod = new Int32Array(symbols).fill(-1);
    this.ownerCrc = new Float64Array(symbols);
    this.ownerSet = new Uint8Array(symbols);
    for (let id = 0; id < symbols; id++) {
      const crc = kernel.symbols?.get(this.symName[id]!);
      if (crc !== undefined) {
        this.ownerCrc[id] = crc;
        this.ownerSet[id] = 1;
      }
    }
    for (let x = 0; x < exports; x++) {
      const id = expSym[x]!;
      const cur = this.ownerMod[id]!;
      if (cur < 0 || this.rank[expMod[x]!]! > this.rank[cur]!) {
        this.ownerMod[id] = expMod[x]!;
        this.ownerCrc[id] = expCrc[x]!;
        this.ownerSet[id] = 1;
      }
    }
    [this.expByStart, this.expBy] = csr(symbols, exports, (x) => expSym[x]!, (x) => expMod[x]!);
    [this.impByStart, this.impBy] = csr(symbols, imports, (x) => this.impSym[x]!, (x) => impMod[x]!);
    this.baseProblemCounts = new Int32Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      let c = 0;
      for (let x = this.impStart[i]!; x < this.impStart[i + 1]!; x++) {
        const id = this.impSym[x]!;
        if (this.verdict(x, this.ownerSet[id] === 1, this.ownerCrc[id]!, this.ownerMod[id]! < 0) !== undefined) c++;
      }
      this.baseProblemCounts[i] = c;
      total += c;
    }
    this.baseProblemCount = total;
    // SUSE's tree follows the system's search lines; RHEL checks links in a configuration where
    // weak-updates outranks every directory ("search external extra built-in weak-updates",
    // weak-updates as the external directory), so a link always wins there.
    this.linkWins =
      rules === 'rhel'
        ? () => true
        : (b, l) => {
            const bs = stem(b.path, b.name);
            const ls = stem(l.path, l.name);
            const afterBase = !existingModuleWins(kernel.config, kernel.moddir, bs, ls);
            const beforeBase = existingModuleWins(kernel.config, kernel.moddir, ls, bs);
            // Equal priorities: the one walked first stays, which only the directory order knows;
            // the link is not counted on then.
            return afterBase && beforeBase;
          };
  }

  private intern(name: string): number {
    let id = this.symId.get(name);
    if (id === undefined) {
      id = this.symName.length;
      this.symId.set(name, id);
      this.symName.push(name);
    }
    return id;
  }

  private verdict(x: number, has: boolean, crc: number, kernel: boolean): KabiKind | undefined {
    if (this.impWeak[x] === 1) return undefined;
    return importVerdict(this.kernel.basis, { crc: this.impCrc[x]!, weak: false }, has ? crc : undefined, kernel);
  }

  private problem(module: string, symbol: string, expected: number, kind: KabiKind, o: Owner | undefined): WeakProblem {
    return kind === 'unknown'
      ? { kind, module, symbol, expectedCrc: expected }
      : { kind, module, symbol, expectedCrc: expected, foundCrc: o!.crc, provider: o!.provider };
  }

  /** The rank an extra module would have in the module array (between the base modules' ranks). */
  private rankOf(m: WeakModule): number {
    const key = arrayKey(m);
    let lo = 0;
    let hi = this.sortedKeys.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareKeys(this.sortedKeys[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo - 0.5;
  }

  /**
   * The tree with `links` added: which links take part (a link that loses to a base module of the
   * same name is not loaded), and the problems of the links (scope 'links') or of every module
   * (scope 'all').
   */
  evaluate(links: readonly WeakModule[], scope: 'links' | 'all'): { winners: WeakModule[]; problems: WeakProblem[] } {
    const shadowed = new Set<number>();
    const winners: WeakModule[] = [];
    for (const l of links) {
      const b = this.byName.get(l.name);
      if (b === undefined) winners.push(l);
      else if (this.linkWins(this.base[b]!, l)) {
        winners.push(l);
        shadowed.add(b);
      }
    }
    // Symbols whose provider may change: those of shadowed modules and of the links.
    const changed = new Map<string, Owner | undefined>();
    const linkExporters = new Map<string, Array<{ m: WeakModule; rank: number }>>();
    for (const b of shadowed) for (const sym of this.base[b]!.exports.keys()) changed.set(sym, undefined);
    for (const w of winners) {
      const rank = this.rankOf(w);
      for (const sym of w.exports.keys()) {
        changed.set(sym, undefined);
        const list = linkExporters.get(sym);
        if (list === undefined) linkExporters.set(sym, [{ m: w, rank }]);
        else list.push({ m: w, rank });
      }
    }
    for (const sym of changed.keys()) {
      let best: { owner: Owner; rank: number } | undefined;
      const id = this.symId.get(sym);
      if (id !== undefined) {
        for (let x = this.expByStart[id]!; x < this.expByStart[id + 1]!; x++) {
          const i = this.expBy[x]!;
          if (shadowed.has(i)) continue;
          if (best !== undefined && this.rank[i]! <= best.rank) continue;
          best = { owner: { crc: this.base[i]!.exports.get(sym)!, kernel: false, provider: this.base[i]!.name }, rank: this.rank[i]! };
        }
      }
      for (const e of linkExporters.get(sym) ?? []) {
        if (best === undefined || e.rank > best.rank) best = { owner: { crc: e.m.exports.get(sym)!, kernel: false, provider: e.m.name }, rank: e.rank };
      }
      const k = this.kernel.symbols?.get(sym);
      changed.set(sym, best?.owner ?? (k === undefined ? undefined : { crc: k, kernel: true, provider: 'vmlinux' }));
    }
    const ownerOf = (sym: string): Owner | undefined => {
      if (changed.has(sym)) return changed.get(sym);
      const id = this.symId.get(sym);
      if (id !== undefined) {
        if (this.ownerSet[id] !== 1) return undefined;
        const mod = this.ownerMod[id]!;
        return { crc: this.ownerCrc[id]!, kernel: mod < 0, provider: mod < 0 ? 'vmlinux' : this.base[mod]!.name };
      }
      const k = this.kernel.symbols?.get(sym);
      return k === undefined ? undefined : { crc: k, kernel: true, provider: 'vmlinux' };
    };
    const problems: WeakProblem[] = [];
    for (const w of winners) {
      for (const imp of w.imports) {
        if (imp.weak) continue;
        const o = ownerOf(symbolLookupName(imp.name, ''));
        const v = importVerdict(this.kernel.basis, imp, o?.crc, o?.kernel === true);
        if (v !== undefined) problems.push(this.problem(w.path, imp.name, imp.crc, v, o));
      }
    }
    if (scope === 'all') {
      const recheck = new Set<number>();
      for (const sym of changed.keys()) {
        const id = this.symId.get(sym);
        if (id === undefined) continue;
        for (let x = this.impByStart[id]!; x < this.impByStart[id + 1]!; x++) if (!shadowed.has(this.impBy[x]!)) recheck.add(this.impBy[x]!);
      }
      for (let i = 0; i < this.base.length; i++) {
        if (shadowed.has(i) || (this.baseProblemCounts[i] === 0 && !recheck.has(i))) continue;
        const m = this.base[i]!;
        for (let x = this.impStart[i]!; x < this.impStart[i + 1]!; x++) {
          const sym = this.symName[this.impSym[x]!]!;
          const o = ownerOf(sym);
          const v = this.verdict(x, o !== undefined, o?.crc ?? 0, o?.kernel === true);
          if (v !== undefined) problems.push(this.problem(m.path, m.imports[x - this.impStart[i]!]!.name, this.impCrc[x]!, v, o));
        }
      }
    }
    return { winners, problems };
  }
}

/** Compressed rows: for each key, the values of the entries with that key. */
function csr(keys: number, entries: number, keyOf: (x: number) => number, valueOf: (x: number) => number): [Uint32Array, Int32Array] {
  const start = new Uint32Array(keys + 1);
  for (let x = 0; x < entries; x++) start[keyOf(x) + 1]!++;
  for (let k = 0; k < keys; k++) start[k + 1]! += start[k]!;
  const fill = start.slice(0, keys);
  const list = new Int32Array(entries);
  for (let x = 0; x < entries; x++) list[fill[keyOf(x)]!++] = valueOf(x);
  return [start, list];
}

interface ArrayKey {
  sortIdx: number;
  bucket: number;
  name: string;
}

/** compute.ts moduleArrayOrder's key: modules.order position, kmod's name-hash bucket, then the name. */
function arrayKey(m: WeakModule): ArrayKey {
  return { sortIdx: m.sortIdx, bucket: hashSuperfast(Buffer.from(m.name, 'utf8')) & (MODULES_BY_NAME_BUCKETS - 1), name: m.name };
}

function compareKeys(a: ArrayKey, b: ArrayKey): number {
  return a.sortIdx - b.sortIdx || a.bucket - b.bucket || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

/** A module of another kernel as it appears through its link in `kernel`. */
function linked(kernel: WeakKernel, rules: WeakRules, s: WeakSource): { link: string; module: WeakModule } {
  const link = weakLinkPath(rules, s.rel);
  return { link, module: { ...s.module, path: `${kernel.moddir}/${link}`, sortIdx: 1 } };
}

interface Overlay {
  link: string;
  module: WeakModule;
  source: WeakSource;
  unit: string;
}

function rejection(
  unit: string,
  from: string,
  sources: readonly WeakSource[],
  reason: WeakRefusal,
  detail: string,
  problems: WeakProblem[] = [],
): WeakRejection {
  return { unit, from, modules: sources.map((s) => s.module.path), reason, detail, problems: problems.slice(0, MAX_PROBLEMS) };
}

function describeProblems(problems: readonly WeakProblem[]): string {
  const first = problems[0];
  if (first === undefined) return '';
  const what =
    first.kind === 'unknown' ? `${first.module} needs unknown symbol ${first.symbol}` : `${first.module} disagrees about version of symbol ${first.symbol}`;
  return problems.length > 1 ? `${what} (and ${problems.length - 1} more)` : what;
}

/** The links every kernel should have, and why other candidates were refused. */
export function planWeakUpdates(input: WeakInput): WeakKernelPlan[] {
  return input.kernels.map((k) => (input.rules === 'suse' ? planSuse(k, input) : planRhel(k, input)));
}

function planSuse(kernel: WeakKernel, input: WeakInput): WeakKernelPlan {
  const plan: WeakKernelPlan = { kver: kernel.kver, notTarget: kernel.notTarget, links: [], rejected: [] };
  if (kernel.notTarget !== undefined) return plan;
  const flavor = kernelFlavor(kernel.kver);
  const kmps = [...(input.kmps ?? [])]
    .filter((p) => p.kver !== kernel.kver && kernelFlavor(p.kver) === flavor && p.files.length > 0)
    .sort((a, b) => compareNvrNewestFirst(a.nvr, b.nvr));
  const tree = new TrialTree(kernel, 'suse');
  const foreignNames = new Set(kernel.foreign.map(fileName));
  const accepted = new Map<string, { kmp: WeakKmp; overlays: Overlay[] }>();
  const last = new Map<string, WeakRejection>();
  const overlaysOf = (kmp: WeakKmp): Overlay[] =>
    kmp.files.map((s) => ({ ...linked(kernel, 'suse', s), source: s, unit: kmp.nvr }));
  const remaining = kmps.filter((p) => {
    if (p.invalid === undefined) return true;
    plan.rejected.push(rejection(p.nvr, p.kver, p.files, 'invalid-kmp', p.invalid));
    return false;
  });
  const done = new Set<string>();
  for (;;) {
    let added = false;
    let skipped = false;
    for (const kmp of remaining) {
      if (done.has(kmp.nvr)) continue;
      const name = splitNvr(kmp.nvr).name;
      const old = accepted.get(name);
      // One version per KMP name: an older one is never put beside or over a newer one.
      if (old !== undefined && compareNvrNewestFirst(old.kmp.nvr, kmp.nvr) < 0) {
        last.set(kmp.nvr, rejection(kmp.nvr, kmp.kver, kmp.files, 'file-name', `${old.kmp.nvr}, a newer version, is linked`));
        skipped = true;
        continue;
      }
      const others = [...accepted.entries()].filter(([n]) => n !== name).flatMap(([, a]) => a.overlays);
      const mine = overlaysOf(kmp);
      const taken = new Set([...foreignNames, ...others.map((o) => fileName(o.link))]);
      const clash = mine.find((o) => taken.has(fileName(o.link)));
      if (clash !== undefined) {
        const where = `${fileName(clash.link)} exists in updates/, extra/ or weak-updates/ of ${kernel.kver}`;
        last.set(kmp.nvr, rejection(kmp.nvr, kmp.kver, kmp.files, 'file-name', where));
        skipped = true;
        continue;
      }
      const dup = duplicateName([...others, ...mine]);
      if (dup !== undefined) {
        last.set(kmp.nvr, rejection(kmp.nvr, kmp.kver, kmp.files, 'duplicate', `module ${dup} would be linked twice`));
        skipped = true;
        continue;
      }
      const { problems } = tree.evaluate([...others, ...mine].map((o) => o.module), 'all');
      if (problems.length > 0) {
        const inconsistent =
          tree.baseProblemCount > 0 ? ` (${kernel.kver} has ${tree.baseProblemCount} problem(s) without any link: weak-modules2 calls it inconsistent)` : '';
        last.set(kmp.nvr, rejection(kmp.nvr, kmp.kver, kmp.files, 'kabi', `${describeProblems(problems)}${inconsistent}`, problems));
        skipped = true;
        continue;
      }
      accepted.set(name, { kmp, overlays: mine });
      if (old !== undefined) last.set(old.kmp.nvr, rejection(old.kmp.nvr, old.kmp.kver, old.kmp.files, 'file-name', `replaced by ${kmp.nvr}`));
      done.add(kmp.nvr);
      last.delete(kmp.nvr);
      added = true;
    }
    if (!(added && skipped)) break;
  }
  for (const { overlays } of accepted.values()) {
    for (const o of overlays) plan.links.push({ link: o.link, target: o.source.module.path, from: o.source.kver, unit: o.unit });
  }
  for (const kmp of remaining) {
    const r = last.get(kmp.nvr);
    if (r !== undefined && ![...accepted.values()].some((a) => a.kmp.nvr === kmp.nvr)) plan.rejected.push(r);
  }
  plan.links.sort((a, b) => (a.link < b.link ? -1 : a.link > b.link ? 1 : 0));
  return plan;
}

function duplicateName(overlays: readonly Overlay[]): string | undefined {
  const seen = new Set<string>();
  for (const o of overlays) {
    if (seen.has(o.module.name)) return o.module.name;
    seen.add(o.module.name);
  }
  return undefined;
}

/**
 * weak-modules' do_make_groups over a kernel's dependency lines (modules.dep order: each module
 * followed by everything it needs): a line whose module is not yet in a group starts one holding
 * its extra/ modules, and a group named by one of those is dropped (it is part of the new one).
 */
export function rhelGroups(lines: ReadonlyArray<readonly string[]>, isExtra: (path: string) => boolean): string[][] {
  const groups = new Map<string, string[]>();
  const grouped = new Set<string>();
  for (const line of lines) {
    const first = line[0];
    if (first === undefined || !isExtra(first) || grouped.has(first)) continue;
    const members: string[] = [];
    for (const m of line) {
      if (!isExtra(m)) continue;
      groups.delete(m);
      members.push(m);
      grouped.add(m);
    }
    groups.set(first, members);
  }
  return [...groups.values()];
}

/**
 * A kernel's modules.dep lines for its extra/ modules, from its facts: each module with every
 * module it needs (transitively; depmod's provider of each symbol), in module array order.
 */
function dependencyLines(kernel: WeakKernel): string[][] {
  const mods = [...kernel.modules].sort((a, b) => compareKeys(arrayKey(a), arrayKey(b)));
  const owner = new Map<string, number>();
  mods.forEach((m, i) => {
    for (const sym of m.exports.keys()) owner.set(sym, i);
  });
  const direct = mods.map((m) => {
    const deps = new Set<number>();
    for (const imp of m.imports) {
      const o = owner.get(symbolLookupName(imp.name, ''));
      if (o !== undefined) deps.add(o);
    }
    return [...deps];
  });
  const lines: string[][] = [];
  mods.forEach((m, i) => {
    if (!m.path.startsWith(`${kernel.moddir}/extra/`)) return;
    const seen = new Set<number>([i]);
    const todo = [...direct[i]!];
    while (todo.length > 0) {
      const d = todo.pop()!;
      if (seen.has(d)) continue;
      seen.add(d);
      todo.push(...direct[d]!);
    }
    seen.delete(i);
    lines.push([m.path, ...[...seen].map((d) => mods[d]!.path)]);
  });
  return lines;
}

function planRhel(kernel: WeakKernel, input: WeakInput): WeakKernelPlan {
  const plan: WeakKernelPlan = { kver: kernel.kver, notTarget: kernel.notTarget, links: [], rejected: [] };
  if (kernel.notTarget !== undefined) return plan;
  const tree = new TrialTree(kernel, 'rhel');
  const foreign = new Set(kernel.foreign);
  let overlay = new Map<string, Overlay>();
  const installed = new Set<string>();
  const sources = [...input.kernels]
    .filter((k) => k.kver !== kernel.kver && k.modules.some((m) => m.path.startsWith(`${k.moddir}/extra/`)))
    .sort((a, b) => compareKernelsNewestFirst(a.kver, b.kver));

  /** weak-modules' update_modules_for_krel: add the links, drop failing ones until stable; `force` keeps a partial result. */
  const update = (unit: string, batch: readonly WeakSource[], force: boolean): void => {
    const todo = batch.filter((s) => !installed.has(fileName(s.rel)));
    if (todo.length === 0) return;
    const saved = new Map(overlay);
    for (const s of todo) {
      const o = { ...linked(kernel, 'rhel', s), source: s, unit };
      if (foreign.has(o.link)) {
        plan.rejected.push(rejection(unit, s.kver, [s], 'path-taken', `${o.link} exists in ${kernel.kver} and is not depmod-tx's`));
        continue;
      }
      const same = [...overlay.values()].find((x) => x.module.name === o.module.name && x.link !== o.link);
      if (same !== undefined) {
        plan.rejected.push(rejection(unit, s.kver, [s], 'duplicate', `module ${o.module.name} is linked from ${same.source.module.path}`));
        continue;
      }
      overlay.set(o.link, o);
    }
    const dropped: Array<{ o: Overlay; problems: WeakProblem[] }> = [];
    for (;;) {
      const { problems } = tree.evaluate([...overlay.values()].map((o) => o.module), 'links');
      if (problems.length === 0) break;
      const byPath = new Map<string, WeakProblem[]>();
      for (const p of problems) push(byPath, p.module, p);
      for (const [link, o] of overlay) {
        const mine = byPath.get(o.module.path);
        if (mine === undefined) continue;
        overlay.delete(link);
        dropped.push({ o, problems: mine });
      }
    }
    const compatible = todo.filter((s) => overlay.get(weakLinkPath('rhel', s.rel))?.source === s);
    const failedGroup = dropped.length > 0 && !force;
    for (const d of dropped) {
      plan.rejected.push(rejection(d.o.unit, d.o.source.kver, [d.o.source], 'kabi', describeProblems(d.problems), d.problems));
    }
    if (failedGroup) {
      overlay = saved;
      for (const s of compatible) plan.rejected.push(rejection(unit, s.kver, [s], 'group', `another module of the group ${unit} failed`));
    }
    // weak-modules counts a module whose link passed as installed even when its group was rolled back.
    for (const s of compatible) installed.add(fileName(s.rel));
  };

  for (const k of sources) {
    const lines = dependencyLines(k);
    const extraRel = (p: string): boolean => p.startsWith(`${k.moddir}/extra/`);
    const bySource = new Map<string, WeakSource>();
    for (const m of k.modules) if (extraRel(m.path)) bySource.set(m.path, { kver: k.kver, rel: m.path.slice(k.moddir.length + 1), module: m });
    const groups = rhelGroups(lines, extraRel).map((g) => g.map((p) => bySource.get(p)!));
    update(`${k.kver} independent modules`, groups.filter((g) => g.length === 1).flat(), true);
    for (const g of groups) if (g.length > 1) update(g[0]!.module.path, g, false);
  }
  for (const s of input.extraSources ?? []) {
    if (s.kver !== kernel.kver) update(s.module.path, [s], true);
  }
  for (const o of overlay.values()) plan.links.push({ link: o.link, target: o.source.module.path, from: o.source.kver, unit: o.unit });
  // A module refused first and linked later (from an older kernel, or a group that passed) is not refused.
  const linkedTargets = new Set(plan.links.map((l) => l.target));
  plan.rejected = plan.rejected.filter((r) => !r.modules.every((m) => linkedTargets.has(m)));
  plan.links.sort((a, b) => (a.link < b.link ? -1 : a.link > b.link ? 1 : 0));
  return plan;
}

/** What to change in a kernel's weak-updates/: links to make, to replace (other target) and to remove. */
export interface WeakLinkChanges {
  add: WeakLink[];
  remove: Array<{ link: string; target: string }>;
  keep: number;
}

export function diffLinks(current: ReadonlyMap<string, string>, desired: readonly WeakLink[]): WeakLinkChanges {
  const want = new Map(desired.map((l) => [l.link, l]));
  const add: WeakLink[] = [];
  const remove: Array<{ link: string; target: string }> = [];
  let keep = 0;
  for (const [link, target] of current) {
    const w = want.get(link);
    if (w === undefined || w.target !== target) remove.push({ link, target });
    else keep++;
  }
  for (const l of desired) if (current.get(l.link) !== l.target) add.push(l);
  return { add, remove, keep };
}
