// The weak-updates oracle: the links SUSE's weak-modules2 and RHEL's weak-modules would make, found
// their way, with kmod's own depmod as the judge (a symlinked copy of the kernel's tree, candidate
// links added, `depmod -b TMP -ae -E symvers KVER`, problems read from its stderr). Written from the
// tools' documented procedures (../shared/spec/weak-updates.md), independently of src/depmod/weak-updates.ts,
// and, like them, from scratch: the links each kernel should have for the modules installed now.
// Slow by design (one full depmod per trial): what depmod-tx's decision is compared with.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { kmod30, runOracle, type DepmodOracle } from './kmod-oracles.ts';

/** A KMP as the test installed it: its package name, its kernel and its files (relative to that kernel's module directory). */
export interface OracleKmp {
  nvr: string;
  kver: string;
  rels: string[];
}

export interface OracleKernel {
  kver: string;
  /** Uncompressed Module.symvers of the kernel (what the tools zcat from symvers.gz). */
  symvers: string;
}

export type OracleLinks = Map<string, Map<string, string>>;

const PROBLEM = / (needs unknown|disagrees about version of) symbol /;

function moddirOf(root: string, kver: string): string {
  return join(root, 'lib', 'modules', kver);
}

/**
 * A copy of KVER's module directory made of symbolic links, as weak-modules2's
 * create_temporary_modules_dir makes it: modules.* and livepatch/ left out, and here weak-updates/
 * too (every link in it is depmod-tx's; the oracle decides them from scratch).
 */
function linkedCopy(root: string, kver: string, into: string, opts: { inputs?: boolean; foreign?: ReadonlySet<string> } = {}): string {
  const src = moddirOf(root, kver);
  const dst = moddirOf(into, kver);
  mkdirSync(dst, { recursive: true });
  for (const e of readdirSync(src)) {
    const input = e === 'modules.order' || e === 'modules.builtin' || e === 'modules.builtin.modinfo';
    if ((e.startsWith('modules.') && !(input && opts.inputs)) || e === 'livepatch' || e === 'weak-updates') continue;
    execFileSync('cp', ['-as', join(src, e), join(dst, e)]);
  }
  // Files in weak-updates/ someone else made are part of the tree the tools look at.
  for (const f of opts.foreign ?? []) {
    if (!f.startsWith(`${kver}/`)) continue;
    const rel = f.slice(kver.length + 1);
    mkdirSync(dirname(join(dst, rel)), { recursive: true });
    execFileSync('cp', ['-P', join(src, rel), join(dst, rel)]);
  }
  return dst;
}

function depmodProblems(o: DepmodOracle, args: string[]): string[] {
  const r = runOracle(o, args);
  // weak-modules2 counts a failing depmod as unresolved symbols.
  if (r.status !== 0) return [`depmod exited ${r.status}: ${r.stderr}`];
  return r.stderr.split('\n').filter((l) => PROBLEM.test(l));
}

const fileName = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

function filesBelow(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...filesBelow(join(dir, e.name)));
    else out.push(join(dir, e.name));
  }
  return out;
}

function flavourOf(kver: string): string {
  const parts = kver.split('-');
  let last = -1;
  parts.forEach((p, i) => {
    if (/^[0-9]/.test(p)) last = i;
  });
  return parts.slice(last + 1).join('-');
}

/**
 * SUSE: per kernel with a System.map, KMPs of the same flavour built for other kernels, newest
 * first, each tried by a trial depmod of the copy with its links added; passes repeated while
 * some were added and others skipped.
 */
