// npm run bench: what issues 22 (the delta merge: updates) and 25 (cold builds) ask of depmod-tx,
// measured in one run on their tree, the held-out Debian 13 6.12 amd64 kernel (4,230 modules; .ko.xz
// as shipped, .ko and .ko.zst made from it), with every baseline timed in the same run beside it.
// Two Debian 12 6.1 kernels cold in one transaction (two-kernels-*) stay from issue 14.
// `npm run bench -- --help` lists the options; bench-results.md (tables) and bench-results.json
// (every sample) are written at the end.
//
// How a figure is made: each scenario holds a set of commands (depmod-tx on each runtime and kmod
// format, and the baselines: `node -e 0` on the same runtime, kmod 30's and kmod 34.2's `depmod -a`,
// PR 253's `depmod -I` and kmod master's `depmod -a` when builds of them exist). Each run executes
// every command once, in an order rotated by one per run, so load from other users of the machine
// falls on all of them alike. A figure is the median of N runs: wall time around the spawn (process
// start included), user+sys CPU time and peak RSS from GNU time (the process and the children it
// waited for, e.g. xz; RSS is the largest single process, not a sum). Ratios divide medians of the
// same run. The page cache is warm (every tree is read once first) unless --drop-caches.
//
// Identity: right after each timed depmod-tx command its modules.* files are compared byte for byte
// with kmod's `depmod -a` output of the same tree (test/support/kernels.ts oracleOutput, which the
// kmod commands of the same run are checked against too). depmod-tx picks its output format the way
// it does on a real system: the matching kmod's `depmod` comes first on PATH. PR 253's `depmod -I`
// is compared with PR 253's own `depmod -a` of the same tree (its -a differs from kmod 34.2's by
// design: dependency order, CRCs in modules.symbols.bin; the notes say where).
//
// Changed modules are modules no other module needs (or, for drivers/net + sound, those and every
// module that needs them), so that the tree before and after the change is one a package manager
// leaves: no module is left without a module it needs.
//
// kmod builds are never made here: $DEPMOD_TX_KMOD_BUILDS (default .cache/kmod-builds)
// /pr253/bin/depmod, /master/bin/depmod, /v30/bin/depmod and /v34.2/bin/depmod are used when they
// exist, reported "not present" otherwise.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { debianNode18 } from '../test/e2e/support.ts';
import {
  cloneRoot,
  kernelCache,
  oracleOutput,
  realKernel,
  realKernelSkipReason,
  recompressedKernel,
  repoRoot,
  trixieKernel,
  type Compression,
  type Flavour,
  type RealKernel,
} from '../test/support/kernels.ts';
import { kmod30, kmod34, type DepmodOracle } from '../test/support/kmod-oracles.ts';
import { nodeWithBuiltinZstd } from '../test/support/node-builtin-zstd.ts';
import {
  fitLine,
  fixedPartTarget,
  fmtMb,
  fmtMs,
  GOALS,
  identityTarget,
  jsonPathFor,
  leafModules,
  markdownTable,
  parseBenchArgs,
  parseGnuTime,
  parseModulesDep,
  ratioTarget,
  rotation,
  rssTarget,
  selected,
  spread,
  summarize,
  timeCell,
  USAGE,
  verdict,
  withUsers,
  type LineFit,
  type Sample,
  type Stats,
  type TargetResult,
} from './bench-stats.ts';

const parsed = parseBenchArgs(process.argv.slice(2), join(repoRoot, 'bench-results.md'));
if (typeof parsed === 'string') {
  console.error(`bench: ${parsed}\n${USAGE}`);
  process.exit(64);
}
const opts = parsed;

// ---------------------------------------------------------------------------------------------
// Scenarios: ids for --only, labels for the tables.

type Format = '30' | '34';
type Issue = 22 | 25;
/** The held-out tree of issues 22 and 25, and the two Debian 12 kernels of two-kernels-*. */
type TreeName = 'trixie-amd64' | Flavour;
const COMP_LABEL: Record<Compression, string> = { none: '.ko', xz: '.ko.xz', zst: '.ko.zst', gz: '.ko.gz' };
const COMP_ID: Record<Compression, string> = { none: 'ko', xz: 'xz', zst: 'zst', gz: 'gz' };
const ALL_COMPS: Compression[] = ['none', 'zst', 'xz'];
const CURVE = [1, 10, 100, 1000];
const HELD: TreeName = 'trixie-amd64';

interface ScenarioDef {
  id: string;
  issue: Issue;
  run: () => void;
}

const scenarios: ScenarioDef[] = [
  ...ALL_COMPS.map((c): ScenarioDef => ({ id: `cold-${COMP_ID[c]}`, issue: 25, run: () => coldScenario(c) })),
  ...(opts.quick ? (['none'] as Compression[]) : ALL_COMPS).map((c): ScenarioDef => ({ id: `two-kernels-${COMP_ID[c]}`, issue: 25, run: () => twoKernelScenario(c) })),
  ...ALL_COMPS.map((c): ScenarioDef => ({ id: `add10-${COMP_ID[c]}`, issue: 22, run: () => changeScenario(`add10-${COMP_ID[c]}`, c, 'ten') })),
  { id: 'net-sound-xz', issue: 22, run: () => changeScenario('net-sound-xz', 'xz', 'net-sound') },
  { id: 'noop-xz', issue: 22, run: () => noopScenario('xz') },
  { id: 'curve-xz', issue: 22, run: () => changeScenario('curve-xz', 'xz', 'curve') },
];

if (opts.help) {
  console.log(`${USAGE}

  --runs N          runs per command (default 5; --quick: 1); figures are medians
  --quick           1 run; two-kernels: .ko only
  --only S[,S...]   only scenarios whose id contains one of the substrings (--list shows them)
  --out FILE        Markdown results (default bench-results.md); FILE.json gets every sample
  --keep            keep the work trees (under ${join(kernelCache, '.bench-PID')})
  --node PATH       run depmod-tx on this Node.js (repeatable; default: the node running the bench)
  --all-nodes       also Debian 12's nodejs 18 (.cache/debian-nodejs18) and Node 22
                    (.cache/node22), fetched when missing; reported side by side
  --formats 30,34   kmod output formats to measure (default both)
  --drop-caches     drop the page cache before every timed command (root; slows the whole machine)
  --list            print the scenario ids and exit

Scenarios (Debian 13's 6.12 amd64 tree; two-kernels: Debian 12's 6.1 amd64 + cloud-amd64):
${scenarios.map((s) => `  ${s.id} (issue ${s.issue})`).join('\n')}`);
  process.exit(0);
}
const chosen = scenarios.filter((s) => selected(s.id, opts.only));
if (opts.list) {
  console.log(scenarios.map((s) => s.id).join('\n'));
  process.exit(0);
}
if (chosen.length === 0) {
  console.error(`bench: --only ${opts.only.join(',')} matches no scenario; there are:\n${scenarios.map((s) => `  ${s.id}`).join('\n')}`);
  process.exit(64);
}

// ---------------------------------------------------------------------------------------------
// The machine: GNU time, the kernels, depmod-tx's bundle, the runtimes, the kmods.

const TIME = '/usr/bin/time';
const timeVersion = existsSync(TIME) ? spawnSync(TIME, ['--version'], { encoding: 'utf8' }) : undefined;
if (timeVersion === undefined || !/GNU/.test(`${timeVersion.stdout}${timeVersion.stderr}`)) {
  console.error('bench: needs GNU time at /usr/bin/time for CPU time and peak RSS (Debian: apt-get install time)');
  process.exit(69);
}
const skip = realKernelSkipReason();
if (skip) {
  console.error(`bench: ${skip}`);
  process.exit(69);
}

