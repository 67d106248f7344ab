// Every file kmod's depmod writes, one writer per file, in depmod_output's order (tools/depmod.c:
// output_deps, output_deps_bin, output_aliases, output_aliases_bin, output_softdeps,
// output_weakdeps (kmod 33+), output_symbols, output_symbols_bin, output_builtin_bin,
// output_builtin_alias_bin, output_devname). Adding a file is adding a row to WRITERS.
//
// depmod writes every row, even when it has nothing to say: modules.devname is then empty (its
// header appears only before its first line) and the builtin indexes follow builtin.ts. When the
// dependency graph has a cycle depmod writes nothing at all (emitDatabase returns an empty map).
//
// Writers copy byte ranges of the module set's heap into one buffer per file: no string is made
// per alias, symbol or dependency.
// Pure: the module set, its computed database and the bytes of the two builtin inputs in, file bytes out.
import { writeIndex, type IndexNodeOrder } from '../index/trie.ts';
import { ByteSink, decodeBytes } from './bytes.ts';
import { filterKeyOrder } from './key-order.ts';
import { renderBuiltinAliasBin, renderBuiltinBin } from './builtin.ts';
import type { ComputedDatabase } from './compute.ts';
import { depmodError, depmodWarning, type DepmodMessage } from './diagnostic.ts';
import type { KmodBehaviour } from './kmod-version.ts';
import { UNMATCHED_ALIAS, type ModuleSet } from './module-set.ts';

export interface EmitInput {
  set: ModuleSet;
  db: ComputedDatabase;
  behaviour: KmodBehaviour;
  /** kmod's cfg.dirname, for messages. */
  dirname: string;
  /** modules.builtin bytes, undefined when the file does not exist. */
  builtin?: Uint8Array | undefined;
  /** modules.builtin.modinfo bytes, undefined when the file does not exist. */
  builtinModinfo?: Uint8Array | undefined;
  /** Files the caller knows to be current (made from unchanged inputs): not rendered. */
  keep?: ReadonlySet<string>;
  /** The warnings those files' writers printed when they were made, in their place in the order. */
  keptWarnings?: readonly DepmodMessage[] | undefined;
}

export interface EmitResult {
  files: Map<string, Uint8Array>;
  /** What depmod prints while writing ("Unmatched bracket in ...", devname without major/minor ...). */
  warnings: DepmodMessage[];
  /** The part of `warnings` the builtin writers printed (EmitInput.keptWarnings for the next time). */
  builtinWarnings: DepmodMessage[];
}

/** What several writers share: modules.dep lines are also modules.dep.bin's values. */
interface Shared {
  dep?: { bytes: Uint8Array; lineOff: Uint32Array; lineLen: Uint32Array };
}

type Writer = (input: EmitInput, warnings: DepmodMessage[], shared: Shared) => Uint8Array;

const order = (input: EmitInput): IndexNodeOrder => input.behaviour.indexOrder;

function writeDep({ set, db }: EmitInput, _warnings: DepmodMessage[], shared: Shared): Uint8Array {
  const n = db.order.length;
  const h = set.heap.bytes;
  const { pathOff, pathLen } = set;
  const sink = new ByteSink(n * 96);
  const lineOff = new Uint32Array(n);
  const lineLen = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const s = db.order[i]!;
    lineOff[i] = sink.length;
    sink.range(h, pathOff[s]!, pathLen[s]!);
    sink.byte(0x3a);
    for (let j = db.allStart[i]!; j < db.allStart[i + 1]!; j++) {
      const d = db.order[db.allList[j]!]!;
      sink.byte(0x20);
      sink.range(h, pathOff[d]!, pathLen[d]!);
    }
    lineLen[i] = sink.length - lineOff[i]!;
    sink.byte(0x0a);
  }
  const bytes = sink.done();
  shared.dep = { bytes, lineOff, lineLen };
  return bytes;
}

/** 0, 1, ..., n - 1: entries handed to writeIndex already in key order. */
function inOrder(n: number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return p;
}

