// Rebuilds kmod's binary indexes from the text files of an oracle run (Debian depmod's own
// modules.dep / .alias / .symbols, and the kernel's modules.builtin / .builtin.modinfo), the way
// kmod v30 tools/depmod.c output_*_bin derives keys, values and priorities. Test support only:
// the real renderers live in src/depmod and work from module records.
import { normalizeAlias } from '../../src/depmod/alias.ts';
import { IndexTrie } from '../../src/index/trie.ts';

/** shared/util.c modname_normalize after basename: up to the first '.', '-' becomes '_'. */
export function pathToModname(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const dot = base.indexOf('.');
  return (dot >= 0 ? base.slice(0, dot) : base).replaceAll('-', '_');
}

function lines(text: string): string[] {
  const all = text.split('\n');
  if (all[all.length - 1] === '') all.pop();
  return all;
}

/** Module name → idx (line number in modules.dep, which is kmod's module array order). */
export function moduleIndex(depText: string): Map<string, number> {
  const idx = new Map<string, number>();
  lines(depText).forEach((line, i) => idx.set(pathToModname(line.slice(0, line.indexOf(':'))), i));
  return idx;
}

/** output_deps_bin: key module name, value the modules.dep line itself, priority idx. */
export function depBinFromText(depText: string): IndexTrie {
  const trie = new IndexTrie('modules.dep.bin');
  lines(depText).forEach((line, i) => {
    trie.insert(pathToModname(line.slice(0, line.indexOf(':'))), line, i);
  });
  return trie;
}

function ownerIdx(idx: Map<string, number>, modname: string): number {
  const i = idx.get(modname);
  if (i === undefined) throw new Error(`module ${modname} is not in modules.dep`);
  return i;
}

/** output_symbols_bin: "alias symbol:NAME MOD" → key "symbol:NAME", value MOD, priority MOD's idx. */
export function symbolsBinFromText(symbolsText: string, idx: Map<string, number>): IndexTrie {
  const trie = new IndexTrie('modules.symbols.bin');
  for (const line of lines(symbolsText)) {
    if (line.startsWith('#')) continue;
    const [, key, mod] = line.split(' ');
    trie.insert(key!, mod!, ownerIdx(idx, mod!));
  }
  return trie;
}

/** output_aliases_bin: normalised alias → module name, priority idx; unmatched brackets skipped. */
export function aliasBinFromText(aliasText: string, idx: Map<string, number>): { trie: IndexTrie; skipped: string[] } {
  const trie = new IndexTrie('modules.alias.bin');
  const skipped: string[] = [];
  for (const line of lines(aliasText)) {
    if (line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    const alias = line.slice('alias '.length, sp);
    const mod = line.slice(sp + 1);
    const key = normalizeAlias(alias);
    if (key === null) skipped.push(alias);
    else trie.insert(key, mod, ownerIdx(idx, mod));
  }
  return { trie, skipped };
}

/**
 * output_builtin_bin: each modules.builtin line read with fgets (newline kept) must start with
 * a letter; key is path_to_modname of the line, value "", priority 0.
 */
export function builtinBinFromText(builtinText: string): IndexTrie {
  const trie = new IndexTrie('modules.builtin.bin');
  for (const raw of builtinText.split(/(?<=\n)/)) {
    if (raw === '' || !/^[A-Za-z]/.test(raw)) continue;
    trie.insert(pathToModname(raw), '', 0);
  }
  return trie;
}

const PATH_MAX = 4096;

/**
 * output_builtin_alias_bin over modules.builtin.modinfo ("modname.key=value\0" records), with
 * its flush_stream_to quirks: a field ends at its delimiter, at NUL or at EOF, and only a field
 * ended by its own delimiter counts (otherwise its length is taken as 0).
 */
export function builtinAliasBinFromModinfo(data: Uint8Array): IndexTrie {
  const trie = new IndexTrie('modules.builtin.alias.bin');
  const utf8 = new TextDecoder('utf-8');
  let pos = 0;
  let eof = false;
  const getc = (): number => {
    if (pos >= data.length) {
      eof = true;
      return -1;
    }
    return data[pos++]!;
  };
  const flushTo = (end: number): string => {
    const start = pos;
    let n = 0;
    let c = getc();
    while (c !== -1 && c !== end && c !== 0 && n < PATH_MAX) {
      n++;
      c = getc();
    }
    let len = n;
    if (n === PATH_MAX) len--;
    return c === end ? utf8.decode(data.subarray(start, start + len)) : '';
  };
  const skipRecord = (): void => {
    let c = getc();
    while (c !== -1 && c !== 0) c = getc();
  };
  while (!eof) {
    const modname = flushTo(0x2e);
    if (modname === '') continue;
    if (flushTo(0x3d) !== 'alias') {
      skipRecord();
      continue;
    }
    const value = flushTo(0);
    if (value === '') continue;
    const alias = normalizeAlias(value);
    if (alias === null) continue;
    trie.insert(alias, modname, 0);
  }
  return trie;
}
