// depmod.d configuration as kmod v30's depmod reads it (tools/depmod.c: cfg_load, cfg_files_list,
// cfg_files_filter_out, cfg_files_insert_sorted, cfg_file_parse, cfg_kernel_matches, cfg_*_add;
// shared/util.c: freadline_wrapped).
//
// File layout: one directive per logical line; a backslash before a newline joins lines; fields are
// split on spaces and tabs; a line whose first byte is '#' or that is empty is skipped.
//   search  PATH|built-in|external ...      (no search line at all: "updates" alone)
//   override MODNAME KVER-REGEX SUBDIR
//   external KVER-REGEX DIR
//   exclude NAME ...
//   include / make_map_files                 (accepted, not implemented, as in kmod)
// kmod prepends every directive to a singly linked list, so its lists run newest first. Module
// priorities (search.ts) and the order external directories are walked depend on that, so the
// lists below keep kmod's newest-first order.
//
// Pure: the shell lists the directories and reads the files; this module decides which files count,
// in which order, and what they say. Problems are returned as warnings in depmod's own wording,
// because depmod reports them and carries on.

/** The directories kmod 30 reads when -C is not given (default_cfg_paths; SYSCONFDIR is /etc on Debian). */
export const DEFAULT_CONFIG_DIRS: readonly string[] = ['/etc/depmod.d', '/run/depmod.d', '/usr/local/lib/depmod.d', '/lib/depmod.d'];

export type SearchEntry = { kind: 'path'; path: string } | { kind: 'built-in' } | { kind: 'external' };

export interface DepmodConfig {
  /** Newest first (kmod's list order). Never empty after parsing: defaults to [updates]. */
  searches: SearchEntry[];
  /** Newest first. `path` is SUBDIR/MODNAME without suffix, matched against a module's relative path. */
  overrides: Array<{ modname: string; subdir: string; path: string }>;
  /** Newest first; also the order depmod walks them after the module directory. */
  externals: string[];
  /** Directory-entry names skipped anywhere in the walk (besides ., .., build, source). */
  excludes: string[];
}

/** A message depmod prints (level 'error' → "depmod: ERROR: ...") or logs only with -v ('info'). */
export interface ConfigWarning {
  level: 'error' | 'info';
  file: string;
  line?: number;
  message: string;
}

export interface ConfigFile {
  path: string;
  text: string;
}

export interface ConfigListing {
  /** A directory (as given in the search list) or, for -C FILE, the file itself. */
  path: string;
  /**
   * The directory's entries (any order: kmod sorts them), or 'file' when `path` is a plain file,
   * or undefined when it does not exist (silently skipped, as kmod does).
   */
  entries: Array<{ name: string; type: 'file' | 'dir' | 'link' | 'other' }> | 'file' | undefined;
}

/**
 * Which config files kmod reads and in which order (cfg_files_list + cfg_files_insert_sorted):
 * all candidate names sorted by strcmp across directories; a name already taken by an earlier
 * directory hides the same name in later ones; names starting with '.' are skipped silently, names
 * not ending in ".conf" with an info message, directories with an error. Links are taken as files
 * (kmod stats them; the shell should resolve a link to a directory to type 'dir').
 */
export function configFileOrder(listings: readonly ConfigListing[]): { paths: string[]; warnings: ConfigWarning[] } {
  const chosen: Array<{ name: string; path: string }> = [];
  const warnings: ConfigWarning[] = [];
  const insert = (name: string, path: string): void => {
    let i = 0;
    for (; i < chosen.length; i++) {
      const cmp = compareBytes(name, chosen[i]!.name);
      if (cmp === 0) return; // a file of that name was already found in an earlier directory
      if (cmp < 0) break;
    }
    chosen.splice(i, 0, { name, path });
  };
  for (const l of listings) {
    if (l.entries === undefined) continue;
    if (l.entries === 'file') {
      const slash = l.path.lastIndexOf('/');
      insert(l.path.slice(slash + 1), l.path);
      continue;
    }
    for (const e of l.entries) {
      if (e.name.startsWith('.')) continue;
      if (e.name.length < 6 || !e.name.endsWith('.conf')) {
        warnings.push({ level: 'info', file: `${l.path}/${e.name}`, message: `All cfg files need .conf: ${l.path}/${e.name}` });
        continue;
      }
      if (e.type === 'dir') {
        warnings.push({
          level: 'error',
          file: `${l.path}/${e.name}`,
          message: `Directories inside directories are not supported: ${l.path}/${e.name}`,
        });
        continue;
      }
      insert(e.name, `${l.path}/${e.name}`);
    }
  }
  return { paths: chosen.map((c) => c.path), warnings };
}

function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Splits a config file into logical lines the way freadline_wrapped does: a backslash-newline pair
 * continues the line (the reported number is that of the last physical line); a backslash before
 * any other character is dropped and the character kept; a final line without newline still counts.
 */