function writeDepBin(input: EmitInput, warnings: DepmodMessage[], shared: Shared): Uint8Array {
  const { set, db } = input;
  if (shared.dep === undefined) writeDep(input, warnings, shared);
  const dep = shared.dep!;
  const sorted = set.sortedNames();
  const byName = sorted.ids;
  const n = byName.length;
  const keyOff = new Uint32Array(n);
  const keyLen = new Uint32Array(n);
  const valueOff = new Uint32Array(n);
  const valueLen = new Uint32Array(n);
  const priority = new Uint32Array(n);
  for (let k = 0; k < n; k++) {
    const s = byName[k]!;
    const i = db.idxOf[s]!;
    keyOff[k] = set.nameOff[s]!;
    keyLen[k] = set.nameLen[s]!;
    valueOff[k] = dep.lineOff[i]!;
    valueLen[k] = dep.lineLen[i]!;
    priority[k] = i;
  }
  return writeIndex(
    { count: n, keys: { heap: set.heap.bytes, off: keyOff, len: keyLen }, values: { heap: dep.bytes, off: valueOff, len: valueLen }, priority },
    order(input),
    'modules.dep.bin',
    { perm: inOrder(n), lcp: sorted.lcp },
  );
}

/** "KEYWORD NAME VALUE\n" lines, per module in array order, for one per-module value list. */
function valueLines(
  { set, db }: EmitInput,
  header: string,
  keyword: string,
  start: Uint32Array,
  count: Uint32Array,
  off: Uint32Array,
  len: Uint32Array,
  nameFirst: boolean,
): Uint8Array {
  const h = set.heap.bytes;
  const sink = new ByteSink(1 << 12);
  sink.ascii(header);
  for (let i = 0; i < db.order.length; i++) {
    const s = db.order[i]!;
    if (db.unreadable[s] === 1) continue;
    for (let v = start[s]!, end = v + count[s]!; v < end; v++) {
      sink.ascii(keyword);
      if (nameFirst) {
        sink.range(h, set.nameOff[s]!, set.nameLen[s]!);
        sink.byte(0x20);
        sink.range(h, off[v]!, len[v]!);
      } else {
        sink.range(h, off[v]!, len[v]!);
        sink.byte(0x20);
        sink.range(h, set.nameOff[s]!, set.nameLen[s]!);
      }
      sink.byte(0x0a);
    }
  }
  return sink.done();
}

function writeAlias(input: EmitInput): Uint8Array {
  const { set } = input;
  return valueLines(input, '# Aliases extracted from modules themselves.\n', 'alias ', set.aliasStart, set.aliasCount, set.aliasRawOff, set.aliasRawLen, false);
}

function writeAliasBin(input: EmitInput, warnings: DepmodMessage[]): Uint8Array {
  const { set, db } = input;
  // depmod reports an alias it cannot normalise while inserting, module by module.
  for (let i = 0; i < db.order.length; i++) {
    const s = db.order[i]!;
    if (db.unreadable[s] === 1) continue;
    for (let a = set.aliasStart[s]!, end = a + set.aliasCount[s]!; a < end; a++) {
      if (set.aliasKeyLen[a] === UNMATCHED_ALIAS) warnings.push(depmodWarning(`Unmatched bracket in ${set.heap.text(set.aliasRawOff[a]!, set.aliasRawLen[a]!)}`));
    }
  }
  const unreadable = db.unreadable;
  const sorted = unreadable.includes(1) ? filterKeyOrder(set.sortedAliases(), (a) => unreadable[set.aliasSlot[a]!] !== 1) : set.sortedAliases();
  const byKey = sorted.ids;
  const count = byKey.length;
  const keyOff = new Uint32Array(count);
  const keyLen = new Uint32Array(count);
  const valueOff = new Uint32Array(count);
  const valueLen = new Uint32Array(count);
  const priority = new Uint32Array(count);
  for (let e = 0; e < count; e++) {
    const a = byKey[e]!;
    const s = set.aliasSlot[a]!;
    keyOff[e] = set.aliasKeyOff[a]!;
    keyLen[e] = set.aliasKeyLen[a]!;
    valueOff[e] = set.nameOff[s]!;
    valueLen[e] = set.nameLen[s]!;
    priority[e] = db.idxOf[s]!;
  }
  const heap = set.heap.bytes;
  return writeIndex({ count, keys: { heap, off: keyOff, len: keyLen }, values: { heap, off: valueOff, len: valueLen }, priority }, order(input), 'modules.alias.bin', { perm: inOrder(count), lcp: sorted.lcp });
}

