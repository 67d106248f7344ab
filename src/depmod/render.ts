// Every file kmod v30's depmod writes, one renderer per file (tools/depmod.c depmod_output's table:
// output_deps, output_deps_bin, output_aliases, output_aliases_bin, output_softdeps, output_symbols,
// output_symbols_bin, output_builtin_bin, output_builtin_alias_bin, output_devname). Adding a file
// is adding a row to RENDERERS.
//
// depmod writes every row, even when it has nothing to say: modules.devname is then empty (its
// header appears only before its first line) and the builtin indexes are empty files (0 bytes, not
// an empty index) when modules.builtin / modules.builtin.modinfo do not exist. When the dependency
// graph has a cycle depmod writes nothing at all (renderDatabase returns an empty map).
//
// Pure: the Database and the bytes of the two builtin inputs in, file bytes out.
import { IndexTrie } from '../index/trie.ts';
import { normalizeAlias } from './alias.ts';
import type { Database, DbModule } from './build.ts';

export interface RenderInput {
  db: Database;
  /** modules.builtin bytes, undefined when the file does not exist. */
  builtin?: Uint8Array | undefined;
  /** modules.builtin.modinfo bytes, undefined when the file does not exist. */
  builtinModinfo?: Uint8Array | undefined;
}

export interface RenderResult {
  files: Map<string, Uint8Array>;
  /** What depmod prints while writing ("Unmatched bracket in ...", devname without major/minor ...). */
  warnings: string[];
}

/**
 * What several renderers read from every module, computed in one pass per renderDatabase call:
 * each module's modinfo is scanned once (not once per renderer) and its modules.dep line is built
 * once for modules.dep and modules.dep.bin.
 */
interface Shared {
  /** modules.dep line bodies, by module idx. */
  depLines: string[];
  /** "alias" modinfo values in modinfo order, by module idx (alias text, alias.bin, devname). */
  aliases: readonly string[][];
  /** "softdep" modinfo values in modinfo order, by module idx. */
  softdeps: readonly string[][];
}

type Renderer = (input: RenderInput, warnings: string[], shared: Shared) => Uint8Array;

const encoder = new TextEncoder();
const latin1Decoder = new TextDecoder('latin1');
// Most modules have no softdep and many no alias: they all share this (never mutated) list.
const NONE: string[] = [];

function text(s: string): Uint8Array {
  return encoder.encode(s);
}

function sharedValues(db: Database): Shared {
  const n = db.modules.length;
  const depLines = new Array<string>(n);
  const aliases = new Array<string[]>(n);
  const softdeps = new Array<string[]>(n);
  for (let i = 0; i < n; i++) {
    const m = db.modules[i]!;
    // The modules.dep line body (also the dep.bin value): "path:" then " dep" per dependency.
    let line = `${m.path}:`;
    for (const d of m.allDeps) line += ` ${db.modules[d]!.path}`;
    depLines[i] = line;
    let a = NONE;
    let sd = NONE;
    const modinfo = m.record.modinfo;
    for (let j = 0; j < modinfo.length; j++) {
      const pair = modinfo[j]!;
      const k = pair[0];
      if (k === 'alias') {
        if (a === NONE) a = [];
        a.push(pair[1]);
      } else if (k === 'softdep') {
        if (sd === NONE) sd = [];
        sd.push(pair[1]);
      }
    }
    aliases[i] = a;
    softdeps[i] = sd;
  }
  return { depLines, aliases, softdeps };
}

function renderDep(_input: RenderInput, _warnings: string[], { depLines }: Shared): Uint8Array {
  return text(depLines.length === 0 ? '' : `${depLines.join('\n')}\n`);
}

function renderDepBin({ db }: RenderInput, _warnings: string[], { depLines }: Shared): Uint8Array {
  const trie = new IndexTrie('modules.dep.bin');
  for (const m of db.modules) trie.insert(m.name, depLines[m.idx]!, m.idx);
  return trie.serialize();
}

function renderAlias({ db }: RenderInput, _warnings: string[], { aliases }: Shared): Uint8Array {
  let out = '# Aliases extracted from modules themselves.\n';
  for (const m of db.modules) for (const a of aliases[m.idx]!) out += `alias ${a} ${m.name}\n`;
  return text(out);
}