export function suseOracle(root: string, conf: string, kernels: readonly OracleKernel[], kmps: readonly OracleKmp[], foreign: ReadonlySet<string> = new Set(), o: DepmodOracle = kmod30()): OracleLinks {
  const out: OracleLinks = new Map();
  for (const k of kernels) {
    const links = new Map<string, string>();
    out.set(k.kver, links);
    if (!existsSync(join(root, 'boot', `System.map-${k.kver}`))) continue;
    const mine = kmps
      .filter((p) => p.kver !== k.kver && flavourOf(p.kver) === flavourOf(k.kver))
      .filter((p) => p.rels.every((r) => existsSync(join(moddirOf(root, p.kver), r))))
      .sort((a, b) => b.nvr.localeCompare(a.nvr, 'en', { numeric: true }));
    if (mine.length === 0) continue;
    const tmp = mkdtempSync(join(tmpdir(), 'dtx-weak-oracle-'));
    try {
      // As weak-modules2 copies it: no modules.* at all (its find prunes them).
      const copy = linkedCopy(root, k.kver, tmp, { foreign });
      const own = ['updates', 'extra'].flatMap((d) => filesBelow(join(moddirOf(root, k.kver), d))).map(fileName);
      const added = new Set<string>();
      let remaining = [...mine];
      for (;;) {
        let addedAny = false;
        let skipped = false;
        const next: OracleKmp[] = [];
        for (const p of remaining) {
          const taken = new Set([...own, ...filesBelow(join(copy, 'weak-updates')).map(fileName)]);
          const names = p.rels.map(fileName);
          if (names.some((n) => taken.has(n))) {
            skipped = true;
            next.push(p);
            continue;
          }
          const made = p.rels.map((r) => {
            const link = join(copy, 'weak-updates', r);
            mkdirSync(dirname(link), { recursive: true });
            symlinkSync(join(moddirOf(root, p.kver), r), link);
            return link;
          });
          const problems = depmodProblems(o, ['-b', tmp, '-C', conf, '-ae', '-E', k.symvers, k.kver]);
          if (problems.length > 0) {
            for (const l of made) rmSync(l);
            skipped = true;
            next.push(p);
            continue;
          }
          added.add(p.nvr);
          addedAny = true;
          for (const r of p.rels) links.set(`weak-updates/${r}`, join(moddirOf(root, p.kver), r));
        }
        remaining = next;
        if (!(addedAny && skipped)) break;
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return out;
}

/** weak-modules' own `rpmsort -r` of kernel versions, run with sort(1) as the script does. */
function rhelKernelOrder(kvers: readonly string[]): string[] {
  if (kvers.length === 0) return [];
  const keys = Array.from({ length: 10 }, (_, i) => `-k${i + 1},${i + 1}`);
  const input = kvers.map((k) => k.replaceAll('-', '..')).join('\n');
  const sorted = execFileSync('sort', ['-r', '-n', '-t.', ...keys], { input, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  return sorted.trim().split('\n').map((l) => l.replaceAll('..', '-'));
}

/** do_make_groups over `depmod -n` lines (cut at the first '#' line, extra/ lines, absolute paths). */
function rhelGroups(lines: string[][]): string[][] {
  const groups = new Map<string, string[]>();
  const grouped = new Map<string, string>();
  for (const mods of lines) {
    if (!mods[0]!.includes('extra/') || grouped.has(mods[0]!)) continue;
    const name = mods[0]!;
    for (const m of mods) {
      if (!m.includes('extra/')) continue;
      groups.delete(m);
      groups.set(name, [...(groups.get(name) ?? []), m]);
      grouped.set(m, name);
    }
  }
  return [...groups.values()];
}

/**
 * RHEL: per kernel with symvers.gz and a System.map, the other kernels with extra/ newest first;
 * per kernel, the one-module groups in one sandbox run (failing links dropped until stable), then
 * each larger group all or nothing; checked with the tool's private configuration.
 */
export function rhelOracle(root: string, kernels: readonly OracleKernel[], foreign: ReadonlySet<string> = new Set(), o: DepmodOracle = kmod30()): OracleLinks {
  const out: OracleLinks = new Map();
  const withExtra = kernels.filter((k) => filesBelow(join(moddirOf(root, k.kver), 'extra')).length > 0).map((k) => k.kver);
  // make_groups runs `depmod -n` of each source kernel: the same for every target.
  const groupsOf = new Map<string, string[][]>();
  const groups = (src: string): string[][] => {
    let g = groupsOf.get(src);
    if (g !== undefined) return g;
    const stage = mkdtempSync(join(tmpdir(), 'dtx-weak-oracle-src-'));
    try {
      linkedCopy(root, src, stage, { inputs: true });
      const r = runOracle(o, ['-n', '-b', stage, src]);
      const depLines: string[][] = [];
      for (const line of r.stdout.split('\n')) {
        if (line.startsWith('#')) break;
        if (!line.includes('extra/')) continue;
        depLines.push(line.replace(':', '').split(' ').filter((w) => w !== '').map((p) => (p.startsWith('/') ? p : join(moddirOf(root, src), p))));
      }
      g = rhelGroups(depLines);
    } finally {
      rmSync(stage, { recursive: true, force: true });
    }
    groupsOf.set(src, g);
    return g;
  };
  for (const k of kernels) {
    const links = new Map<string, string>();
    out.set(k.kver, links);
    if (!existsSync(join(root, 'boot', `symvers-${k.kver}.gz`)) || !existsSync(join(root, 'boot', `System.map-${k.kver}`))) continue;
    if (!withExtra.some((x) => x !== k.kver)) continue;
    const tmp = mkdtempSync(join(tmpdir(), 'dtx-weak-oracle-'));
    try {
      // weak-modules runs depmod on the kernel's real tree: modules.order and the builtin lists included.
      linkedCopy(root, k.kver, join(tmp, 'b'), { inputs: true, foreign });
      const sandbox = join(tmp, 'sandbox');
      mkdirSync(sandbox);
      const conf = join(tmp, 'depmod.conf');
      writeFileSync(conf, `search external extra built-in weak-updates\nexternal * ${sandbox}\n`);
      const installed = new Set<string>();
      const linkOf = (module: string, kver: string): string => join(sandbox, module.slice(moddirOf(root, kver).length + 1).replace(/^[^/]*\//, ''));
      const current = (): Map<string, string> => new Map(filesBelow(sandbox).map((l) => [l, execFileSync('readlink', [l], { encoding: 'utf8' }).trim()]));
      const update = (mods: Array<{ path: string; kver: string }>, force: boolean): void => {
        const todo = mods.filter((m) => !installed.has(fileName(m.path)));
        if (todo.length === 0) return;
        const before = current();
        for (const m of todo) {
          const l = linkOf(m.path, m.kver);
          mkdirSync(dirname(l), { recursive: true });
          rmSync(l, { force: true });
          symlinkSync(m.path, l);
        }
        let removed = false;
        for (;;) {
          const bad = new Set(
            depmodProblems(o, ['-b', join(tmp, 'b'), '-C', conf, '-naeE', k.symvers, k.kver])
              .filter((l) => l.includes(sandbox))
              .map((l) => l.split(' ')[2]!),
          );
          if (bad.size === 0) break;
          for (const b of bad) rmSync(b, { force: true });
          removed = true;
        }
        const after = current();
        const compatible = todo.filter((m) => after.get(linkOf(m.path, m.kver)) === m.path);
        if (removed && !force) {
          rmSync(sandbox, { recursive: true, force: true });
          mkdirSync(sandbox);
          for (const [l, t] of before) {
            mkdirSync(dirname(l), { recursive: true });
            symlinkSync(t, l);
          }
        }
        for (const m of compatible) installed.add(fileName(m.path));
      };
      for (const src of rhelKernelOrder(withExtra.filter((x) => x !== k.kver))) {
        const gs = groups(src);
        update(gs.filter((g) => g.length === 1).flat().map((path) => ({ path, kver: src })), true);
        for (const g of gs) if (g.length > 1) update(g.map((path) => ({ path, kver: src })), false);
      }
      for (const [l, t] of current()) links.set(`weak-updates/${l.slice(sandbox.length + 1)}`, t);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return out;
}

/** The symbolic links under each kernel's weak-updates/ (relative path → target), skipping those named in `foreign`. */
export function linksOnDisk(root: string, kvers: readonly string[], foreign: ReadonlySet<string> = new Set()): OracleLinks {
  const out: OracleLinks = new Map();
  for (const k of kvers) {
    const m = new Map<string, string>();
    const dir = join(moddirOf(root, k), 'weak-updates');
    const r = spawnSync('find', [dir, '-type', 'l', '-printf', '%P\t%l\n'], { encoding: 'utf8' });
    for (const line of (r.stdout ?? '').split('\n')) {
      if (line === '') continue;
      const [rel, target] = line.split('\t') as [string, string];
      if (!foreign.has(`${k}/weak-updates/${rel}`)) m.set(`weak-updates/${rel}`, target);
    }
    out.set(k, m);
  }
  return out;
}

/** Sorted "KVER weak-updates/... -> TARGET" lines: what assert.deepEqual shows best. */
export function linkLines(l: OracleLinks): string[] {
  return [...l].flatMap(([k, m]) => [...m].map(([link, target]) => `${k} ${link} -> ${target}`)).sort();
}

export function readText(p: string): string {
  return readFileSync(p, 'utf8');
}

const SHIPPED = new Set(['modules.order', 'modules.builtin', 'modules.builtin.modinfo']);

/**
 * kmod's `depmod -a` of one kernel of ROOT, on a symlinked copy of that kernel's directory only (its
 * weak-updates links keep their absolute targets): name → bytes of the files depmod wrote.
 */
export function depmodOfKernel(root: string, kver: string, conf: string, o: DepmodOracle = kmod30()): Map<string, Uint8Array> {
  const tmp = mkdtempSync(join(tmpdir(), 'dtx-weak-db-'));
  try {
    const src = moddirOf(root, kver);
    const dst = moddirOf(tmp, kver);
    mkdirSync(dst, { recursive: true });
    for (const e of readdirSync(src)) if (!e.startsWith('modules.') || SHIPPED.has(e)) execFileSync('cp', ['-as', join(src, e), join(dst, e)]);
    const r = runOracle(o, ['-b', tmp, '-C', conf, '-a', kver]);
    if (r.status !== 0) throw new Error(`depmod -a ${kver} failed: ${r.stderr}`);
    const out = new Map<string, Uint8Array>();
    for (const f of readdirSync(dst)) if (f.startsWith('modules.') && !SHIPPED.has(f)) out.set(f, readFileSync(join(dst, f)));
    return out;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