function writeSoftdep(input: EmitInput): Uint8Array {
  const { set } = input;
  return valueLines(input, '# Soft dependencies extracted from modules themselves.\n', 'softdep ', set.softStart, set.softCount, set.valueOff, set.valueLen, true);
}

function writeWeakdep(input: EmitInput): Uint8Array {
  const { set } = input;
  return valueLines(input, '# Weak dependencies extracted from modules themselves.\n', 'weakdep ', set.weakStart, set.weakCount, set.valueOff, set.valueLen, true);
}

function writeSymbols({ set, db }: EmitInput): Uint8Array {
  const pool = set.pool;
  const ph = pool.heap.bytes;
  const h = set.heap.bytes;
  const sink = new ByteSink(db.symbolOrder.length * 48);
  sink.ascii('# Aliases for symbols, used by symbol_request().\n');
  for (let k = 0; k < db.symbolOrder.length; k++) {
    const id = db.symbolOrder[k]!;
    const o = db.owner[id]!;
    if (o < 0) continue;
    const s = db.order[o]!;
    sink.ascii('alias symbol:');
    sink.range(ph, pool.off[id]!, pool.len[id]!);
    sink.byte(0x20);
    sink.range(h, set.nameOff[s]!, set.nameLen[s]!);
    sink.byte(0x0a);
  }
  return sink.done();
}

function writeSymbolsBin(input: EmitInput): Uint8Array {
  const { set, db } = input;
  const pool = set.pool;
  const ph = pool.heap.bytes;
  // Keys are "symbol:NAME", in name order: one heap of them.
  const owned = filterKeyOrder(set.sortedSymbols(), (id) => id < db.owner.length && db.owner[id]! >= 0, 'symbol:'.length);
  const byName = owned.ids;
  const keys = new ByteSink(byName.length * 40);
  const keyOff = new Uint32Array(byName.length);
  const keyLen = new Uint32Array(byName.length);
  const valueOff = new Uint32Array(byName.length);
  const valueLen = new Uint32Array(byName.length);
  const priority = new Uint32Array(byName.length);
  let n = 0;
  for (let k = 0; k < byName.length; k++) {
    const id = byName[k]!;
    const o = db.owner[id]!;
    const s = db.order[o]!;
    keyOff[n] = keys.length;
    keys.ascii('symbol:');
    keys.range(ph, pool.off[id]!, pool.len[id]!);
    keyLen[n] = keys.length - keyOff[n]!;
    valueOff[n] = set.nameOff[s]!;
    valueLen[n] = set.nameLen[s]!;
    priority[n++] = o;
  }
  return writeIndex(
    { count: n, keys: { heap: keys.done(), off: keyOff, len: keyLen }, values: { heap: set.heap.bytes, off: valueOff, len: valueLen }, priority },
    order(input),
    'modules.symbols.bin',
    { perm: inOrder(n), lcp: owned.lcp },
  );
}

function writeBuiltinBin(input: EmitInput, warnings: DepmodMessage[]): Uint8Array {
  if (input.builtin === undefined) warnings.push(depmodWarning(`could not open modules.builtin at ${input.dirname}: No such file or directory`));
  return renderBuiltinBin(input.builtin, order(input), warnings);
}

