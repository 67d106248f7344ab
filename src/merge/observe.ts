// The observe phase of a merge: what changed in the tree since the cache was written, found from
// what changed (git's index model): the directories whose mtime moved and those holding a path the
// transaction named are listed again and compared with their cached listing; only their entries are
// stat'ed. Nothing walks or stats the whole tree.
import type { DirEntry, DirListings } from '../cache/format.ts';
import { fingerprintOf } from '../cache/store.ts';
import type { DepmodConfig } from '../depmod/config.ts';
import type { Fingerprint } from '../depmod/module-set.ts';
import { hasModuleSuffix, isExcludedEntry } from '../depmod/search.ts';
import { listDirIfPossible, statTypeFollowingLinks } from '../io/tree.ts';
import { mtimeNs, vanished } from './merge.ts';
import type { Observed } from './plan.ts';

export interface ObserveInput {
  moddir: string;
  config: DepmodConfig;
  suffixes: readonly string[];
  /** Cached listings by directory key, and the modules that lose to a same-named file. */
  dirEntries: DirListings;
  shadowed: ReadonlyArray<readonly [string, string]>;
  /** Directories to list again: mtime moved, or a path the transaction touched lies below. */
  relist: ReadonlySet<string>;
  /** Paths the transaction touched (cache keys). */
  hints: ReadonlySet<string>;
}

export interface Observation extends Observed {
  /** Directory mtimes now, for the directories listed (new ones included). */
  mtimes: Map<string, string>;
  /** Listings now of the directories listed (for the cache). */
  listings: Map<string, DirEntry[]>;
}

const absDirOf = (moddir: string, key: string): string => (key === '' ? moddir : key.startsWith('/') ? key : `${moddir}/${key}`);
const childKey = (dir: string, name: string): string => (dir === '' ? name : `${dir}/${name}`);

export function observeTree(input: ObserveInput): Observation {
  const { moddir, config } = input;
  const cached = input.dirEntries;
  const relisted = new Map<string, DirEntry[] | undefined>();
  const mtimes = new Map<string, string>();
  const listings = new Map<string, DirEntry[]>();
  const files = new Map<string, { abs: string; fp: Fingerprint | null; walked: boolean }>();
  const goneDirs: string[] = [];
  let unsure: string | undefined;

  /** `listed`: the file was just seen in its directory, so its disappearing means the tree is changing under us. */
  const stat = (key: string, abs: string, walked: boolean, listed: boolean): void => {
    let fp: Fingerprint | null = null;
    try {
      fp = fingerprintOf(abs);
    } catch (err) {
      if (listed && (err as NodeJS.ErrnoException).code === 'ENOENT') throw vanished(key, err);
      fp = null;
    }
    files.set(key, { abs, fp, walked });
  };
  const isModule = (name: string): boolean => hasModuleSuffix(name, input.suffixes);
  /** Every file and directory a cached directory held, now gone. */
  const gone = (key: string): void => {
    goneDirs.push(key);
    for (const e of cached.get(key) ?? []) {
      const k = childKey(key, e.name);
      if (e.type === 'dir') gone(k);
      else if (isModule(e.name)) files.set(k, { abs: absDirOf(moddir, k), fp: null, walked: false });
    }
  };
  const typeOf = (abs: string, e: DirEntry): 'file' | 'dir' | undefined => {
    if (e.type === 'file' || e.type === 'dir') return e.type;
    const t = statTypeFollowingLinks(abs);
    if (t === 'file' || t === 'dir') return t;
    unsure ??= `${abs}: ${t === undefined ? 'cannot be stat\'ed' : 'unsupported file type'} (depmod reports it)`;
    return undefined;
  };
  const list = (key: string, isNew: boolean): void => {
    if (relisted.has(key)) return;
    const abs = absDirOf(moddir, key);
    const m = mtimeNs(abs);
    const entries = m === undefined ? undefined : listDirIfPossible(abs);
    relisted.set(key, entries);
    if (entries === undefined) {
      if (!isNew) gone(key);
      return;
    }
    mtimes.set(key, m!);
    listings.set(key, entries);
    const before = new Map((isNew ? [] : cached.get(key) ?? []).map((e) => [e.name, e.type]));
    for (const e of entries) {
      if (isExcludedEntry(e.name, config.excludes)) continue;
      const k = childKey(key, e.name);
      const t = typeOf(`${abs}/${e.name}`, e);
      if (t === undefined) continue;
      const was = before.get(e.name);
      before.delete(e.name);
      if (t === 'dir') {
        if (was !== 'dir' && was !== 'link') list(k, true);
        else if (input.relist.has(k)) list(k, false);
      } else if (isModule(e.name)) stat(k, `${abs}/${e.name}`, true, true);
    }
    // What the cached listing had and the directory has no more.
    for (const [name, type] of before) {
      if (isExcludedEntry(name, config.excludes)) continue;
      const k = childKey(key, name);
      if (type === 'dir' || (type === 'link' && cached.get(k) !== undefined)) gone(k);
      else if (isModule(name)) files.set(k, { abs: `${abs}/${name}`, fp: null, walked: false });
    }
  };
  // A directory depmod's walk never enters (an excluded name on its path) is not listed.
  const walked = (key: string): boolean => key.startsWith('/') || key === '' || key.split('/').every((c) => !isExcludedEntry(c, config.excludes));
  for (const key of [...input.relist].sort()) if (walked(key)) list(key, cached.get(key) === undefined && key !== '');
  // A touched file not met above (its directory's listing did not change) is stat'ed itself.
  for (const key of input.hints) {
    const dir = key.includes('/') ? key.slice(0, key.lastIndexOf('/')) : '';
    // Its directory's listing (just taken) already says whether it is there.
    if (files.has(key) || !isModule(key) || relisted.has(dir)) continue;
    stat(key, absDirOf(moddir, key), walked(dir) && (relisted.get(dir) !== undefined || cached.get(dir) !== undefined), false);
  }
  for (const [key] of input.shadowed) if (!files.has(key)) stat(key, absDirOf(moddir, key), true, false);
  return { relisted, files, goneDirs, ...(unsure !== undefined ? { unsure } : {}), mtimes, listings };
}

/**
 * The order in which depmod's walk finds two files (negative: a first): the module directory, then
 * the external directories in the configuration's order; within a directory, readdir order.
 */
export function walkOrderOf(config: DepmodConfig, listing: (key: string) => readonly DirEntry[] | undefined): (a: string, b: string) => number {
  const rootIndex = (k: string): number => {
    if (!k.startsWith('/')) return -1;
    const i = config.externals.findIndex((e) => k.startsWith(`${e}/`));
    return i < 0 ? config.externals.length : i;
  };
  return (a, b) => {
    const ra = rootIndex(a);
    const rb = rootIndex(b);
    if (ra !== rb) return ra - rb;
    const pa = a.split('/');
    const pb = b.split('/');
    let dir = a.startsWith('/') ? '' : '';
    for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
      if (pa[i] !== pb[i]) {
        const entries = listing(dir) ?? [];
        return entries.findIndex((e) => e.name === pa[i]) - entries.findIndex((e) => e.name === pb[i]);
      }
      dir = dir === '' ? pa[i]! : `${dir}/${pa[i]}`;
    }
    return pa.length - pb.length;
  };
}
