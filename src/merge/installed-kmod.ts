// Which kmod's output to write: the one installed in the root being written (kmod 28 to 34 write
// different bytes, src/depmod/kmod-version.ts). Asked of the installed `depmod --version`:
//   --root /      the depmod on PATH (then /sbin, /usr/sbin);
//   --root DIR    DIR's own sbin/depmod or usr/sbin/depmod when it runs on this machine, else PATH's.
// kmod's own binary comes first under its diverted name, depmod.kmod (installing depmod-tx as the
// system's depmod renames kmod's), and a `depmod` that is depmod-tx itself is passed over. The answer
// is remembered per process and, by the binary's identity (size, mtime, inode), in the root's state
// directory, so a merge does not run depmod each time; a kmod upgrade changes the identity and is
// noticed by the next merge. A version that cannot be told falls back to the newest format with a
// warning, never an error.
import { closeSync, mkdirSync, openSync, readFileSync, readSync, realpathSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import { stateDirs } from '../cache/meta.ts';
import { kmodBehaviour, newestKmodBehaviour, NEWEST_KMOD, OLDEST_KMOD, parseDepmodVersionOutput, type KmodBehaviour } from '../depmod/kmod-version.ts';
import { UsageError } from '../errors.ts';

export interface KmodChoice {
  behaviour: KmodBehaviour;
  /** How it was chosen. */
  source: 'option' | 'installed' | 'fallback';
  /** The depmod binary asked, when one was. */
  depmod?: string;
  /** Set when the newest format was chosen for want of a readable version. */
  warning?: string;
}

/** `--kmod-version N`: the behaviour of kmod N, or a usage error naming the supported range. */
export function requestedKmod(version: string): KmodChoice {
  const behaviour = kmodBehaviour(version);
  if (behaviour === undefined) throw new UsageError(`--kmod-version ${version}: depmod-tx writes the formats of kmod ${OLDEST_KMOD} to ${NEWEST_KMOD}`);
  return { behaviour, source: 'option' };
}

function identity(path: string): string | undefined {
  try {
    const st = statSync(path);
    return st.isFile() ? `${st.size}:${st.mtimeMs}:${st.ino}` : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The line depmod-tx's own `depmod` front end carries (a script, or the program itself through a
 * link): such a depmod is not kmod's.
 */
export const FRONT_END_MARK = 'DEPMOD_TX_FRONT_END';

/** depmod-tx's own front end (a link to it or a script carrying FRONT_END_MARK) is not kmod. */
function isDepmodTx(path: string): boolean {
  try {
    if (basename(realpathSync(path)).startsWith('depmod-tx')) return true;
    const fd = openSync(path, 'r');
    try {
      const head = Buffer.alloc(4096);
      const n = readSync(fd, head, 0, head.length, 0);
      // An ELF binary is kmod's; a script is ours when it carries the mark.
      return !(head[0] === 0x7f && head[1] === 0x45) && head.subarray(0, n).includes(FRONT_END_MARK);
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** The depmod binaries to ask, best first. */
export function depmodCandidates(root: string, path = process.env.PATH ?? ''): string[] {
  const dirs = [...path.split(':').filter((d) => d.startsWith('/')), '/usr/sbin', '/sbin'];
  const onPath = [...new Set(['depmod.kmod', 'depmod'].flatMap((n) => dirs.map((d) => join(d, n))))];
  const inRoot = root === '/' ? [] : ['sbin/depmod.kmod', 'usr/sbin/depmod.kmod', 'sbin/depmod', 'usr/sbin/depmod'].map((p) => join(root, p));
  return [...inRoot, ...onPath];
}

interface Remembered {
  depmod: string;
  identity: string;
  version: string;
}

const memo = new Map<string, KmodChoice>();

/**
 * The kmod installed for `root` (see the file header). `persist: false` (--outdir, check) keeps the
 * answer in this process only: nothing under the root is written.
 */
export function installedKmod(root: string, opts: { persist?: boolean } = {}): KmodChoice {
  const hit = memo.get(root);
  if (hit !== undefined) return hit;
  const stateFile = join(stateDirs(root).cache, 'kmod-version.json');
  let remembered: Remembered | undefined;
  try {
    remembered = JSON.parse(readFileSync(stateFile, 'utf8')) as Remembered;
  } catch {
    /* none yet */
  }
  let choice: KmodChoice | undefined;
  for (const depmod of depmodCandidates(root)) {
    const id = identity(depmod);
    if (id === undefined || isDepmodTx(depmod)) continue;
    let version: string | undefined;
    if (remembered?.depmod === depmod && remembered.identity === id) version = remembered.version;
    else {
      // child_process is loaded only here: the remembered answer is the usual case (start-up cost).
      // By the name depmod: kmod is one binary that picks its tool by argv[0], and kmod's depmod
      // renamed to depmod.kmod (diverted) would otherwise answer as an unknown command.
      const { spawnSync } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
      const r = spawnSync(depmod, ['--version'], { encoding: 'utf8', timeout: 10_000, argv0: 'depmod' });
      if (r.status !== 0) continue; // e.g. another architecture's binary in an image root
      version = parseDepmodVersionOutput(r.stdout);
      if (version === undefined) continue;
      if (opts.persist !== false) remember(stateFile, { depmod, identity: id, version });
    }
    const behaviour = kmodBehaviour(version);
    choice =
      behaviour !== undefined
        ? { behaviour, source: 'installed', depmod }
        : {
            behaviour: newestKmodBehaviour(),
            source: 'fallback',
            depmod,
            warning: `${depmod} is kmod ${version}, not one of kmod ${OLDEST_KMOD} to ${NEWEST_KMOD}: writing kmod ${NEWEST_KMOD}'s format`,
          };
    break;
  }
  choice ??= {
    behaviour: newestKmodBehaviour(),
    source: 'fallback',
    warning: `no runnable kmod depmod found (PATH, /sbin, /usr/sbin${root === '/' ? '' : `, ${root}`}): writing kmod ${NEWEST_KMOD}'s format`,
  };
  memo.set(root, choice);
  return choice;
}

/** Best effort: a state directory that cannot be written only costs one `depmod --version` next time. */
function remember(file: string, r: Remembered): void {
  try {
    mkdirSync(join(file, '..'), { recursive: true, mode: 0o755 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(r), { mode: 0o644 });
    renameSync(tmp, file);
  } catch {
    /* read-only root or no permission */
  }
}