function writeBuiltinAliasBin(input: EmitInput, warnings: DepmodMessage[]): Uint8Array {
  if (input.builtinModinfo === undefined && input.behaviour.warnsMissingBuiltinModinfo) {
    warnings.push(depmodWarning(`could not open modules.builtin.modinfo at ${input.dirname}: No such file or directory`));
  }
  return renderBuiltinAliasBin(input.builtinModinfo, input.behaviour.builtinAlias, order(input), warnings);
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
function writeDevname({ set, db }: EmitInput, warnings: DepmodMessage[]): Uint8Array {
  const h = set.heap.bytes;
  let out = '';
  for (let i = 0; i < db.order.length; i++) {
    const s = db.order[i]!;
    if (db.unreadable[s] === 1) continue;
    let devname: string | null = null;
    let type = '';
    let major = 0;
    let minor = 0;
    for (let a = set.aliasStart[s]!, end = a + set.aliasCount[s]!; a < end; a++) {
      const off = set.aliasRawOff[a]!;
      const c = set.aliasRawLen[a]! > 0 ? h[off]! : 0;
      // Only "devname:", "char-major-" and "block-major-" matter: skip the rest without a string.
      if (c !== 0x64 && c !== 0x63 && c !== 0x62) continue;
      const v = decodeBytes(h, off, off + set.aliasRawLen[a]!);
      let mm: [number, number] | null;
      if (v.startsWith('devname:')) devname = v.slice('devname:'.length);
      else if ((mm = scanMajorMinor(v, 'char-major-')) !== null) [type, major, minor] = ['c', ...mm];
      else if ((mm = scanMajorMinor(v, 'block-major-')) !== null) [type, major, minor] = ['b', ...mm];
      if (type !== '' && devname !== null) break;
    }
    if (devname === null) continue;
    const name = set.name(s);
    if (type === '') {
      warnings.push(depmodError(`Module '${name}' has devname (${devname}) but lacks major and minor information. Ignoring.`));
      continue;
    }
    if (out === '') out = '# Device nodes to trigger on-demand module loading.\n';
    out += `${name} ${devname} ${type}${major}:${minor}\n`;
  }
  return new TextEncoder().encode(out);
}

/** depmod_output's table, in its order (the order files are written and renamed). */
export const __writers = null as unknown;
const WRITERS: ReadonlyArray<readonly [file: string, write: Writer, since?: (b: KmodBehaviour) => boolean]> = [
  ['modules.dep', writeDep],
  ['modules.dep.bin', writeDepBin],
  ['modules.alias', writeAlias],
  ['modules.alias.bin', writeAliasBin],
  ['modules.softdep', writeSoftdep],
  ['modules.weakdep', writeWeakdep, (b) => b.writesWeakdep],
  ['modules.symbols', writeSymbols],
  ['modules.symbols.bin', writeSymbolsBin],
  ['modules.builtin.bin', writeBuiltinBin],
  ['modules.builtin.alias.bin', writeBuiltinAliasBin],
  ['modules.devname', writeDevname],
];

/** The files the given kmod writes, in its order. */
export function outputFiles(behaviour: KmodBehaviour): string[] {
  return WRITERS.filter(([, , since]) => since === undefined || since(behaviour)).map(([f]) => f);
}

const BUILTIN_WRITERS = new Set(['modules.builtin.bin', 'modules.builtin.alias.bin']);

export function emitDatabase(input: EmitInput): EmitResult {
  const files = new Map<string, Uint8Array>();
  const warnings: DepmodMessage[] = [];
  const builtinWarnings: DepmodMessage[] = [];
  if (input.db.cycles !== null) return { files, warnings, builtinWarnings };
  const shared: Shared = {};
  let keptReported = false;
  for (const [name, write, since] of WRITERS) {
    if (since !== undefined && !since(input.behaviour)) continue;
    const builtin = BUILTIN_WRITERS.has(name);
    if (input.keep?.has(name) === true) {
      if (builtin && !keptReported) {
        warnings.push(...(input.keptWarnings ?? []));
        builtinWarnings.push(...(input.keptWarnings ?? []));
        keptReported = true;
      }
      continue;
    }
    const before = warnings.length;
    files.set(name, write(input, warnings, shared));
    if (builtin) builtinWarnings.push(...warnings.slice(before));
  }
  return { files, warnings, builtinWarnings };
}
Object.assign(globalThis, {}); export { WRITERS as __w };
