// The pure half of `npm run bench` (scripts/bench.ts): its options, which modules a scenario changes,
// how runs are ordered, what GNU time reports, medians, the least-squares line of the update curve,
// the goals of issues 22 and 25 and the cells of the result tables. No I/O here, so
// test/scripts/bench-stats.test.ts can pin each piece.

export interface BenchOptions {
  runs: number;
  quick: boolean;
  /** Scenario id substrings; empty: every scenario. */
  only: string[];
  out: string;
  keep: boolean;
  /** Runtimes given with --node (none: the Node running the bench). */
  nodes: string[];
  allNodes: boolean;
  /** kmod output formats to measure ("30", "34"). */
  formats: Array<'30' | '34'>;
  dropCaches: boolean;
  list: boolean;
  help: boolean;
}

export const USAGE = `usage: npm run bench -- [--runs N] [--quick] [--only SUBSTR[,SUBSTR...]] [--out FILE] [--keep]
                        [--node PATH]... [--all-nodes] [--formats 30,34] [--drop-caches] [--list]`;

/** Parses the bench's argv; a string is the usage error to print. */
export function parseBenchArgs(argv: readonly string[], defaultOut: string): BenchOptions | string {
  const o: BenchOptions = {
    runs: 5,
    quick: false,
    only: [],
    out: defaultOut,
    keep: false,
    nodes: [],
    allNodes: false,
    formats: ['30', '34'],
    dropCaches: false,
    list: false,
    help: false,
  };
  let runsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string | undefined => {
      const v = argv[++i];
      return v === undefined || v.startsWith('--') ? undefined : v;
    };
    if (a === '--runs') {
      const v = value();
      o.runs = v === undefined ? NaN : Number(v);
      if (!Number.isInteger(o.runs) || o.runs < 1) return `--runs wants a positive integer, not ${v ?? 'nothing'}`;
      runsGiven = true;
    } else if (a === '--quick') o.quick = true;
    else if (a === '--only') {
      const v = value();
      if (v === undefined) return '--only wants a scenario id substring';
      o.only.push(...v.split(',').filter((s) => s !== ''));
    } else if (a === '--out') {
      const v = value();
      if (v === undefined) return '--out wants a file name';
      o.out = v;
    } else if (a === '--keep') o.keep = true;
    else if (a === '--node') {
      const v = value();
      if (v === undefined) return '--node wants the path of a node binary';
      o.nodes.push(v);
    } else if (a === '--all-nodes') o.allNodes = true;
    else if (a === '--formats') {
      const v = value() ?? '';
      const fs = v.split(',').filter((s) => s !== '');
      if (fs.length === 0 || fs.some((f) => f !== '30' && f !== '34')) return `--formats wants 30, 34 or 30,34, not ${v || 'nothing'}`;
      o.formats = [...new Set(fs as Array<'30' | '34'>)];
    } else if (a === '--drop-caches') o.dropCaches = true;
    else if (a === '--list') o.list = true;
    else if (a === '--help' || a === '-h') o.help = true;
    else return `unknown option ${a}`;
  }
  if (o.quick && !runsGiven) o.runs = 1;
  return o;
}

/** The JSON file written next to the Markdown one. */
export function jsonPathFor(mdPath: string): string {
  return `${mdPath.replace(/\.md$/, '')}.json`;
}

/** Whether a scenario id is selected by --only (substrings, any of them). */
export function selected(id: string, only: readonly string[]): boolean {
  return only.length === 0 || only.some((s) => id.includes(s));
}

/**
 * The order tools run in for run `run` (0-based): the list rotated by one per run, so each tool is
 * first, last and next to each other in turn and the machine's load drifts over all of them alike.
 */
export function rotation(n: number, run: number): number[] {
  return Array.from({ length: n }, (_, i) => (i + run) % n);
}

export interface Sample {
  /** Wall time in ms, process start included (measured around the spawn). */
  wallMs: number;
  /** User + system CPU time in ms, the process and the children it waited for. */
  cpuMs: number;
  /** Peak resident set in MB (the largest single process, as getrusage reports it). */
  rssMb: number;
}

/**
 * What `/usr/bin/time -f '%e %U %S %M'` wrote: the last line holds the figures (a failing command
 * gets a "Command exited with non-zero status N" line before it).
 */