console.error('bench: npm run build');
execFileSync('npm', ['run', '-s', 'build'], { cwd: repoRoot, stdio: 'inherit' });
const CLI = join(repoRoot, 'bin', 'depmod-tx.mjs');

/** Test knobs of depmod-tx (tracing, fault injection) stay out of the measured commands. */
const baseEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DEPMOD_TX_')));

interface Runtime {
  /** Short unique name: node18, node20, ... */
  tag: string;
  node: string;
  version: string;
  major: number;
}

const runtimeNotes: string[] = [];
function resolveRuntimes(): Runtime[] {
  const paths: string[] = [];
  if (opts.allNodes || opts.nodes.length === 0) paths.push(process.execPath);
  if (opts.allNodes) {
    const d18 = debianNode18();
    if ('dir' in d18) paths.push(join(d18.dir, 'node'));
    else runtimeNotes.push(`Debian 12's nodejs 18: not available (${d18.reason})`);
    const n22 = nodeWithBuiltinZstd();
    if ('node' in n22) paths.push(n22.node);
    else runtimeNotes.push(`Node 22: not available (${n22.reason})`);
  }
  paths.push(...opts.nodes);
  const out: Runtime[] = [];
  for (const node of paths) {
    const r = spawnSync(node, ['-p', 'process.version'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${node} -p process.version failed: ${r.stderr}`);
    const version = r.stdout.trim().replace(/^v/, '');
    if (out.some((x) => x.version === version)) continue;
    const major = Number(version.split('.')[0]);
    let tag = `node${major}`;
    while (out.some((x) => x.tag === tag)) tag += "'";
    out.push({ tag, node, version, major });
  }
  return out;
}
const runtimes = resolveRuntimes();

interface Kmod {
  format: Format;
  oracle: DepmodOracle;
  /** The environment depmod-tx runs in for this format: this kmod's depmod first on PATH. */
  env: NodeJS.ProcessEnv;
}
const kmods: Kmod[] = opts.formats.map((format) => {
  const oracle = format === '30' ? kmod30() : kmod34();
  return { format, oracle, env: { ...baseEnv, PATH: `${oracle.binDir}:${baseEnv.PATH ?? '/usr/bin:/bin'}` } };
});
const kmod34ForInfo = (): DepmodOracle | undefined => kmods.find((k) => k.format === '34')?.oracle;

const buildsDir = process.env.DEPMOD_TX_KMOD_BUILDS ?? join(repoRoot, '.cache', 'kmod-builds');
interface KmodBuild {
  name: string;
  bin: string;
  version: string;
}
function kmodBuild(name: string): KmodBuild | undefined {
  const bin = join(buildsDir, name, 'bin', 'depmod');
  if (!existsSync(bin)) return undefined;
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  const version = /^kmod version (\S+)/.exec(r.stdout)?.[1];
  if (r.status !== 0 || version === undefined) throw new Error(`${bin} --version failed: ${r.stderr}`);
  return { name, bin, version };
}
const master = kmodBuild('master');
const pr253 = kmodBuild('pr253');
/**
 * kmod's releases built here with the flags PR 253 and master were built with: timed beside Debian's
 * binaries in the cold builds, they show whether a local build is as fast as the distribution's (if
 * not, a ratio to PR 253 is off by that much).
 */
const releaseBuilds = (['v30', 'v34.2'] as const).flatMap((name) => {
  const b = kmodBuild(name);
  return b === undefined ? [] : [{ ...b, format: (name === 'v30' ? '30' : '34') as Format }];
});

// ---------------------------------------------------------------------------------------------
// Work trees: hard-linked clones of a copy of each cached kernel made for this run (depmod and
// depmod-tx replace files by rename, never write into one). Not of the cache itself: other worktrees
// share its inodes, and their `cp -al` would change a module's ctime (part of depmod-tx's file
// identity) between the untimed and the timed update, which would then parse it again. A module a
// scenario moves in and out is first given an inode of its own, so that the renames (which change
// the inode's ctime) do not touch other trees; what the run's own cloning changes, the untimed
// update before each timed one takes in.

const work = join(kernelCache, `.bench-${process.pid}`);
mkdirSync(work, { recursive: true });
const timeFile = join(work, 'time.out');
const cleanup = (): void => {
  if (!opts.keep) rmSync(work, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

interface Tree {
  root: string;
  moddir: string;
  kver: string;
}

const copies = new Map<string, string>();
/** This run's own copy of a kernel's root (cp -a: no inode shared with the cache), made once. */
function runCopy(k: RealKernel): string {
  let root = copies.get(k.root);
  if (root === undefined) {
    root = join(work, `tree-${copies.size}`);
    execFileSync('cp', ['-a', k.root, root]);
    copies.set(k.root, root);
  }
  return root;
}

function cloneTree(k: RealKernel, dir: string): Tree {
  cloneRoot(runCopy(k), dir);
  return { root: dir, moddir: join(dir, relative(k.root, k.moddir)), kver: k.kver };
}

/** Files the kernel package ships in the module directory: depmod's inputs, not its outputs. */
const INPUTS = new Set(['modules.order', 'modules.builtin', 'modules.builtin.modinfo']);
const isOutput = (f: string): boolean => f.startsWith('modules.') && !INPUTS.has(f);
const outputNames = (moddir: string): string[] => readdirSync(moddir).filter(isOutput).sort();

function clearOutputs(moddir: string): void {
  for (const f of outputNames(moddir)) rmSync(join(moddir, f));
}

/** Replaces a tree's outputs with a database (a kmod's, kept in memory). */
function putOutputs(moddir: string, db: ReadonlyMap<string, Buffer>): void {
  clearOutputs(moddir);
  for (const [f, bytes] of db) writeFileSync(join(moddir, f), bytes);
}

const readOutputs = (moddir: string): Map<string, Buffer> => new Map(outputNames(moddir).map((f) => [f, readFileSync(join(moddir, f))]));

/** Every module file under a module directory, relative to it, sorted. */
function moduleFiles(moddir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ko(\.(xz|zst|gz))?$/.test(e.name)) out.push(relative(moddir, p));
    }
  };
  walk(moddir);
  return out.sort();
}

const warmed = new Set<string>();
/** Reads every file of a tree (this run's copy) once, so that no tool pays for the first read. */
function warm(k: RealKernel): void {
  if (warmed.has(k.root) || opts.dropCaches) return;
  warmed.add(k.root);
  spawnSync('sh', ['-c', 'find "$0" -type f -print0 | xargs -0 cat > /dev/null', runCopy(k)]);
}

const kernelMemo = new Map<string, RealKernel>();
function kernel(name: TreeName, comp: Compression): RealKernel {
  const key = `${name}/${comp}`;
  let k = kernelMemo.get(key);
  if (k === undefined) {
    console.error(`bench: kernel ${name} ${COMP_LABEL[comp]}`);
    k = recompressedKernel(name === 'trixie-amd64' ? trixieKernel() : realKernel(name), comp);
    kernelMemo.set(key, k);
  }
  warm(k);
  return k;
}

/** What the tables call a tree. */
const treeLabel = (k: RealKernel): string => `${k.kver}, ${moduleFiles(k.moddir).length.toLocaleString('en-US')} modules`;

/** kmod's own `depmod -a` output of a pristine tree (outputs only), read once. */
const refMemo = new Map<string, Map<string, Buffer>>();
function reference(k: RealKernel, comp: Compression, oracle: DepmodOracle): Map<string, Buffer> {
  const key = `${k.root}/${oracle.name}`;
  let ref = refMemo.get(key);
  if (ref === undefined) {
    const dir = oracleOutput(k, comp, oracle);
    ref = new Map(readdirSync(dir).filter(isOutput).map((f) => [f, readFileSync(join(dir, f))]));
    refMemo.set(key, ref);
  }
  return ref;
}

/**
 * A depmod's `-a` output of a tree without some of its modules (kept in memory for the scenario):
 * the expected result of a removal. The clone's copies of those modules are unlinked, which changes
 * the shared inodes' ctime: every tree that moves them has copies of its own (privatize).
 */
function referenceWithout(k: RealKernel, rels: readonly string[], depmod: readonly string[], dir: string): Map<string, Buffer> {
  const t = cloneTree(k, dir);
  for (const r of rels) rmSync(join(t.moddir, r));
  untimed([...depmod, '-b', t.root, '-a', t.kver]);
  const out = readOutputs(t.moddir);
  rmSync(dir, { recursive: true, force: true });
  return out;
}

/** The outputs of `moddir` that are not byte-identical to the reference (or exist on one side only). */
function differingOutputs(moddir: string, ref: ReadonlyMap<string, Buffer>): string[] {
  const names = new Set([...outputNames(moddir), ...ref.keys()]);
  return [...names].sort().filter((f) => {
    const want = ref.get(f);
    const p = join(moddir, f);
    return want === undefined || !existsSync(p) || !readFileSync(p).equals(want);
  });
}

/**
 * Which of a tree's managed modules are out of it (in ROOT/bench-aside): `place(out)` renames so
 * that exactly those are out and every other managed module is in (package removed / installed).
 */
function placement(t: Tree, managed: readonly string[]): (out: readonly string[]) => void {
  const aside = join(t.root, 'bench-aside');
  const isOut = new Set<string>();
  const all = new Set(managed);
  return (out) => {
    const want = new Set(out);
    for (const r of want) if (!all.has(r)) throw new Error(`bench bug: ${r} is not managed`);
    for (const r of managed) {
      if (want.has(r) && !isOut.has(r)) {
        mkdirSync(dirname(join(aside, r)), { recursive: true });
        renameSync(join(t.moddir, r), join(aside, r));
        isOut.add(r);
      } else if (!want.has(r) && isOut.has(r)) {
        renameSync(join(aside, r), join(t.moddir, r));
        isOut.delete(r);
      }
    }
  };
}

function privatize(t: Tree, rels: Iterable<string>): void {
  for (const r of rels) {
    const p = join(t.moddir, r);
    copyFileSync(p, `${p}.bench-copy`);
    renameSync(`${p}.bench-copy`, p);
  }
}

const txCacheDir = (t: Tree): string => join(t.root, 'var', 'cache', 'depmod-tx');

/** depmod-tx's cache files for a kernel (a cold build has none). */
function dropTxCache(t: Tree): void {
  const dir = txCacheDir(t);
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) if (f.startsWith(t.kver)) rmSync(join(dir, f), { recursive: true, force: true });
}

const txCacheWritten = (t: Tree): boolean => existsSync(txCacheDir(t)) && readdirSync(txCacheDir(t)).some((f) => f.startsWith(t.kver));

/** Guards dropTxCache: a cold run that left no cache file named after the kernel means the layout moved. */
function assertTxCacheWritten(t: Tree): void {
  if (!txCacheWritten(t)) {
    throw new Error(`depmod-tx left no ${t.kver}* under ${txCacheDir(t)}: the cache moved; teach scripts/bench.ts where, or cold runs are not cold`);
  }
}

// ---------------------------------------------------------------------------------------------
// Commands and runs.

interface Tool {
  id: string;
  argv: readonly string[];
  env?: NodeJS.ProcessEnv;
  input?: string;
  /** Untimed, right before the timed command (e.g. the cache made current, the package's files put in place). */
  before?: () => void;
  /** Right after the timed command: the identity check. */
  check?: () => void;
}

function dropCaches(): void {
  spawnSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

function timed(t: Tool): Sample {
  if (opts.dropCaches) dropCaches();
  const t0 = process.hrtime.bigint();
  const r = spawnSync(TIME, ['-f', '%e %U %S %M', '-o', timeFile, ...t.argv], { env: t.env ?? baseEnv, input: t.input, encoding: 'utf8', maxBuffer: 256 << 20 });
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${t.id}: ${t.argv.join(' ')} exited ${r.status ?? r.signal}:\n${r.stderr}`);
  const g = parseGnuTime(readFileSync(timeFile, 'utf8'));
  return { wallMs, cpuMs: g.userMs + g.sysMs, rssMb: g.maxRssKb / 1024 };
}

/** An untimed command (setup); throws with its stderr when it fails, else returns its stderr. */
function untimed(argv: readonly string[], env: NodeJS.ProcessEnv = baseEnv, input?: string): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { env, input, encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status ?? r.signal}:\n${r.stderr}`);
  return r.stderr;
}

const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

interface ScenarioRecord {
  id: string;
  issue: Issue;
  loadStart: string;
  loadEnd: string;
  tools: Record<string, { argv: readonly string[]; samples: Sample[]; stats: Stats }>;
  differing: Record<string, string[]>;
}
const records: ScenarioRecord[] = [];

/** Runs every tool once per run in rotated order; returns the stats and the identity findings per tool id. */
function measure(id: string, issue: Issue, tools: Tool[]): { stats: Record<string, Stats>; diff: (toolId: string) => string[] } {
  const ids = new Set<string>();
  for (const t of tools) {
    if (ids.has(t.id)) throw new Error(`bench bug: tool ${t.id} twice in ${id}`);
    ids.add(t.id);
  }
  const loadStart = loadavg();
  const samples: Record<string, Sample[]> = Object.fromEntries(tools.map((t) => [t.id, []]));
  for (let run = 0; run < opts.runs; run++) {
    const t0 = Date.now();
    for (const i of rotation(tools.length, run)) {
      const t = tools[i]!;
      t.before?.();
      samples[t.id]!.push(timed(t));
      t.check?.();
    }
    console.error(`bench: ${id}: run ${run + 1}/${opts.runs} (${tools.length} commands, ${((Date.now() - t0) / 1000).toFixed(0)} s, load ${loadavg()})`);
  }
  const stats = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)]));
  records.push({
    id,
    issue,
    loadStart,
    loadEnd: loadavg(),
    tools: Object.fromEntries(tools.map((t) => [t.id, { argv: t.argv, samples: samples[t.id]!, stats: stats[t.id]! }])),
    differing: Object.fromEntries([...differing].map(([k, v]) => [k, [...v].sort()])),
  });
  const found = new Map(differing);
  differing.clear();
  return { stats, diff: (toolId) => [...(found.get(toolId) ?? [])].sort() };
}

/** Identity findings of the scenario being measured, per tool id (union over runs). */
const differing = new Map<string, Set<string>>();
function recordDiff(toolId: string, files: string[]): void {
  let s = differing.get(toolId);
  if (s === undefined) differing.set(toolId, (s = new Set()));
  for (const f of files) s.add(f);
}

/** kmod's own run must equal the cached reference: otherwise the reference is stale and proves nothing. */
function checkReference(toolId: string, moddir: string, ref: Map<string, Buffer>): void {
  const d = differingOutputs(moddir, ref);
  if (d.length > 0) throw new Error(`${toolId} wrote ${d.join(', ')} unlike the cached oracle output of the same tree (stale ${kernelCache}/*/oracle-*?)`);
}

const nodeTool = (rt: Runtime): Tool => ({ id: `node -e 0 ${rt.tag}`, argv: [rt.node, '-e', '0'] });
const txId = (k: Kmod, rt: Runtime, suffix = ''): string => `depmod-tx ${k.format} ${rt.tag}${suffix}`;
const txArgv = (rt: Runtime, args: readonly string[]): string[] => [rt.node, CLI, ...args];

// ---------------------------------------------------------------------------------------------
// Results.

type CellKey = 'node' | 'kmod' | 'kmodQuick' | 'master' | 'pr253' | 'tx' | 'background';
interface Row {
  issue: Issue;
  scenario: string;
  label: string;
  format: Format;
  runtime: Runtime;
  cells: Partial<Record<CellKey, Stats>>;
  targets: TargetResult[];
  /** Curve points: modules changed and their bytes on disk. */
  n?: number;
  bytes?: number;
}
interface Fit {
  scenario: string;
  format: Format;
  runtime: Runtime;
  tx: LineFit;
  txCpu: LineFit;
  pr253: LineFit | undefined;
  node: Stats;
  fixed: TargetResult;
}
/** One untimed update with DEPMOD_TX_TRACE=1: where its time went. */
interface Trace {
  scenario: string;
  format: Format;
  runtime: Runtime;
  wallMs: number;
  lines: string[];
}
const kmodName = (f: Format): string => `kmod ${kmods.find((k) => k.format === f)!.oracle.version}`;
const rtName = (rt: Runtime): string => `Node ${rt.version}`;
const rows: Row[] = [];
const fits: Fit[] = [];
const traces: Trace[] = [];
const notes: string[] = [];

/** Informational identity of a baseline's output against a reference. */
function infoIdentity(scenario: string, name: string, d: string[] | undefined, against = 'kmod 34.2 depmod -a'): void {
  if (d === undefined) return;
  notes.push(`${scenario}: ${name} output ${d.length === 0 ? `identical to ${against}` : `differs from ${against} in ${d.join(', ')}`}`);
}

// ---------------------------------------------------------------------------------------------
// Issue 25: cold builds.

/** kmod's `depmod -a` per format (and master's, and the release builds') on trees of their own, outputs removed before each run. */
function coldKmodTools(k: RealKernel, comp: Compression, dir: string): Tool[] {
  const tools: Tool[] = [];
  for (const km of kmods) {
    const t = cloneTree(k, join(dir, `kmod${km.format}`));
    const id = `kmod ${km.oracle.version} -a`;
    tools.push({ id, argv: [...km.oracle.command, '-b', t.root, '-a', t.kver], before: () => clearOutputs(t.moddir), check: () => checkReference(id, t.moddir, reference(k, comp, km.oracle)) });
  }
  const info = kmod34ForInfo();
  for (const b of [...(master ? [{ ...master, id: 'master -a', ref: info }] : []), ...releaseBuilds.flatMap((r) => {
    const debian = kmods.find((km) => km.format === r.format);
    return debian ? [{ ...r, id: `${r.name} built here -a`, ref: debian.oracle }] : [];
  })]) {
    const t = cloneTree(k, join(dir, b.name));
    const ref = b.ref;
    tools.push({
      id: b.id,
      argv: [b.bin, '-b', t.root, '-a', t.kver],
      before: () => clearOutputs(t.moddir),
      check: ref && (() => recordDiff(b.id, differingOutputs(t.moddir, reference(k, comp, ref)))),
    });
  }
  return tools;
}

function coldScenario(comp: Compression): void {
  const id = `cold-${COMP_ID[comp]}`;
  const k = kernel(HELD, comp);
  const dir = join(work, id);
  const tools: Tool[] = [...runtimes.map(nodeTool), ...coldKmodTools(k, comp, dir)];
  const txTrees: Tree[] = [];
  for (const km of kmods) {
    for (const rt of runtimes) {
      const t = cloneTree(k, join(dir, `tx${km.format}-${rt.tag}`));
      txTrees.push(t);
      const tid = txId(km, rt);
      tools.push({
        id: tid,
        argv: txArgv(rt, ['rebuild', '-b', t.root, t.kver]),
        env: km.env,
        before: () => {
          clearOutputs(t.moddir);
          dropTxCache(t);
        },
        check: () => recordDiff(tid, differingOutputs(t.moddir, reference(k, comp, km.oracle))),
      });
      // What the depmod front end starts in the background after kmod's depmod wrote a new kernel's
      // database (src/cli/depmod.ts buildCacheInBackground: the same call with DEPMOD_TX_BUILD_CACHE=1),
      // here in the foreground and at normal priority.
      const b = cloneTree(k, join(dir, `bg${km.format}-${rt.tag}`));
      const bid = txId(km, rt, ' background build');
      tools.push({
        id: bid,
        argv: txArgv(rt, ['depmod', '-b', b.root, '-a', b.kver]),
        env: { ...km.env, DEPMOD_TX_BUILD_CACHE: '1', DEPMOD_TX_LOG: join(dir, 'depmod-tx.log') },
        before: () => {
          putOutputs(b.moddir, reference(k, comp, km.oracle));
          dropTxCache(b);
          mkdirSync(txCacheDir(b), { recursive: true });
        },
        check: () => {
          recordDiff(bid, differingOutputs(b.moddir, reference(k, comp, km.oracle)));
          if (!txCacheWritten(b)) recordDiff(bid, ['(no cache written: handed over to kmod?)']);
        },
      });
    }
  }
  const m = measure(id, 25, tools);
  for (const t of txTrees) assertTxCacheWritten(t);
  const label = `cold build, ${treeLabel(k)}, ${COMP_LABEL[comp]}`;
  for (const km of kmods) {
    for (const rt of runtimes) {
      const tx = m.stats[txId(km, rt)]!;
      const bg = m.stats[txId(km, rt, ' background build')]!;
      const kmod = m.stats[`kmod ${km.oracle.version} -a`]!;
      rows.push({
        issue: 25,
        scenario: id,
        label,
        format: km.format,
        runtime: rt,
        cells: { node: m.stats[nodeTool(rt).id], kmod, master: m.stats['master -a'], tx, background: bg },
        targets: [
          ratioTarget('vs kmod -a', tx, kmod, GOALS.coldVsKmod(comp === 'xz'), 'kmod'),
          rssTarget('peak RSS', tx, GOALS.coldRssMb),
          rssTarget('background RSS', bg, GOALS.coldRssMb),
          identityTarget('identical', [...m.diff(txId(km, rt)), ...m.diff(txId(km, rt, ' background build')).map((f) => `background: ${f}`)]),
        ],
      });
    }
  }
  infoIdentity(id, 'kmod master', master && kmod34ForInfo() ? m.diff('master -a') : undefined);
  for (const b of releaseBuilds) {
    const debian = kmods.find((km) => km.format === b.format);
    if (debian === undefined) continue;
    const mine = m.stats[`${b.name} built here -a`];
    const theirs = m.stats[`kmod ${debian.oracle.version} -a`];
    notes.push(
      `${id}: kmod ${b.version} built here (${b.bin}) depmod -a ${timeCell(mine)} ms, ${mine ? fmtMb(mine.rssMb) : '—'}; ` +
        `Debian's kmod ${debian.oracle.version} ${timeCell(theirs)} ms`,
    );
    infoIdentity(id, `kmod ${b.version} built here`, m.diff(`${b.name} built here -a`), `Debian's kmod ${debian.oracle.version} depmod -a`);
  }
  if (!opts.keep) rmSync(dir, { recursive: true, force: true });
}

/** Two kernels in one root: the amd64 tree with cloud-amd64's added (hard links). */
function twoKernelRoot(a: RealKernel, b: RealKernel, dir: string): Tree[] {
  cloneRoot(runCopy(a), dir);
  execFileSync('cp', ['-aln', `${runCopy(b)}/.`, `${dir}/`]);
  return [a, b].map((k) => ({ root: dir, moddir: join(dir, relative(k.root, k.moddir)), kver: k.kver }));
}

function twoKernelScenario(comp: Compression): void {
  const id = `two-kernels-${COMP_ID[comp]}`;
  const ks = [kernel('amd64', comp), kernel('cloud-amd64', comp)];
  const dir = join(work, id);
  const q = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;
  const both = (cmd: readonly string[], root: string): string[] => ['sh', '-c', ks.map((k) => [...cmd, '-b', root, '-a', k.kver].map(q).join(' ')).join(' && ')];
  const checkAll = (toolId: string, trees: Tree[], oracle: DepmodOracle, asReference: boolean): void => {
    trees.forEach((t, i) => {
      const ref = reference(ks[i]!, comp, oracle);
      if (asReference) checkReference(toolId, t.moddir, ref);
      else recordDiff(toolId, differingOutputs(t.moddir, ref).map((f) => `${t.kver}/${f}`));
    });
  };
  const tools: Tool[] = runtimes.map(nodeTool);
  for (const km of kmods) {
    const trees = twoKernelRoot(ks[0]!, ks[1]!, join(dir, `kmod${km.format}`));
    const tid = `kmod ${km.oracle.version} -a ×2`;
    tools.push({ id: tid, argv: both(km.oracle.command, trees[0]!.root), before: () => trees.forEach((t) => clearOutputs(t.moddir)), check: () => checkAll(tid, trees, km.oracle, true) });
  }
  if (master !== undefined) {
    const trees = twoKernelRoot(ks[0]!, ks[1]!, join(dir, 'master'));
    const info = kmod34ForInfo();
    tools.push({ id: 'master -a ×2', argv: both([master.bin], trees[0]!.root), before: () => trees.forEach((t) => clearOutputs(t.moddir)), check: info && (() => checkAll('master -a ×2', trees, info, false)) });
  }
  // A kernel package's transaction as the hooks see it: every module path recorded (timed apart:
  // the hooks record while the packages unpack), then the one commit at its end that is compared.
  // `rebuild` of each kernel in turn is timed too, to tell commit's own cost from the cold builds'.
  const journal = ks.flatMap((k) => moduleFiles(k.moddir).map((r) => `/${relative(k.root, k.moddir)}/${r}`)).join('\n') + '\n';
  const txTrees: Tree[] = [];
  const recordSamples = new Map<string, Sample[]>();
  for (const km of kmods) {
    for (const rt of runtimes) {
      const trees = twoKernelRoot(ks[0]!, ks[1]!, join(dir, `tx${km.format}-${rt.tag}`));
      txTrees.push(...trees);
      const root = trees[0]!.root;
      const tid = txId(km, rt);
      const recorded: Sample[] = [];
      recordSamples.set(tid, recorded);
      const coldBoth = (): void => {
        for (const t of trees) {
          clearOutputs(t.moddir);
          dropTxCache(t);
        }
      };
      tools.push({
        id: tid,
        argv: txArgv(rt, ['commit', '-b', root]),
        env: km.env,
        before: () => {
          coldBoth();
          recorded.push(timed({ id: `${tid} record`, argv: txArgv(rt, ['record', '-b', root, '--op', 'add', '--package', 'linux-image', '-']), env: km.env, input: journal }));
        },
        check: () => checkAll(tid, trees, km.oracle, false),
      });
      const rid = txId(km, rt, ' rebuild ×2');
      tools.push({
        id: rid,
        argv: ['sh', '-c', ks.map((k) => txArgv(rt, ['rebuild', '-b', root, k.kver]).map(q).join(' ')).join(' && ')],
        env: km.env,
        before: coldBoth,
        check: () => checkAll(rid, trees, km.oracle, false),
      });
    }
  }
  const m = measure(id, 25, tools);
  for (const t of txTrees) assertTxCacheWritten(t);
  const n = ks.reduce((s, k) => s + moduleFiles(k.moddir).length, 0);
  for (const km of kmods) {
    for (const rt of runtimes) {
      const tx = m.stats[txId(km, rt)]!;
      const kmod = m.stats[`kmod ${km.oracle.version} -a ×2`]!;
      rows.push({
        issue: 25,
        scenario: id,
        label: `two 6.1 kernels cold in one transaction (amd64 + cloud-amd64, ${n.toLocaleString('en-US')} modules), ${COMP_LABEL[comp]}: commit vs 2 × depmod -a`,
        format: km.format,
        runtime: rt,
        cells: { node: m.stats[nodeTool(rt).id], kmod, master: m.stats['master -a ×2'], tx },
        targets: [
          ratioTarget('vs kmod -a', tx, kmod, GOALS.coldVsKmod(comp === 'xz'), 'kmod'),
          rssTarget('peak RSS', tx, GOALS.coldRssMb),
          identityTarget('identical', [...m.diff(txId(km, rt)), ...m.diff(txId(km, rt, ' rebuild ×2'))]),
        ],
      });
      notes.push(
        `${id} (${kmodName(km.format)}, ${rtName(rt)}): the record of ${n.toLocaleString('en-US')} paths before the commit took ${timeCell(summarize(recordSamples.get(txId(km, rt))!))} ms; ` +
          `depmod-tx rebuild of one kernel after the other ${timeCell(m.stats[txId(km, rt, ' rebuild ×2')])} ms`,
      );
    }
  }
  infoIdentity(id, 'kmod master', master && kmod34ForInfo() ? m.diff('master -a ×2') : undefined);
  if (!opts.keep) rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Issue 22: updates after a package added or removed modules.

type ChangeKind = 'ten' | 'net-sound' | 'curve';
interface ChangeSet {
  key: string;
  label: string;
  /** Added: out of the tree when the database before the change was made, in when the update runs. Removed: the other way round. */
  op: 'add' | 'remove';
  rels: string[];
  /** The changed files as they lie on disk (compressed). */
  bytes: number;
}

function changeSets(k: RealKernel, comp: Compression, kind: ChangeKind): ChangeSet[] {
  const dep = parseModulesDep(reference(k, comp, kmods[0]!.oracle).get('modules.dep')!.toString('utf8'));
  const bytes = (rels: readonly string[]): number => rels.reduce((s, r) => s + statSync(join(k.moddir, r)).size, 0);
  const set = (key: string, label: string, op: 'add' | 'remove', rels: string[]): ChangeSet => ({ key, label, op, rels, bytes: bytes(rels) });
  if (kind === 'ten') {
    const wireless = leafModules(dep).filter((m) => m.startsWith('kernel/drivers/net/wireless/'));
    return [set('10', 'package adds 10 wireless modules', 'add', spread(wireless, 10))];
  }
  if (kind === 'net-sound') {
    const seed = [...dep.keys()].filter((m) => m.startsWith('kernel/drivers/net/') || m.startsWith('kernel/sound/'));
    const rels = withUsers(dep, seed);
    const what = `${rels.length} modules (drivers/net + sound: ${seed.length}, and the ${rels.length - seed.length} elsewhere that need them)`;
    return [set('add', `package adds ${what}`, 'add', rels), set('remove', `package removes the same ${rels.length} again`, 'remove', rels)];
  }
  const leaves = leafModules(dep);
  return CURVE.filter((n) => n <= leaves.length).map((n) => set(String(n), `${n} added`, 'add', spread(leaves, n)));
}

/** Whether a change set's modules are out of the tree before (`before`) or after (`after`) the change. */
const outBefore = (s: ChangeSet): readonly string[] => (s.op === 'add' ? s.rels : []);
const outAfter = (s: ChangeSet): readonly string[] => (s.op === 'add' ? [] : s.rels);

/** kmod's `depmod -a` per format on the full tree: what a package's depmod call runs today. */
function fullKmodTools(k: RealKernel, comp: Compression, dir: string, extra: (km: Kmod, t: Tree) => Tool[] = () => []): Tool[] {
  const tools: Tool[] = [];
  for (const km of kmods) {
    const t = cloneTree(k, join(dir, `kmod${km.format}`));
    const id = `kmod ${km.oracle.version} -a`;
    tools.push({ id, argv: [...km.oracle.command, '-b', t.root, '-a', t.kver], check: () => checkReference(id, t.moddir, reference(k, comp, km.oracle)) }, ...extra(km, t));
  }
  return tools;
}

function changeScenario(id: string, comp: Compression, kind: ChangeKind): void {
  const k = kernel(HELD, comp);
  const dir = join(work, id);
  const sets = changeSets(k, comp, kind);
  const union = [...new Set(sets.flatMap((s) => s.rels))].sort();
  const tools: Tool[] = [...runtimes.map(nodeTool), ...fullKmodTools(k, comp, dir)];

  // The expected database after each change, per kmod format: the full tree's, or that of the tree
  // without the removed modules (made first, before any tree moves a module).
  const expected = new Map<string, Map<string, Buffer>>();
  for (const s of sets) {
    for (const km of kmods) {
      const without = (): Map<string, Buffer> => referenceWithout(k, s.rels, km.oracle.command, join(dir, `ref${km.format}-${s.key}`));
      expected.set(`${km.format}/${s.key}`, s.op === 'add' ? reference(k, comp, km.oracle) : without());
    }
  }

  // PR 253 reads the database it wrote before (modules.dep.bin, modules.symbols.bin) and the files
  // named: the tree is as after the change, the database that of the tree before it. Its result is
  // compared with its own depmod -a of the tree after the change.
  const pr253After = new Map<string, Map<string, Buffer>>();
  if (pr253 !== undefined) {
    const p = cloneTree(k, join(dir, 'pr253'));
    privatize(p, union);
    const place = placement(p, union);
    // Its -a of the tree with these modules out, once per such tree (the curve's sets share one).
    const dbs = new Map<string, Map<string, Buffer>>();
    const dbWithout = (out: readonly string[]): Map<string, Buffer> => {
      const key = out.join('\n');
      let db = dbs.get(key);
      if (db === undefined) {
        place(out);
        untimed([pr253.bin, '-b', p.root, '-a', p.kver]);
        dbs.set(key, (db = readOutputs(p.moddir)));
      }
      return db;
    };
    for (const s of sets) {
      pr253After.set(s.key, dbWithout(outAfter(s)));
      const db = dbWithout(outBefore(s));
      const tid = `PR 253 -I ${s.key}`;
      tools.push({
        id: tid,
        argv: [pr253.bin, '-b', p.root, '-I', p.kver, ...s.rels.map((r) => join(p.moddir, r))],
        before: () => {
          place(outAfter(s));
          putOutputs(p.moddir, db);
        },
        check: () => recordDiff(tid, differingOutputs(p.moddir, pr253After.get(s.key)!)),
      });
    }
  }

  // depmod-tx: before each timed update the tree is as before the change and the cache current (an
  // untimed update); then the package's files are put in place or taken away and the timed update
  // is told their paths, as a package manager's hook tells it.
  const txTrees = new Map<string, { t: Tree; place: (out: readonly string[]) => void }>();
  for (const km of kmods) {
    for (const rt of runtimes) {
      const t = cloneTree(k, join(dir, `tx${km.format}-${rt.tag}`));
      privatize(t, union);
      const place = placement(t, union);
      txTrees.set(txId(km, rt), { t, place });
      untimed(txArgv(rt, ['update', '-b', t.root, t.kver]), km.env);
      for (const s of sets) {
        const tid = txId(km, rt, ` ${s.key}`);
        tools.push({
          id: tid,
          argv: txArgv(rt, ['update', '-b', t.root, t.kver, ...s.rels.map((r) => join(t.moddir, r))]),
          env: km.env,
          before: () => {
            place(outBefore(s));
            untimed(txArgv(rt, ['update', '-b', t.root, t.kver]), km.env);
            place(outAfter(s));
          },
          check: () => recordDiff(tid, differingOutputs(t.moddir, expected.get(`${km.format}/${s.key}`)!)),
        });
      }
    }
  }

  const m = measure(id, 22, tools);

  // Where an update's time goes: one more, untimed run of the first change per runtime (first kmod
  // format) with DEPMOD_TX_TRACE=1; it is checked like the timed ones.
  if (kind === 'ten') {
    const km = kmods[0]!;
    const s = sets[0]!;
    for (const rt of runtimes) {
      const { t, place } = txTrees.get(txId(km, rt))!;
      place(outBefore(s));
      untimed(txArgv(rt, ['update', '-b', t.root, t.kver]), km.env);
      place(outAfter(s));
      const t0 = process.hrtime.bigint();
      const stderr = untimed(txArgv(rt, ['update', '-b', t.root, t.kver, ...s.rels.map((r) => join(t.moddir, r))]), { ...km.env, DEPMOD_TX_TRACE: '1' });
      const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const d = differingOutputs(t.moddir, expected.get(`${km.format}/${s.key}`)!);
      if (d.length > 0) throw new Error(`${id}: the traced update wrote ${d.join(', ')} unlike kmod`);
      traces.push({ scenario: id, format: km.format, runtime: rt, wallMs, lines: stderr.split('\n').filter((l) => l.startsWith('depmod-tx trace:')) });
    }
  }

  for (const km of kmods) {
    for (const rt of runtimes) {
      const node = m.stats[nodeTool(rt).id]!;
      const points: Array<{ x: number; y: number; cpu: number; pr?: Stats }> = [];
      for (const s of sets) {
        const tx = m.stats[txId(km, rt, ` ${s.key}`)]!;
        const pr = m.stats[`PR 253 -I ${s.key}`];
        const targets: TargetResult[] = [];
        if (kind === 'ten') targets.push(ratioTarget('vs PR 253', tx, pr, GOALS.tenVsPr253(rt.major), 'PR 253'));
        if (kind === 'net-sound') targets.push(ratioTarget('vs PR 253', tx, pr, GOALS.manyVsPr253, 'PR 253'));
        targets.push(rssTarget('peak RSS', tx, GOALS.updateRssMb(s.rels.length)), identityTarget('identical', m.diff(txId(km, rt, ` ${s.key}`))));
        rows.push({
          issue: 22,
          scenario: id,
          label: kind === 'curve' ? `curve: ${s.label}` : `${s.label}, ${COMP_LABEL[comp]}`,
          format: km.format,
          runtime: rt,
          cells: { node, kmod: m.stats[`kmod ${km.oracle.version} -a`], pr253: pr, tx },
          targets,
          n: s.rels.length,
          bytes: s.bytes,
        });
        points.push({ x: s.bytes, y: tx.wallMs, cpu: tx.cpuMs, ...(pr && { pr }) });
      }
      if (kind === 'curve' && points.length >= 2) {
        const tx = fitLine(points);
        const prPoints = points.filter((p) => p.pr !== undefined).map((p) => ({ x: p.x, y: p.pr!.wallMs }));
        fits.push({
          scenario: id,
          format: km.format,
          runtime: rt,
          tx,
          txCpu: fitLine(points.map((p) => ({ x: p.x, y: p.cpu }))),
          pr253: prPoints.length >= 2 ? fitLine(prPoints) : undefined,
          node,
          fixed: fixedPartTarget('fixed part', tx, node, GOALS.fixedPartMs),
        });
      }
    }
  }
  for (const s of sets) infoIdentity(`${id} (${s.key})`, 'PR 253 -I', pr253 && m.diff(`PR 253 -I ${s.key}`), "PR 253's own depmod -a of the same tree");
  const info = kmod34ForInfo();
  if (pr253 !== undefined && info !== undefined) {
    const last = sets[sets.length - 1]!;
    const own = writtenTo(join(dir, 'pr253-vs-kmod'), pr253After.get(last.key)!);
    infoIdentity(`${id} (${last.key})`, "PR 253's own depmod -a", differingOutputs(own, expected.get(`34/${last.key}`)!));
  }
  if (!opts.keep) rmSync(dir, { recursive: true, force: true });
}

/** A database written into a directory of its own (to compare it with differingOutputs). */
function writtenTo(dir: string, db: ReadonlyMap<string, Buffer>): string {
  mkdirSync(dir, { recursive: true });
  putOutputs(dir, db);
  return dir;
}

function noopScenario(comp: Compression): void {
  const id = `noop-${COMP_ID[comp]}`;
  const k = kernel(HELD, comp);
  const dir = join(work, id);
  // kmod's own "nothing to do" is `depmod -A` (no module newer than modules.dep): a baseline too.
  const tools: Tool[] = [
    ...runtimes.map(nodeTool),
    ...fullKmodTools(k, comp, dir, (km, t) => {
      untimed([...km.oracle.command, '-b', t.root, '-a', t.kver]);
      return [{ id: `kmod ${km.oracle.version} -A`, argv: [...km.oracle.command, '-b', t.root, '-A', t.kver] }];
    }),
  ];
  if (pr253 !== undefined) {
    const p = cloneTree(k, join(dir, 'pr253'));
    untimed([pr253.bin, '-b', p.root, '-a', p.kver]);
    const own = readOutputs(p.moddir);
    tools.push({ id: 'PR 253 -I -a', argv: [pr253.bin, '-b', p.root, '-I', '-a', p.kver], check: () => recordDiff('PR 253 -I -a', differingOutputs(p.moddir, own)) });
  }
  for (const km of kmods) {
    for (const rt of runtimes) {
      const t = cloneTree(k, join(dir, `tx${km.format}-${rt.tag}`));
      untimed(txArgv(rt, ['update', '-b', t.root, t.kver]), km.env);
      const tid = txId(km, rt);
      tools.push({
        id: tid,
        argv: txArgv(rt, ['update', '-b', t.root, t.kver]),
        env: km.env,
        check: () => recordDiff(tid, differingOutputs(t.moddir, reference(k, comp, km.oracle))),
      });
    }
  }
  const m = measure(id, 22, tools);
  for (const km of kmods) {
    for (const rt of runtimes) {
      const tx = m.stats[txId(km, rt)]!;
      const node = m.stats[nodeTool(rt).id]!;
      rows.push({
        issue: 22,
        scenario: id,
        label: `nothing changed, ${COMP_LABEL[comp]} (PR 253: -I -a; kmod -A in the notes)`,
        format: km.format,
        runtime: rt,
        cells: { node, kmod: m.stats[`kmod ${km.oracle.version} -a`], kmodQuick: m.stats[`kmod ${km.oracle.version} -A`], pr253: m.stats['PR 253 -I -a'], tx },
        targets: [ratioTarget('vs node -e 0', tx, node, GOALS.noopVsNode, 'node'), rssTarget('peak RSS', tx, GOALS.updateRssMb(0)), identityTarget('identical', m.diff(txId(km, rt)))],
        n: 0,
      });
    }
  }
  for (const km of kmods) notes.push(`${id}: kmod ${km.oracle.version} depmod -A (nothing to do): ${timeCell(m.stats[`kmod ${km.oracle.version} -A`])} ms`);
  infoIdentity(id, 'PR 253 -I -a', pr253 && m.diff('PR 253 -I -a'), "PR 253's own depmod -a");
  if (!opts.keep) rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Run and report.

for (const rt of runtimes) {
  untimed([rt.node, '-e', '0']);
  untimed([rt.node, CLI, '--version']);
}
const started = new Date();
const loadAtStart = loadavg();
let failure: unknown;
try {
  for (const s of chosen) {
    console.error(`bench: scenario ${s.id}`);
    s.run();
  }
} catch (err) {
  failure = err;
} finally {
  cleanup();
}

const cell = (r: Row, column: string): string => verdict(r.targets.find((t) => t.column === column), column === 'identical');
const rssPair = (r: Row, other: CellKey): string => {
  const o = r.cells[other];
  return `${r.cells.tx ? fmtMb(r.cells.tx.rssMb) : '—'} / ${o ? fmtMb(o.rssMb) : '—'}`;
};
const absent = (b: KmodBuild | undefined, s: Stats | undefined): string => (b === undefined ? 'not present' : timeCell(s));

function gitDescribe(): string {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).stdout.trim();
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repoRoot, encoding: 'utf8' }).stdout.trim() !== '';
  return `${head || 'unknown'}${dirty ? ' (with uncommitted changes)' : ''}`;
}

const held = kernelMemo.get(`${HELD}/xz`) ?? kernelMemo.get(`${HELD}/none`) ?? kernelMemo.get(`${HELD}/zst`);
const md: string[] = [
  `# depmod-tx bench: issues 22 and 25`,
  '',
  `${started.toISOString()}, depmod-tx ${gitDescribe()}, ${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores, load average ${loadAtStart} at start and ${loadavg()} at end; ` +
    `${opts.runs} run${opts.runs > 1 ? 's' : ''} per command, alternating; page cache ${opts.dropCaches ? 'dropped before each command' : 'warm'}.`,
  '',
  'Times are medians in ms: wall time including process start, then user+sys CPU time (GNU time; includes helper processes such as xz). ' +
    'Ratios divide wall-time medians of the same run (the CPU-time ratio in parentheses). Peak RSS is the highest of the runs. ' +
    'Goals are those of the issues; the kmod 30 rows are held to the same goals against kmod 30.',
  '',
  `- tree: ${held ? `Debian 13's ${treeLabel(held)} (.ko.xz as shipped; .ko and .ko.zst made from it)` : 'the held-out 6.12 tree was not used'}`,
  `- runtimes: ${runtimes.map((rt) => `${rtName(rt)} (${rt.node})`).join(', ')}${runtimeNotes.length ? `; ${runtimeNotes.join('; ')}` : ''}`,
  `- kmod: ${kmods.map((k) => `${kmodName(k.format)} (${k.oracle.command.join(' ')})`).join(', ')}`,
  `- PR 253: ${pr253 ? `${pr253.bin} (kmod version ${pr253.version})` : `not present (${join(buildsDir, 'pr253', 'bin', 'depmod')})`}; ` +
    `kmod master: ${master ? `${master.bin} (kmod version ${master.version})` : `not present (${join(buildsDir, 'master', 'bin', 'depmod')})`}; ` +
    `release builds: ${releaseBuilds.length ? releaseBuilds.map((b) => `${b.bin} (${b.version})`).join(', ') : 'none'}`,
  '- depmod-tx writes the kmod format of the `depmod` first on PATH (as on a real system); the kmod column is that kmod.',
  '',
];
const r22 = rows.filter((r) => r.issue === 22 && r.scenario !== 'curve-xz');
if (r22.length) {
  md.push('## Issue 22: updates', '');
  md.push(
    ...markdownTable(
      ['scenario', 'kmod', 'depmod-tx on', 'node -e 0', 'kmod depmod -a', 'PR 253 depmod -I', 'depmod-tx update', 'peak RSS tx / PR 253', 'vs PR 253', 'vs node -e 0', 'peak RSS goal', 'identical'],
      r22.map((r) => [r.label, kmodName(r.format), rtName(r.runtime), timeCell(r.cells.node), timeCell(r.cells.kmod), absent(pr253, r.cells.pr253), timeCell(r.cells.tx), rssPair(r, 'pr253'), cell(r, 'vs PR 253'), cell(r, 'vs node -e 0'), cell(r, 'peak RSS'), cell(r, 'identical')]),
      new Set([3, 4, 5, 6, 7]),
    ),
    '',
  );
}
const curve = rows.filter((r) => r.scenario === 'curve-xz');
if (curve.length) {
  md.push('## Issue 22: update time against the bytes changed (.ko.xz)', '');
  md.push(
    ...markdownTable(
      ['modules added', 'MB', 'kmod', 'depmod-tx on', 'node -e 0', 'PR 253 depmod -I', 'depmod-tx update', 'peak RSS tx / PR 253', 'peak RSS goal', 'identical'],
      curve.map((r) => [String(r.n), ((r.bytes ?? 0) / 1e6).toFixed(2), kmodName(r.format), rtName(r.runtime), timeCell(r.cells.node), absent(pr253, r.cells.pr253), timeCell(r.cells.tx), rssPair(r, 'pr253'), cell(r, 'peak RSS'), cell(r, 'identical')]),
      new Set([0, 1, 4, 5, 6, 7]),
    ),
    '',
    'Least-squares line time = a + b·bytes over the medians above (bytes: the changed files as they lie on disk, compressed):',
    '',
    ...markdownTable(
      ['kmod', 'depmod-tx on', 'a (ms)', 'fixed part a − node -e 0', 'b (ms per MB)', 'R²', 'CPU: a − node, b', 'PR 253: a, b'],
      fits.map((f) => [
        kmodName(f.format),
        rtName(f.runtime),
        fmtMs(f.tx.a),
        verdict(f.fixed),
        (f.tx.b * 1e6).toFixed(1),
        f.tx.r2.toFixed(3),
        `${fmtMs(f.txCpu.a - f.node.cpuMs)} ms, ${(f.txCpu.b * 1e6).toFixed(1)} ms/MB`,
        f.pr253 ? `${fmtMs(f.pr253.a)} ms, ${(f.pr253.b * 1e6).toFixed(1)} ms/MB` : pr253 ? '—' : 'not present',
      ]),
      new Set([2, 4, 5]),
    ),
    '',
  );
}
if (traces.length) {
  md.push('## Issue 22: where a 10-module update goes (one more, untimed run with DEPMOD_TX_TRACE=1)', '');
  for (const t of traces) {
    const phases = t.lines.map((l) => l.replace(/^depmod-tx trace: [^:]+: /, '')).join('; ');
    md.push(`- ${t.scenario}, ${kmodName(t.format)}, ${rtName(t.runtime)}: ${fmtMs(t.wallMs)} ms wall; ${phases || 'no trace lines'}`);
  }
  md.push('');
}
const r25 = rows.filter((r) => r.issue === 25);
if (r25.length) {
  md.push('## Issue 25: cold builds', '');
  md.push(
    ...markdownTable(
      [
        'scenario', 'kmod', 'depmod-tx on', 'node -e 0', 'kmod depmod -a', 'master depmod -a', 'depmod-tx', 'peak RSS tx / kmod', 'vs kmod -a',
        'peak RSS goal', 'background build', 'background RSS goal', 'identical',
      ],
      r25.map((r) => [
        r.label,
        kmodName(r.format),
        rtName(r.runtime),
        timeCell(r.cells.node),
        timeCell(r.cells.kmod),
        absent(master, r.cells.master),
        timeCell(r.cells.tx),
        rssPair(r, 'kmod'),
        cell(r, 'vs kmod -a'),
        cell(r, 'peak RSS'),
        timeCell(r.cells.background),
        cell(r, 'background RSS'),
        cell(r, 'identical'),
      ]),
      new Set([3, 4, 5, 6, 7, 10]),
    ),
    '',
  );
}
if (notes.length) md.push('## Notes', '', ...notes.map((n) => `- ${n}`), '');
if (failure !== undefined) md.push('## Bench failed', '', '```', String(failure instanceof Error ? failure.message : failure), '```', '');

const allTargets = [...rows.flatMap((r) => r.targets), ...fits.map((f) => f.fixed)];
const failed = allTargets.filter((t) => t.pass === false && t.column !== 'identical');
const differ = rows.filter((r) => r.targets.some((t) => t.column === 'identical' && t.pass === false));
md.push(
  `${allTargets.filter((t) => t.pass === true).length} checks pass, ${failed.length} goals FAIL, ` +
    `${allTargets.filter((t) => t.pass === undefined).length} not checkable; ${differ.length} rows with output differing from kmod.`,
  '',
);

const text = md.join('\n');
process.stdout.write(text);
writeFileSync(opts.out, text);
writeFileSync(
  jsonPathFor(opts.out),
  `${JSON.stringify(
    {
      started: started.toISOString(),
      depmodTx: gitDescribe(),
      options: opts,
      loadAtStart,
      runtimes,
      kmods: kmods.map((k) => ({ format: k.format, version: k.oracle.version, command: k.oracle.command })),
      master: master ?? null,
      pr253: pr253 ?? null,
      releaseBuilds,
      rows: rows.map((r) => ({ ...r, runtime: r.runtime.tag })),
      fits: fits.map((f) => ({ ...f, runtime: f.runtime.tag })),
      traces: traces.map((t) => ({ ...t, runtime: t.runtime.tag })),
      notes,
      scenarios: records,
      failure: failure === undefined ? null : String(failure instanceof Error ? failure.message : failure),
    },
    null,
    2,
  )}\n`,
);
console.error(`bench: written to ${opts.out} and ${jsonPathFor(opts.out)}`);
if (failure !== undefined) {
  console.error(failure);
  process.exitCode = 70;
} else process.exitCode = failed.length > 0 || differ.length > 0 ? 1 : 0;