function renderAliasBin({ db }: RenderInput, warnings: string[], { aliases }: Shared): Uint8Array {
  const trie = new IndexTrie('modules.alias.bin');
  for (const m of db.modules) {
    for (const a of aliases[m.idx]!) {
      const key = normalizeAlias(a);
      if (key === null) {
        warnings.push(`Unmatched bracket in ${a}`);
        continue;
      }
      trie.insert(key, m.name, m.idx);
    }
  }
  return trie.serialize();
}

function renderSoftdep({ db }: RenderInput, _warnings: string[], { softdeps }: Shared): Uint8Array {
  let out = '# Soft dependencies extracted from modules themselves.\n';
  for (const m of db.modules) for (const s of softdeps[m.idx]!) out += `softdep ${m.name} ${s}\n`;
  return text(out);
}

function renderSymbols({ db }: RenderInput): Uint8Array {
  let out = '# Aliases for symbols, used by symbol_request().\n';
  for (const s of db.symbols) if (s.owner !== null) out += `alias symbol:${s.name} ${db.modules[s.owner]!.name}\n`;
  return text(out);
}

function renderSymbolsBin({ db }: RenderInput): Uint8Array {
  const trie = new IndexTrie('modules.symbols.bin');
  for (const s of db.symbols) {
    if (s.owner === null) continue;
    const owner = db.modules[s.owner]!;
    trie.insert(`symbol:${s.name}`, owner.name, owner.idx);
  }
  return trie.serialize();
}

/**
 * output_builtin_bin reads modules.builtin with fgets: a line must start with a letter (isalpha) or
 * is reported and skipped; the key is path_to_modname of the line as read — its base name up to the
 * first '.', dashes to underscores (the '\n' survives only in a name without any '.').
 */
export function builtinModnames(bytes: Uint8Array, warnings: string[]): string[] {
  const s = latin1Decoder.decode(bytes);
  const out: string[] = [];
  let start = 0;
  while (start < s.length) {
    const nl = s.indexOf('\n', start);
    const end = nl < 0 ? s.length : nl + 1;
    const line = s.slice(start, end);
    start = end;
    if (!/^[A-Za-z]/.test(line)) {
      warnings.push(`Invalid modules.builtin line: ${line}`);
      continue;
    }
    const base = line.slice(line.lastIndexOf('/') + 1);
    if (base === '') continue;
    const dot = base.indexOf('.');
    out.push((dot < 0 ? base : base.slice(0, dot)).replaceAll('-', '_'));
  }
  return out;
}

function renderBuiltinBin(input: RenderInput, warnings: string[]): Uint8Array {
  if (input.builtin === undefined) return new Uint8Array(0);
  const trie = new IndexTrie('modules.builtin.bin');
  for (const name of builtinModnames(input.builtin, warnings)) trie.insert(name, '', 0);
  return trie.serialize();
}

/**
 * output_builtin_alias_bin's stream reading of "modname.key=value\0" records, quirks included: the
 * module name ends at the first '.', the key at '=', each read also stops at a NUL; a record whose key
 * read hit a NUL before '=' skips up to the NEXT NUL (swallowing the following record); empty names
 * and values are skipped. Returns [alias, modname] pairs in file order.
 */
export function builtinAliases(bytes: Uint8Array): Array<[alias: string, modname: string]> {
  const out: Array<[string, string]> = [];
  let p = 0;
  const n = bytes.length;
  // Reads until `end`, NUL or EOF; returns the text when `end` (or NUL for end=0) stopped it, else ''.
  const readTo = (end: number): string => {
    const start = p;
    let c = -1;
    while (p < n) {
      c = bytes[p++]!;
      if (c === end || c === 0) break;
      c = -1;
    }
    const stop = c === -1 ? p : p - 1;
    return c === end ? latin1Decoder.decode(bytes.subarray(start, stop)) : '';
  };
  const skipTo = (end: number): void => {
    while (p < n) {
      const c = bytes[p++]!;
      if (c === end || c === 0) return;
    }
  };
  while (p < n) {
    const modname = readTo(0x2e);
    if (modname === '') continue;
    const key = readTo(0x3d);
    if (key !== 'alias') {
      skipTo(0);
      continue;
    }
    const value = readTo(0);
    if (value === '') continue;
    out.push([value, modname]);
  }
  return out;
}