export function parseGnuTime(text: string): { userMs: number; sysMs: number; maxRssKb: number } {
  const line = text.trim().split('\n').pop() ?? '';
  const f = line.trim().split(/\s+/).map(Number);
  if (f.length !== 4 || f.some((x) => !Number.isFinite(x))) throw new Error(`GNU time wrote ${JSON.stringify(text)}, not "%e %U %S %M"`);
  return { userMs: f[1]! * 1000, sysMs: f[2]! * 1000, maxRssKb: f[3]! };
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of nothing');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Stats {
  runs: number;
  /** Medians over the runs. */
  wallMs: number;
  cpuMs: number;
  /** The highest peak RSS of any run. */
  rssMb: number;
  minWallMs: number;
  maxWallMs: number;
}

export function summarize(samples: readonly Sample[]): Stats {
  const wall = samples.map((s) => s.wallMs);
  return {
    runs: samples.length,
    wallMs: median(wall),
    cpuMs: median(samples.map((s) => s.cpuMs)),
    rssMb: Math.max(...samples.map((s) => s.rssMb)),
    minWallMs: Math.min(...wall),
    maxWallMs: Math.max(...wall),
  };
}

export interface LineFit {
  /** Intercept (y at x = 0). */
  a: number;
  /** Slope (y per unit of x). */
  b: number;
  /** Coefficient of determination; 1 when every point lies on the line (or y is constant). */
  r2: number;
}

/** Ordinary least squares y = a + b·x; needs two points with different x. */
export function fitLine(points: ReadonlyArray<{ x: number; y: number }>): LineFit {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (const p of points) {
    sxx += (p.x - mx) ** 2;
    sxy += (p.x - mx) * (p.y - my);
    syy += (p.y - my) ** 2;
  }
  if (n < 2 || sxx === 0) throw new Error('a line fit needs two points with different x');
  const b = sxy / sxx;
  const a = my - b * mx;
  const sse = points.reduce((s, p) => s + (p.y - a - b * p.x) ** 2, 0);
  return { a, b, r2: syy === 0 ? 1 : 1 - sse / syy };
}

/** `n` entries spread evenly over a sorted list (different directories, as a real package's are). */
export function spread<T>(all: readonly T[], n: number): T[] {
  if (n > all.length) throw new Error(`cannot pick ${n} of ${all.length}`);
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(all[Math.floor(((i + 0.5) * all.length) / n)]!);
  return out;
}

/** modules.dep as kmod writes it: each module (path relative to the module directory) and the modules it needs. */
export function parseModulesDep(text: string): Map<string, string[]> {
  const dep = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon < 0) throw new Error(`modules.dep line without a colon: ${JSON.stringify(line)}`);
    const needs = line.slice(colon + 1).trim();
    dep.set(line.slice(0, colon), needs === '' ? [] : needs.split(/\s+/));
  }
  return dep;
}

/** The modules no other module needs, sorted: what a package can add or drop without breaking another module. */
export function leafModules(dep: ReadonlyMap<string, readonly string[]>): string[] {
  const needed = new Set<string>();
  for (const needs of dep.values()) for (const d of needs) needed.add(d);
  return [...dep.keys()].filter((m) => !needed.has(m)).sort();
}

/**
 * `seed` and every module that needs one of them (modules.dep lists the whole chain), sorted: a set
 * whose removal leaves no other module without what it needs, as a package's removal does.
 */
export function withUsers(dep: ReadonlyMap<string, readonly string[]>, seed: Iterable<string>): string[] {
  const out = new Set(seed);
  for (const [m, needs] of dep) if (needs.some((d) => out.has(d))) out.add(m);
  return [...out].sort();
}

