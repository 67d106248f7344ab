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
import { writeIndexWithLayout, type IndexLayout, type IndexNodeOrder } from '../index/trie.ts';
import { ByteSink, decodeBytes, scratchBytes } from './bytes.ts';
import { filterKeyOrder } from './key-order.ts';
import { renderBuiltinAliasBin, renderBuiltinBin } from './builtin.ts';
import type { ComputedDatabase } from './compute.ts';
import { depmodError, depmodWarning, type DepmodMessage } from './diagnostic.ts';
import type { KmodBehaviour } from './kmod-version.ts';
import { UNMATCHED_ALIAS, type ModuleSet } from './module-set.ts';

/** What the writers read of a computed database (compute.ts, or db-state.ts databaseOf). */
export type EmitDatabase = Pick<ComputedDatabase, 'order' | 'idxOf' | 'owner' | 'allStart' | 'allList' | 'symbolOrder' | 'unreadable' | 'cycles'>;

export interface EmitInput {
  set: ModuleSet;
  db: EmitDatabase;
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

/**
 * Where each module's or symbol's record lies in a text file: record i (module array position i, or
 * the i-th symbol written) is bytes off[i] .. off[i + 1]; what comes before off[0] is the header.
 * Kept with the database so the next update can splice the files (emit-patch.ts).
 */
export interface TextLayout {
  off: Uint32Array;
  /** modules.symbols: the symbol id of each record. */
  ids?: Uint32Array;
}

/** The layout of every file the writers made (text records; index relocations). */
export type DatabaseLayout = Map<string, TextLayout | IndexLayout>;

export interface EmitResult {
  files: Map<string, Uint8Array>;
  /** Layout of each written file (builtin indexes excluded: they are made from their inputs alone). */
  layout: DatabaseLayout;
  /** What depmod prints while writing ("Unmatched bracket in ...", devname without major/minor ...). */
  warnings: DepmodMessage[];
  /** The part of `warnings` the builtin writers printed (EmitInput.keptWarnings for the next time). */
  builtinWarnings: DepmodMessage[];
}

/** What several writers share: modules.dep lines are also modules.dep.bin's values. */
interface Shared {
  dep?: { bytes: Uint8Array; lineOff: Uint32Array; lineLen: Uint32Array };
  layout: DatabaseLayout;
}

type Writer = (input: EmitInput, warnings: DepmodMessage[], shared: Shared) => Uint8Array;

const order = (input: EmitInput): IndexNodeOrder => input.behaviour.indexOrder;

/**
 * A module's modules.dep line without its newline: "path: dep dep ...". `deps` are array positions
 * when `order` maps them to slots, else slots.
 */
export function depLine(sink: ByteSink, set: ModuleSet, slot: number, deps: ArrayLike<number>, order?: Uint32Array): void {
  const h = set.heap.bytes;
  sink.range(h, set.pathOff[slot]!, set.pathLen[slot]!);
  sink.byte(0x3a);
  for (let j = 0; j < deps.length; j++) {
    const d = order !== undefined ? order[deps[j]!]! : deps[j]!;
    sink.byte(0x20);
    sink.range(h, set.pathOff[d]!, set.pathLen[d]!);
  }
}

function writeDep({ set, db }: EmitInput, _warnings: DepmodMessage[], shared: Shared): Uint8Array {
  const n = db.order.length;
  const sink = new ByteSink(n * 96);
  const lineOff = new Uint32Array(n);
  const lineLen = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    lineOff[i] = sink.length;
    depLine(sink, set, db.order[i]!, db.allList.subarray(db.allStart[i]!, db.allStart[i + 1]!), db.order);
    lineLen[i] = sink.length - lineOff[i]!;
    sink.byte(0x0a);
  }
  const bytes = sink.done();
  shared.dep = { bytes, lineOff, lineLen };
  const off = new Uint32Array(n + 1);
  off.set(lineOff);
  off[n] = bytes.length;
  shared.layout.set('modules.dep', { off });
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
  return indexWithLayout(
    shared,
    { count: n, keys: { heap: set.heap.bytes, off: keyOff, len: keyLen }, values: { heap: dep.bytes, off: valueOff, len: valueLen }, priority },
    order(input),
    'modules.dep.bin',
    { perm: inOrder(n), lcp: sorted.lcp },
  );
}

