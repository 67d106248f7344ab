// Module discovery as kmod v30's depmod does it (tools/depmod.c: depmod_modules_search,
// depmod_modules_search_path, depmod_modules_search_dir, should_exclude_dir,
// depmod_modules_search_file, depmod_module_is_higher_priority, depmod_module_add;
// shared/util.c: path_ends_with_kmod_ext, path_to_modname).
//
// The walk: the module directory first, then each external directory (newest config line first),
// every directory in readdir order. Which copy of a module name wins is decided here; the order of
// the module array is NOT (build.ts: it comes from kmod's hash table and modules.order).
//
// Pure: the shell passes a directory lister that returns entries in raw readdir order (opendir,
// not fs.readdir, which sorts) and a stat for entries whose type readdir did not give.
import type { DepmodConfig } from './config.ts';
import { depmodError, type DepmodMessage } from './diagnostic.ts';

export interface ListEntry {
  name: string;
  type: 'file' | 'dir' | 'link' | 'other';
}

export interface SearchIo {
  /**
   * Entries of the directory at `absDir` (a path built as kmod builds it: DIRNAME/sub/dir, or an
   * external directory from the config as written), in readdir order; undefined when it cannot be opened.
   */
  listDir(absDir: string): ListEntry[] | undefined;
  /** What a 'link' or 'other' entry is after following links (fstatat); undefined when stat fails. */
  statType?(absPath: string): 'file' | 'dir' | 'other' | undefined;
}

/** Module suffixes Debian's kmod 30 recognises (+ZSTD +XZ -ZLIB: .ko.gz files are not modules to it). */
export const KMOD30_DEBIAN_SUFFIXES: readonly string[] = ['.ko', '.ko.xz', '.ko.zst'];

export interface FoundModule {
  /** kmod's modname: file name up to its first '.', '-' turned into '_'. */
  name: string;
  /** Absolute path as kmod forms it (DIRNAME/rel or EXTERNAL/rel). */
  abspath: string;
  /** Path relative to DIRNAME when the module lies inside it (what modules.dep prints), else null. */
  relpath: string | null;
}

export interface SearchResult {
  /** Winners only, in the order they were (last) added during the walk. */
  modules: FoundModule[];
  /** Module files that lost to a file of the same name, in the order they lost. */
  shadowed: FoundModule[];
  warnings: DepmodMessage[];
}

/**
 * path_ends_with_kmod_ext: the name must be strictly longer than the suffix (".ko" alone is not a
 * module, "a.ko" is).
 */
export function hasModuleSuffix(name: string, suffixes: readonly string[] = KMOD30_DEBIAN_SUFFIXES): boolean {
  for (const s of suffixes) if (name.length > s.length && name.endsWith(s)) return true;
  return false;
}

/**
 * path_to_modname / modname_normalize: the base name up to its first '.', dashes to underscores.
 * So "foo.bar.ko" is module "foo" (kmod shows it: such a file is listed under that name).
 */
export function kmodModname(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const dot = base.indexOf('.');
  return (dot < 0 ? base : base.slice(0, dot)).replaceAll('-', '_');
}

/**
 * should_exclude_dir: applied to every directory entry (files too), not only directories. "build"
 * and "source" are the symlinks a kernel's headers add to the module directory.
 */
export function isExcludedEntry(name: string, excludes: readonly string[]): boolean {
  if (name === '.' || name === '..' || name === 'build' || name === 'source') return true;
  return excludes.includes(name);
}

/**
 * depmod_is_path_starts_with: `path` (the part kmod compares: without the suffix) lies strictly
 * below `prefix`.
 */
function pathStartsWithDir(path: string, prefix: string): boolean {
  return path.length > prefix.length && path[prefix.length] === '/' && path.startsWith(prefix);
}

/**
 * depmod_module_is_higher_priority: true when the module already chosen (`oldPath`) beats
 * `newPath`. Both paths are absolute and compared without their suffix (dir + '/' + modname length,
 * taken from the real file name). Rules, in kmod's order:
 *  1. overrides (newest first): an override naming the new path makes it win; naming the old keeps it.
 *  2. search list (newest first, index i): a path under a search dir gets priority i, later entries
 *     overwriting earlier ones; "built-in" sets the default priority of everything else; the
 *     "external" entry gives each external dir its own index, incrementing i per external dir (so the
 *     entries after it shift). When both paths fall under the same search dir only the new one gets
 *     that index (kmod tests the old path in an else branch).
 *  3. the old module stays when newprio <= oldprio: ties keep the first found. With the default
 *     config (search = [updates], no built-in) everything outside updates/ has priority -1, and a
 *     second copy inside updates/ replaces the first (0 > -1) — kmod's own behaviour.
 * The relative paths are taken whenever the absolute path starts with DIRNAME, without checking for
 * the '/' after it, exactly like kmod.
 */