/** The goals of issues 22 (updates) and 25 (cold builds), as the bench checks them. */
export const GOALS = {
  /** 10 modules added: ≤ 0.6× PR 253's depmod -I on Node 20 and 22, ≤ 1.0× on Debian 12's nodejs 18. */
  tenVsPr253: (nodeMajor: number): number => (nodeMajor < 20 ? 1.0 : 0.6),
  /** Hundreds of modules (drivers/net + sound) added, and removed again. */
  manyVsPr253: 0.5,
  /** Nothing changed, against `node -e 0` on the same runtime. */
  noopVsNode: 1.3,
  /** Intercept of the update curve above `node -e 0`, ms. */
  fixedPartMs: 50,
  /** Peak RSS of an update, MB: ≤ 100 for up to 100 changed modules, ≤ 150 for any. */
  updateRssMb: (changed: number): number => (changed <= 100 ? 100 : 150),
  /** Peak RSS of a cold build (and of the background build the depmod front end starts), MB. */
  coldRssMb: 150,
  /** Cold build against kmod's depmod -a: ≤ 1.0× for .ko and .ko.zst, ≤ 0.6× for .ko.xz (two cores against one). */
  coldVsKmod: (xz: boolean): number => (xz ? 0.6 : 1.0),
} as const;

/** One goal of issue 22 or 25 checked on one row. */
export interface TargetResult {
  /** The table column it is shown in. */
  column: string;
  /** What the issue asks, e.g. "≤ 0.6×". */
  want: string;
  /** What was measured, e.g. "0.41× (cpu 0.38×)". */
  got: string;
  pass: boolean | undefined;
  /** Why it could not be checked (a baseline not present). */
  missing?: string;
}

/** A ratio goal on wall times (the issues' measure); the CPU ratio is shown beside it. */
export function ratioTarget(column: string, tool: Stats, base: Stats | undefined, max: number, baseName: string): TargetResult {
  const want = `≤ ${max.toFixed(1)}×`;
  if (base === undefined) return { column, want, got: '—', pass: undefined, missing: `${baseName} not present` };
  const r = tool.wallMs / base.wallMs;
  return { column, want, got: `${fmtRatio(r)} (cpu ${fmtRatio(tool.cpuMs / base.cpuMs)})`, pass: r <= max };
}

export function rssTarget(column: string, tool: Stats, maxMb: number): TargetResult {
  return { column, want: `≤ ${maxMb} MB`, got: fmtMb(tool.rssMb), pass: tool.rssMb <= maxMb };
}

export function identityTarget(column: string, differing: readonly string[]): TargetResult {
  const pass = differing.length === 0;
  return { column, want: 'identical', got: pass ? 'identical' : `${differing.join(', ')} differ`, pass };
}

/** A "fixed part above node -e 0" goal of the curve: intercept minus node's median. */
export function fixedPartTarget(column: string, fit: LineFit, node: Stats, maxMs: number): TargetResult {
  const fixed = fit.a - node.wallMs;
  return { column, want: `≤ ${maxMs} ms`, got: `${fmtMs(fixed)} ms`, pass: fixed <= maxMs };
}

/**
 * A target's table cell: "0.41× (cpu 0.38×) ≤ 0.6×: pass"; `brief` leaves the measured value out
 * (shown in a column of its own) and states an identity as just pass or what differs.
 */
export function verdict(t: TargetResult | undefined, brief = false): string {
  if (t === undefined) return '—';
  if (t.pass === undefined) return t.missing ?? '—';
  const word = t.pass ? 'pass' : 'FAIL';
  if (brief) return t.pass || t.got === t.want ? word : `${word}: ${t.got}`;
  return t.got === t.want ? word : `${t.got} ${t.want}: ${word}`;
}

export function fmtMs(ms: number): string {
  return Math.round(ms).toLocaleString('en-US');
}

export function fmtMb(mb: number): string {
  return `${Math.round(mb)} MB`;
}

export function fmtRatio(r: number): string {
  return `${r.toFixed(r < 10 ? 2 : 1)}×`;
}

/** A time cell: median wall ms, then median CPU ms. */
export function timeCell(s: Stats | undefined): string {
  return s === undefined ? '—' : `${fmtMs(s.wallMs)} (cpu ${fmtMs(s.cpuMs)})`;
}

/** A Markdown table; cells must not hold a pipe. */
export function markdownTable(head: readonly string[], rows: ReadonlyArray<readonly string[]>, rightAligned: ReadonlySet<number> = new Set()): string[] {
  const esc = (c: string): string => c.replaceAll('|', '\\|');
  return [
    `| ${head.map(esc).join(' | ')} |`,
    `| ${head.map((_, i) => (rightAligned.has(i) ? '---:' : '---')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ];
}