function indexWithLayout(shared: Shared, ...args: Parameters<typeof writeIndexWithLayout>): Uint8Array {
  const { bytes, layout } = writeIndexWithLayout(...args);
  shared.layout.set(args[2], layout);
  return bytes;
}

/** One per-module value list of a text file: its column pairs and how a line is made. */
export interface ValueList {
  file: string;
  header: string;
  keyword: string;
  start: 'aliasStart' | 'softStart' | 'weakStart';
  count: 'aliasCount' | 'softCount' | 'weakCount';
  off: 'aliasRawOff' | 'valueOff';
  len: 'aliasRawLen' | 'valueLen';
  /** "KEYWORD NAME VALUE" (softdep, weakdep) or "KEYWORD VALUE NAME" (alias). */
  nameFirst: boolean;
}

export const ALIAS_LINES: ValueList = { file: 'modules.alias', header: '# Aliases extracted from modules themselves.\n', keyword: 'alias ', start: 'aliasStart', count: 'aliasCount', off: 'aliasRawOff', len: 'aliasRawLen', nameFirst: false };
export const SOFTDEP_LINES: ValueList = { file: 'modules.softdep', header: '# Soft dependencies extracted from modules themselves.\n', keyword: 'softdep ', start: 'softStart', count: 'softCount', off: 'valueOff', len: 'valueLen', nameFirst: true };
export const WEAKDEP_LINES: ValueList = { file: 'modules.weakdep', header: '# Weak dependencies extracted from modules themselves.\n', keyword: 'weakdep ', start: 'weakStart', count: 'weakCount', off: 'valueOff', len: 'valueLen', nameFirst: true };

/** A module's block of a value-list file: one "KEYWORD NAME VALUE\n" line per value. */
export function valueBlock(sink: ByteSink, set: ModuleSet, s: number, v: ValueList): void {
  const h = set.heap.bytes;
  const off = set[v.off];
  const len = set[v.len];
  for (let x = set[v.start][s]!, end = x + set[v.count][s]!; x < end; x++) {
    sink.ascii(v.keyword);
    if (v.nameFirst) {
      sink.range(h, set.nameOff[s]!, set.nameLen[s]!);
      sink.byte(0x20);
      sink.range(h, off[x]!, len[x]!);
    } else {
      sink.range(h, off[x]!, len[x]!);
      sink.byte(0x20);
      sink.range(h, set.nameOff[s]!, set.nameLen[s]!);
    }
    sink.byte(0x0a);
  }
}

/** A value-list file: per module in array order, its block (none for a module kmod cannot read). */
function valueLines({ set, db }: EmitInput, v: ValueList, shared: Shared): Uint8Array {
  const sink = new ByteSink(1 << 12);
  sink.ascii(v.header);
  const n = db.order.length;
  const off = new Uint32Array(n + 1);
  for (let i = 0; i < n; i++) {
    off[i] = sink.length;
    const s = db.order[i]!;
    if (db.unreadable[s] !== 1) valueBlock(sink, set, s, v);
  }
  off[n] = sink.length;
  shared.layout.set(v.file, { off });
  return sink.done();
}

function writeAlias(input: EmitInput, _w: DepmodMessage[], shared: Shared): Uint8Array {
  return valueLines(input, ALIAS_LINES, shared);
}

function writeAliasBin(input: EmitInput, warnings: DepmodMessage[], shared: Shared): Uint8Array {
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
  return indexWithLayout(shared, { count, keys: { heap, off: keyOff, len: keyLen }, values: { heap, off: valueOff, len: valueLen }, priority }, order(input), 'modules.alias.bin', { perm: inOrder(count), lcp: sorted.lcp });
}

function writeSoftdep(input: EmitInput, _w: DepmodMessage[], shared: Shared): Uint8Array {
  return valueLines(input, SOFTDEP_LINES, shared);
}