export function existingModuleWins(config: DepmodConfig, dirname: string, oldStem: string, newStem: string): boolean {
  const rel = (p: string): string | null => (p.startsWith(dirname) ? p.slice(dirname.length + 1) : null);
  const relNew = rel(newStem);
  const relOld = rel(oldStem);
  for (const ov of config.overrides) {
    if (relNew !== null && relNew === ov.path) return false;
    if (relOld !== null && relOld === ov.path) return true;
  }
  let bprio = -1;
  let oldprio = -1;
  let newprio = -1;
  let i = 0;
  for (const se of config.searches) {
    if (se.kind === 'built-in') bprio = i;
    else if (se.kind === 'external') {
      for (const ext of config.externals) {
        if (pathStartsWithDir(newStem, ext)) newprio = i;
        if (pathStartsWithDir(oldStem, ext)) oldprio = i;
        i++;
      }
    } else if (relNew !== null && pathStartsWithDir(relNew, se.path)) newprio = i;
    else if (relOld !== null && pathStartsWithDir(relOld, se.path)) oldprio = i;
    i++;
  }
  if (newprio < 0) newprio = bprio;
  if (oldprio < 0) oldprio = bprio;
  return newprio <= oldprio;
}

/** The part of a module path kmod compares priorities on: directory + '/' + as many bytes as the modname has. */
function stemOf(abspath: string, modname: string): string {
  const slash = abspath.lastIndexOf('/');
  return abspath.slice(0, slash + 1 + modname.length);
}

export interface SearchOptions {
  /** kmod's cfg.dirname: ROOT/lib/modules/KVER, as depmod would spell it (no trailing slash). */
  dirname: string;
  config: DepmodConfig;
  io: SearchIo;
  suffixes?: readonly string[];
}

/** depmod_modules_search: walk DIRNAME, then the external directories, choosing one file per module name. */
export function searchModules(opts: SearchOptions): SearchResult {
  const { dirname, config, io } = opts;
  const suffixes = opts.suffixes ?? KMOD30_DEBIAN_SUFFIXES;
  const byName = new Map<string, FoundModule>();
  const warnings: DepmodMessage[] = [];

  const shadowed: FoundModule[] = [];
  const addFile = (abspath: string, name: string): void => {
    if (!hasModuleSuffix(name, suffixes)) return;
    const modname = kmodModname(name);
    if (modname === '') return;
    const relpath = abspath.startsWith(dirname) && abspath[dirname.length] === '/' ? abspath.slice(dirname.length + 1) : null;
    const found = { name: modname, abspath, relpath };
    const existing = byName.get(modname);
    if (existing !== undefined) {
      if (existingModuleWins(config, dirname, stemOf(existing.abspath, modname), stemOf(abspath, modname))) {
        shadowed.push(found);
        return;
      }
      shadowed.push(existing);
      byName.delete(modname);
    }
    byName.set(modname, found);
  };

  const walk = (dir: string, top: boolean): boolean => {
    const entries = io.listDir(dir);
    if (entries === undefined) {
      if (top) warnings.push(depmodError(`could not open directory ${dir}`));
      return false;
    }
    for (const e of entries) {
      if (isExcludedEntry(e.name, config.excludes)) continue;
      const path = `${dir}/${e.name}`;
      let type: 'file' | 'dir' | 'other' | undefined = e.type === 'file' ? 'file' : e.type === 'dir' ? 'dir' : undefined;
      if (type === undefined) {
        type = io.statType?.(path);
        if (type === undefined) {
          warnings.push(depmodError(`fstatat(${dir}, ${e.name}) failed`));
          continue;
        }
        if (type === 'other') {
          warnings.push(depmodError(`unsupported file type ${path}`));
          continue;
        }
      }
      if (type === 'dir') {
        if (!walk(path, false)) warnings.push(depmodError(`could not open directory ${path}`));
      } else addFile(path, e.name);
    }
    return true;
  };

  walk(dirname, true);
  for (const ext of config.externals) walk(ext, false);
  return { modules: [...byName.values()], shadowed, warnings };
}
