// Runs one depmod call (or a sequence) through kmod's depmod (an oracle) and through depmod-tx's
// `depmod` front end, on the same tree at the same path, and compares what a caller can see: the
// exit status, stdout (bytes), stderr, the files left in the tree (every modules.* file byte for
// byte, and the list of every other file). Used by test/cli/depmod-compat.test.ts.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUILT_BIN } from './cli.ts';
import type { DepmodOracle } from './kmod-oracles.ts';

export interface CallOutcome {
  status: number | null;
  stdout: Buffer;
  stderr: string;
  /** Relative path → bytes for modules.* files, '' for every other file (present, content not compared). */
  files: Map<string, string>;
  /** What the front end logged as handed to kmod's depmod during this step ('' for kmod's side). */
  handedOver: string;
}

export interface CompareStep {
  /** Arguments; '{R}' is replaced by the tree's root, '{T}' by the scratch directory beside it. */
  args: string[];
  /** Runs before the call (on both sides): change the tree. */
  before?: (root: string) => void;
  /** How stdout is compared: exactly (default), or only its first two lines (-V, where depmod-tx adds one). */
  stdout?: 'exact' | 'version';
}

export interface CompareCase {
  name: string;
  /** Makes the tree at `root` (which does not exist yet). */
  setup: (root: string) => void;
  steps: CompareStep[];
}

/** Files under `dir` (depmod-tx's state directories excluded): modules.* with their bytes, other files by name only. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  const walk = (d: string, rel: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (r === 'var/cache/depmod-tx' || r === 'var/lib/depmod-tx') continue;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p, r);
      else out.set(r, e.name.startsWith('modules.') && statSync(p).isFile() ? readFileSync(p).toString('base64') : '');
    }
  };
  walk(dir, '');
  return out;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): { status: number | null; stdout: Buffer; stderr: string } {
  // By the name package scripts use: getopt's messages start with argv[0].
  const r = spawnSync(cmd, args, { env, cwd, maxBuffer: 1 << 30, timeout: 300_000, argv0: cmd === process.execPath ? cmd : 'depmod' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('latin1') };
}

/** Every step of `c` on kmod's depmod, then on depmod-tx's front end; one outcome per step each. */
export function compareCalls(c: CompareCase, oracle: DepmodOracle): { theirs: CallOutcome[]; ours: CallOutcome[] } {
  const base = mkdtempSync(join(tmpdir(), 'dtx-compat-'));
  const root = join(base, 'r');
  const scratch = join(base, 't');
  const log = join(base, 'handover.log');
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${oracle.binDir}:${process.env.PATH ?? ''}:/usr/sbin:/sbin`, DEPMOD_TX_LOG: log, DEPMOD_TX_TRACE: '' };
  delete env.POSIXLY_CORRECT;
  const logged = (): string => (existsSync(log) ? readFileSync(log, 'utf8') : '');
  const side = (call: (args: string[]) => { status: number | null; stdout: Buffer; stderr: string }): CallOutcome[] => {
    rmSync(root, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
    c.setup(root);
    const outcomes: CallOutcome[] = [];
    for (const s of c.steps) {
      s.before?.(root);
      const before = logged().length;
      const r = call(s.args.map((a) => a.replaceAll('{R}', root).replaceAll('{T}', scratch)));
      const files = new Map([...snapshot(root), ...[...snapshot(scratch)].map(([k, v]) => [`{T}/${k}`, v] as [string, string])]);
      outcomes.push({ ...r, files, handedOver: logged().slice(before) });
    }
    return outcomes;
  };
  try {
    // Relative paths (-b r) resolve against the directory holding the tree.
    const cwd = base;
    const theirs = side((args) => run(oracle.command[0], [...oracle.command.slice(1), ...args], env, cwd));
    const ours = side((args) => run(process.execPath, [BUILT_BIN, 'depmod', ...args], env, cwd));
    return { theirs, ours };
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

/** What differs between two outcomes of one step (empty when a caller cannot tell them apart). */
export function outcomeDiff(theirs: CallOutcome, ours: CallOutcome, stdout: 'exact' | 'version' = 'exact'): string[] {
  const d: string[] = [];
  if (theirs.status !== ours.status) d.push(`exit status ${ours.status}, depmod ${theirs.status}`);
  const out = (b: Buffer): string => (stdout === 'version' ? b.toString('latin1').split('\n').slice(0, 2).join('\n') : b.toString('latin1'));
  if (out(theirs.stdout) !== out(ours.stdout)) d.push(`stdout differs (${ours.stdout.length} vs ${theirs.stdout.length} bytes): ${JSON.stringify(out(ours.stdout).slice(0, 200))} vs ${JSON.stringify(out(theirs.stdout).slice(0, 200))}`);
  if (theirs.stderr !== ours.stderr) {
    // From the first line that differs: real trees print thousands of lines with a long common start.
    const a = ours.stderr.split('\n');
    const b = theirs.stderr.split('\n');
    let i = 0;
    while (i < a.length && a[i] === b[i]) i++;
    const from = (lines: string[]): string => JSON.stringify(lines.slice(i, i + 4).join('\n').slice(0, 600));
    d.push(`stderr differs from line ${i + 1} (${a.length} vs ${b.length} lines):\n  ours:   ${from(a)}\n  depmod: ${from(b)}`);
  }
  for (const [f, v] of theirs.files) {
    const o = ours.files.get(f);
    if (o === undefined) d.push(`${f}: missing`);
    else if (o !== v) d.push(`${f}: differs`);
  }
  for (const f of ours.files.keys()) if (!theirs.files.has(f)) d.push(`${f}: extra file`);
  return d;
}