export function configLogicalLines(text: string): Array<{ text: string; line: number }> {
  const out: Array<{ text: string; line: number }> = [];
  let buf = '';
  let started = false;
  let line = 0;
  let pending = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\n') {
      pending++;
      line += pending;
      pending = 0;
      out.push({ text: buf, line });
      buf = '';
      started = false;
    } else if (ch === '\\') {
      const next = text[i + 1];
      i++;
      if (next === '\n') {
        pending++;
        started = true;
      } else if (next !== undefined) {
        buf += next;
        started = true;
      }
    } else {
      buf += ch;
      started = true;
    }
  }
  if (started || buf.length > 0) {
    line += pending + 1;
    out.push({ text: buf, line });
  }
  return out;
}

/**
 * cfg_kernel_matches: "*" matches every kernel; anything else is a POSIX extended regular expression
 * searched (unanchored) in the kernel version; a pattern that does not compile matches nothing.
 * JavaScript's RegExp stands in for regcomp(REG_EXTENDED): identical for the patterns depmod.d files
 * use (literals, ., *, +, ?, [], ^, $, |, groups); bracket classes like [[:digit:]] are translated.
 */
export function kernelMatches(pattern: string, kver: string): boolean {
  if (pattern === '*') return true;
  const classes: Record<string, string> = {
    alpha: 'A-Za-z',
    digit: '0-9',
    alnum: 'A-Za-z0-9',
    upper: 'A-Z',
    lower: 'a-z',
    space: ' \\t\\n\\r\\f\\v',
    xdigit: '0-9A-Fa-f',
    punct: '!-\\/:-@\\[-`{-~',
  };
  const js = pattern.replace(/\[:([a-z]+):\]/g, (m, name: string) => classes[name] ?? m);
  try {
    return new RegExp(js).test(kver);
  } catch {
    return false;
  }
}

/** cfg_file_parse over every file, in the order given (configFileOrder's), then cfg_load's default search. */
export function parseDepmodConfig(
  files: readonly ConfigFile[],
  kver: string,
  opts: { exclude?: boolean } = {},
): { config: DepmodConfig; warnings: ConfigWarning[] } {
  const config: DepmodConfig = { searches: [], overrides: [], externals: [], excludes: [] };
  const warnings: ConfigWarning[] = [];
  for (const f of files) parseConfigFile(config, warnings, f, kver, opts.exclude ?? true);
  addDefaultSearch(config);
  return { config, warnings };
}

/**
 * cfg_load: only when no file had a search line, "updates" becomes the one search entry. There is
 * no built-in entry then, so every module outside updates/ has priority -1 (see search.ts).
 */
function addDefaultSearch(config: DepmodConfig): void {
  if (config.searches.length === 0) config.searches.unshift({ kind: 'path', path: 'updates' });
}

function searchEntry(word: string): SearchEntry {
  if (word === 'built-in') return { kind: 'built-in' };
  if (word === 'external') return { kind: 'external' };
  return { kind: 'path', path: word };
}

/** `exclude`: the directive exists (kmod 30+, f50e2d6); older kmods report it as a bad line. */
function parseConfigFile(config: DepmodConfig, warnings: ConfigWarning[], f: ConfigFile, kver: string, exclude: boolean): void {
  for (const { text, line } of configLogicalLines(f.text)) {
    if (text === '' || text.startsWith('#')) continue;
    const words = text.split(/[\t ]+/).filter((w) => w !== '');
    const cmd = words[0];
    if (cmd === undefined) continue;
    const bad = (): void => {
      warnings.push({ level: 'error', file: f.path, line, message: `${f.path}:${line}: ignoring bad line starting with '${cmd}'` });
    };
    switch (cmd) {
      case 'search':
        for (const w of words.slice(1)) config.searches.unshift(searchEntry(w));
        break;
      case 'override': {
        const [, modname, version, subdir] = words;
        if (modname === undefined || version === undefined || subdir === undefined) {
          bad();
          break;
        }
        if (!kernelMatches(version, kver)) {
          warnings.push({ level: 'info', file: f.path, line, message: `${f.path}:${line}: override kernel did not match ${version}` });
          break;
        }
        config.overrides.unshift({ modname, subdir, path: `${subdir}/${modname}` });
        break;
      }
      case 'external': {
        const [, version, dir] = words;
        if (version === undefined || dir === undefined) {
          bad();
          break;
        }
        if (!kernelMatches(version, kver)) {
          warnings.push({ level: 'info', file: f.path, line, message: `${f.path}:${line}: external directory did not match ${version}` });
          break;
        }
        config.externals.unshift(dir);
        break;
      }
      case 'exclude':
        if (!exclude) {
          bad();
          break;
        }
        for (const w of words.slice(1)) config.excludes.unshift(w);
        break;
      case 'include':
      case 'make_map_files':
        warnings.push({ level: 'info', file: f.path, line, message: `${f.path}:${line}: command ${cmd} not implemented yet` });
        break;
      default:
        bad();
    }
  }
}