function renderBuiltinAliasBin(input: RenderInput, warnings: string[]): Uint8Array {
  if (input.builtinModinfo === undefined) return new Uint8Array(0);
  const trie = new IndexTrie('modules.builtin.alias.bin');
  for (const [alias, modname] of builtinAliases(input.builtinModinfo)) {
    const key = normalizeAlias(alias);
    if (key === null) {
      warnings.push(`Unmatched bracket in ${alias}`);
      continue;
    }
    trie.insert(key, modname, 0);
  }
  return trie.serialize();
}

/** sscanf("%u") on the text after a literal prefix: optional blanks, sign, digits; wraps like strtoul to 32 bits. */
function scanU32(s: string, from: number): { value: number; end: number } | null {
  const m = /^[ \t\n\v\f\r]*([+-]?)(\d+)/.exec(s.slice(from));
  if (!m) return null;
  let v = BigInt(m[2]!);
  if (v > 0xffffffffffffffffn) v = 0xffffffffffffffffn;
  else if (m[1] === '-') v = ((1n << 64n) - v) & 0xffffffffffffffffn;
  return { value: Number(v & 0xffffffffn), end: from + m[0].length };
}

/** sscanf(value, "PREFIX%u-%u", ...) == 2 */
export function scanMajorMinor(value: string, prefix: string): [number, number] | null {
  if (!value.startsWith(prefix)) return null;
  const a = scanU32(value, prefix.length);
  if (a === null || value[a.end] !== '-') return null;
  const b = scanU32(value, a.end + 1);
  return b === null ? null : [a.value, b.value];
}

/**
 * output_devname: walk a module's aliases until both a "devname:" alias and a char-/block-major
 * alias were seen (a later major alias seen before the devname overwrites an earlier one). A module
 * with a devname but no major/minor is reported and skipped. The header goes before the first line only.
 */
function renderDevname({ db }: RenderInput, warnings: string[], { aliases }: Shared): Uint8Array {
  let out = '';
  for (const m of db.modules) {
    let devname: string | null = null;
    let type = '';
    let major = 0;
    let minor = 0;
    for (const v of aliases[m.idx]!) {
      let mm: [number, number] | null;
      if (v.startsWith('devname:')) devname = v.slice('devname:'.length);
      else if ((mm = scanMajorMinor(v, 'char-major-')) !== null) [type, major, minor] = ['c', ...mm];
      else if ((mm = scanMajorMinor(v, 'block-major-')) !== null) [type, major, minor] = ['b', ...mm];
      if (type !== '' && devname !== null) break;
    }
    if (devname === null) continue;
    if (type === '') {
      warnings.push(`Module '${m.name}' has devname (${devname}) but lacks major and minor information. Ignoring.`);
      continue;
    }
    if (out === '') out = '# Device nodes to trigger on-demand module loading.\n';
    out += `${m.name} ${devname} ${type}${major}:${minor}\n`;
  }
  return text(out);
}

/** depmod_output's table, in its order (the order files are written and renamed). */
export const RENDERERS: ReadonlyArray<readonly [file: string, render: Renderer]> = [
  ['modules.dep', renderDep],
  ['modules.dep.bin', renderDepBin],
  ['modules.alias', renderAlias],
  ['modules.alias.bin', renderAliasBin],
  ['modules.softdep', renderSoftdep],
  ['modules.symbols', renderSymbols],
  ['modules.symbols.bin', renderSymbolsBin],
  ['modules.builtin.bin', renderBuiltinBin],
  ['modules.builtin.alias.bin', renderBuiltinAliasBin],
  ['modules.devname', renderDevname],
];

export function renderDatabase(input: RenderInput): RenderResult {
  const files = new Map<string, Uint8Array>();
  const warnings: string[] = [];
  if (input.db.cycles !== null) return { files, warnings };
  const shared = sharedValues(input.db);
  for (const [name, render] of RENDERERS) files.set(name, render(input, warnings, shared));
  return { files, warnings };
}