function writeWeakdep(input: EmitInput, _w: DepmodMessage[], shared: Shared): Uint8Array {
  return valueLines(input, WEAKDEP_LINES, shared);
}

export const SYMBOLS_HEADER = '# Aliases for symbols, used by symbol_request().\n';

/** One modules.symbols line: "alias symbol:NAME MODULE\n". */
export function symbolLine(sink: ByteSink, set: ModuleSet, id: number, ownerSlot: number): void {
  const pool = set.pool;
  sink.ascii('alias symbol:');
  sink.range(pool.heap.bytes, pool.off[id]!, pool.len[id]!);
  sink.byte(0x20);
  sink.range(set.heap.bytes, set.nameOff[ownerSlot]!, set.nameLen[ownerSlot]!);
  sink.byte(0x0a);
}

function writeSymbols({ set, db }: EmitInput, _w: DepmodMessage[], shared: Shared): Uint8Array {
  const sink = new ByteSink(db.symbolOrder.length * 48);
  sink.ascii(SYMBOLS_HEADER);
  const ids = new Uint32Array(db.symbolOrder.length);
  const off = new Uint32Array(db.symbolOrder.length + 1);
  let n = 0;
  for (let k = 0; k < db.symbolOrder.length; k++) {
    const id = db.symbolOrder[k]!;
    const o = db.owner[id]!;
    if (o < 0) continue;
    ids[n] = id;
    off[n++] = sink.length;
    symbolLine(sink, set, id, db.order[o]!);
  }
  off[n] = sink.length;
  shared.layout.set('modules.symbols', { off: off.slice(0, n + 1), ids: ids.slice(0, n) });
  return sink.done();
}

function writeSymbolsBin(input: EmitInput, _w: DepmodMessage[], shared: Shared): Uint8Array {
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
  return indexWithLayout(
    shared,
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

export const DEVNAME_HEADER = '# Device nodes to trigger on-demand module loading.\n';

/**
 * output_devname for one module: walk its aliases until both a "devname:" alias and a char-/block-
 * major alias were seen (a later major alias seen before the devname overwrites an earlier one). A
 * module with a devname but no major/minor is reported (into `warnings`) and writes nothing.
 */
export function devnameBlock(sink: ByteSink, set: ModuleSet, s: number, warnings: DepmodMessage[] | undefined): void {
  const h = set.heap.bytes;
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
  if (devname === null) return;
  const name = set.name(s);
  if (type === '') {
    warnings?.push(depmodError(`Module '${name}' has devname (${devname}) but lacks major and minor information. Ignoring.`));
    return;
  }
  const line = scratchBytes(`${name} ${devname} ${type}${major}:${minor}\n`);
  sink.range(line, 0, line.length);
}

/** modules.devname: per module in array order; the header goes before the first line only. */
function writeDevname({ set, db }: EmitInput, warnings: DepmodMessage[], shared: Shared): Uint8Array {
  const sink = new ByteSink(1 << 10);
  const n = db.order.length;
  const off = new Uint32Array(n + 1);
  for (let i = 0; i < n; i++) {
    off[i] = sink.length;
    const s = db.order[i]!;
    if (db.unreadable[s] !== 1) devnameBlock(sink, set, s, warnings);
  }
  off[n] = sink.length;
  // Records are laid out without the header; the file gets it when it has a line at all.
  shared.layout.set('modules.devname', { off });
  const body = sink.done();
  if (body.length === 0) return body;
  const out = new Uint8Array(DEVNAME_HEADER.length + body.length);
  for (let i = 0; i < DEVNAME_HEADER.length; i++) out[i] = DEVNAME_HEADER.charCodeAt(i);
  out.set(body, DEVNAME_HEADER.length);
  return out;
}

/** depmod_output's table, in its order (the order files are written and renamed). */
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
  if (input.db.cycles !== null) return { files, layout: new Map(), warnings, builtinWarnings };
  const shared: Shared = { layout: new Map() };
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
  return { files, layout: shared.layout, warnings, builtinWarnings };
}
