// What a kernel's cache holds, and how it maps onto two container files (container.ts):
//   KVER.cache  the base: the module set (every fact depmod takes from every module, as typed-array
//               columns), the database state an update patches (db-state.ts: array order, owners,
//               resolutions, lines, symbol indexes), the layout of every output file (where each
//               record and relocation lies: emit.ts, index/patch.ts), and the meta (header): what
//               the last merge saw of the tree and its inputs. Written by a full merge and when the
//               delta has grown (rebase), never by an update.
//   KVER.delta  what changed since the base, written by every update (SQLite's WAL model): the new
//               rows of every module-set column (modules are only ever appended; a dropped module
//               is a dead slot), the dropped slots, the small per-slot and per-symbol arrays whole,
//               the overlays of resolutions and lines, the output layouts and the meta. An update
//               writes a few hundred kB instead of the base's ~10 MB.
// Opening = the base's sections used in place as typed arrays + the delta's tails appended. Pure.
import { FormatError } from '../errors.ts';
import { ByteHeap, type Column } from '../depmod/bytes.ts';
import type { CycleReport, KabiBasis, KabiFinding, LoadFinding } from '../depmod/compute.ts';
import type { DepmodConfig } from '../depmod/config.ts';
import { packState, type DbState, type FindingLists, type SlotFinding, type SlotLists } from '../depmod/db-state.ts';
import type { DatabaseLayout, TextLayout } from '../depmod/emit.ts';
import { ModuleSet, type KernelSymbolSource, type ModuleSetColumns } from '../depmod/module-set.ts';
import { SymbolPool } from '../depmod/symbol-pool.ts';
import type { IndexLayout } from '../index/trie.ts';
import { ContainerBody, decodeHeader, encodeContainer, jsonSection, newGeneration, type ContainerHeader, type Section } from './container.ts';

export { headerSum } from './container.ts';

const enc = new TextEncoder();

import { BASE_MAGIC, CACHE_VERSION, DELTA_MAGIC } from './meta.ts';

export { BASE_MAGIC, CACHE_VERSION, DELTA_MAGIC };

export interface DirEntry {
  name: string;
  type: 'file' | 'dir' | 'link' | 'other';
}

/** What the database's KABI check found, as counts. */
export interface KabiSummary {
  against: KabiBasis;
  unknown: number;
  mismatched: number;
}

/** The header both files carry (the delta's is the current one). */
export interface CacheMeta {
  kver: string;
  moddir: string;
  /** Digest of depmod.d files, modules.order, modules.builtin, modules.builtin.modinfo. */
  inputsDigest: string;
  /** Their paths and identities (size, mtime, inode): equal means unchanged, without reading them. */
  inputsIdentity: string;
  /** The kmod version whose format the outputs were written in. */
  kmodVersion: string;
  /** Directory mtimes (ns, decimal) by path relative to the module directory ('' is the directory itself). */
  dirs: Record<string, string>;
  /** When the meta was written (ms): a directory whose mtime is this recent is listed again next time (racy). */
  writtenAtMs: number;
  /** Output files as last written: size:mtimeNs:ino, to detect outside edits. */
  outputs: Record<string, string>;
  /** What the KABI check compared with (src/merge/inputs.ts kabiInput key). */
  kabiKey: string;
  kabi: KabiSummary;
  /** Modules in the database. */
  modules: number;
  /** Everything depmod prints for this tree, in its order, each with its level. */
  warnings: string[];
  /** How many of `warnings` depmod prints before its KABI findings. */
  warningsBeforeKabi: number;
  /** depmod.d and module search messages (first in `warnings`). */
  configWarnings: string[];
  /** What depmod printed about modules.order. */
  orderWarnings: string[];
  /** What depmod printed while writing the builtin indexes (repeated when they are reused). */
  builtinWarnings: string[];
  /** The database's KABI findings when there are few (else kabiFindings() from the state). */
  kabiFindings?: KabiFinding[];
  /** The modules kmod could not load, in array order (the no-op path repeats them, as it repeats `warnings`). */
  unreadable: LoadFinding[];
  /** The depmod.d configuration the search used (an update decides new files with it). */
  config: DepmodConfig;
  /** Module files that lost to a file of the same module name: [path as modules.dep spells it, name]. */
  shadowed: Array<[string, string]>;
  /** Slots whose files make depmod print while writing (emit-patch.ts isNoisy). */
  noisy: number[];
  /** modules.order: its line count + 1 (-1 when missing or corrupt: every module sorts at 1). */
  orderTotal: number;
  /** How the state was computed. */
  stateOptions: { kabi: KabiBasis; unsized: boolean };
  cycles: CycleReport | null;
}

/**
 * Directory listings by key: looked up one at a time (an update needs the few it lists again), or
 * all at once (a new base, a full merge).
 */
export interface DirListings {
  get(key: string): DirEntry[] | undefined;
  all(): Record<string, DirEntry[]>;
}

export function listingsOf(map: Record<string, DirEntry[]>): DirListings {
  return { get: (k) => map[k], all: () => map };
}

/** `over`'s listings in front of `base`'s. */
export function overlaidListings(base: DirListings, over: Record<string, DirEntry[]>): DirListings {
  let all: Record<string, DirEntry[]> | undefined;
  return { get: (k) => over[k] ?? base.get(k), all: () => (all ??= { ...base.all(), ...over }) };
}

/**
 * The listings as one section: a line per directory, `\n[KEY,[[NAME,TYPE],...]]` in JSON (which
 * escapes every newline), so one directory is found with a byte search and parsed alone.
 */
function encodeListings(map: Record<string, DirEntry[]>): Uint8Array {
  let text = '';
  for (const k in map) text += `\n${JSON.stringify([k, map[k]!.map((e) => [e.name, e.type])])}`;
  return enc.encode(`${text}\n`);
}

function decodeListings(bytes: Uint8Array, file: string): DirListings {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parse = (line: string): [string, DirEntry[]] => {
    try {
      const [k, es] = JSON.parse(line) as [string, Array<[string, DirEntry['type']]>];
      return [k, es.map(([name, type]) => ({ name, type }))];
    } catch (err) {
      throw new FormatError(file, `cache directory listing is not JSON: ${(err as Error).message}`);
    }
  };
  let all: Record<string, DirEntry[]> | undefined;
  return {
    get: (key) => {
      const at = buf.indexOf(`\n[${JSON.stringify(key)},`);
      if (at < 0) return undefined;
      const end = buf.indexOf(10, at + 1);
      return parse(buf.toString('utf8', at + 1, end < 0 ? buf.length : end))[1];
    },
    all: () => {
      if (all === undefined) {
        all = {};
        for (const line of buf.toString('utf8').split('\n')) if (line !== '') {
          const [k, es] = parse(line);
          all[k] = es;
        }
      }
      return all;
    },
  };
}

/** Everything a cache holds, in memory. */
export interface CacheContents {
  meta: CacheMeta;
  set: ModuleSet;
  state: DbState;
  layout: DatabaseLayout;
  /** Directory listings in readdir order by the keys of meta.dirs. */
  dirEntries: DirListings;
  /** Byte offset of each modules.order line (sortIdx of a new module without reading the whole file). */
  orderLines: Uint32Array;
}

type Ctor = { new (n: number): Column; BYTES_PER_ELEMENT: number };

interface Counts {
  slots: number;
  aliases: number;
  values: number;
  exports: number;
  imports: number;
  heap: number;
  symbols: number;
  poolHeap: number;
  table: number;
  aliasOrder: number;
  nameOrder: number;
  symbolOrder: number;
  aliasSortedThrough: number;
  nameSortedThrough: number;
  symbolSortedThrough: number;
}

/**
 * Every column of the module set: name, element type, and which count gives its length. Columns
 * marked `tail` grow only at their end (the delta stores their new part); the others are stored whole.
 */
const COLUMNS: ReadonlyArray<readonly [name: string, type: Ctor, length: (c: Counts) => number, tail: boolean]> = [
  ['alive', Uint8Array, (c) => c.slots, true],
  ['pathOff', Uint32Array, (c) => c.slots, true],
  ['pathLen', Uint32Array, (c) => c.slots, true],
  ['nameOff', Uint32Array, (c) => c.slots, true],
  ['nameLen', Uint32Array, (c) => c.slots, true],
  ['bucket', Uint16Array, (c) => c.slots, true],
  ['sortIdx', Int32Array, (c) => c.slots, true],
  ['zstdUnsized', Uint8Array, (c) => c.slots, true],
  ['loadErrOff', Uint32Array, (c) => c.slots, true],
  ['loadErrLen', Uint32Array, (c) => c.slots, true],
  ['byKmod', Uint8Array, (c) => c.slots, true],
  ['fp', BigUint64Array, (c) => 4 * c.slots, true],
  ['aliasStart', Uint32Array, (c) => c.slots, true],
  ['aliasCount', Uint32Array, (c) => c.slots, true],
  ['softStart', Uint32Array, (c) => c.slots, true],
  ['softCount', Uint32Array, (c) => c.slots, true],
  ['weakStart', Uint32Array, (c) => c.slots, true],
  ['weakCount', Uint32Array, (c) => c.slots, true],
  ['expStart', Uint32Array, (c) => c.slots, true],
  ['expCount', Uint32Array, (c) => c.slots, true],
  ['impStart', Uint32Array, (c) => c.slots, true],
  ['impCount', Uint32Array, (c) => c.slots, true],
  ['aliasSlot', Uint32Array, (c) => c.aliases, true],
  ['aliasRawOff', Uint32Array, (c) => c.aliases, true],
  ['aliasRawLen', Uint32Array, (c) => c.aliases, true],
  ['aliasKeyOff', Uint32Array, (c) => c.aliases, true],
  ['aliasKeyLen', Uint32Array, (c) => c.aliases, true],
  ['valueOff', Uint32Array, (c) => c.values, true],
  ['valueLen', Uint32Array, (c) => c.values, true],
  ['expSym', Uint32Array, (c) => c.exports, true],
  ['expCrc', Float64Array, (c) => c.exports, true],
  ['impSym', Uint32Array, (c) => c.imports, true],
  ['impCrc', Float64Array, (c) => c.imports, true],
  ['impWeak', Uint8Array, (c) => c.imports, true],
  ['heap', Uint8Array, (c) => c.heap, true],
  ['kernelHas', Uint8Array, (c) => c.symbols, true],
  ['kernelCrc', Float64Array, (c) => c.symbols, true],
  ['pool.heap', Uint8Array, (c) => c.poolHeap, true],
  ['pool.off', Uint32Array, (c) => c.symbols, true],
  ['pool.len', Uint32Array, (c) => c.symbols, true],
  ['pool.hash', Uint32Array, (c) => c.symbols, true],
  ['pool.table', Int32Array, (c) => c.table, false],
  ['aliasOrder', Uint32Array, (c) => c.aliasOrder, false],
  ['aliasLcp', Uint32Array, (c) => c.aliasOrder, false],
  ['nameOrder', Uint32Array, (c) => c.nameOrder, false],
  ['nameLcp', Uint32Array, (c) => c.nameOrder, false],
  ['symbolOrder', Uint32Array, (c) => c.symbolOrder, false],
  ['symbolLcp', Uint32Array, (c) => c.symbolOrder, false],
];

function countsOf(set: ModuleSet): Counts {
  return {
    slots: set.slots,
    aliases: set.aliases,
    values: set.values,
    exports: set.exports,
    imports: set.imports,
    heap: set.heap.used,
    symbols: set.pool.count,
    poolHeap: set.pool.heap.used,
    table: set.pool.table.length,
    aliasOrder: set.aliasOrder.length,
    nameOrder: set.nameOrder.length,
    symbolOrder: set.symbolOrder.length,
    aliasSortedThrough: set.aliasSortedThrough,
    nameSortedThrough: set.nameSortedThrough,
    symbolSortedThrough: set.symbolSortedThrough,
  };
}

function columnOf(set: ModuleSet, name: string): Column {
  switch (name) {
    case 'heap':
      return set.heap.bytes;
    case 'pool.heap':
      return set.pool.heap.bytes;
    case 'pool.off':
      return set.pool.off;
    case 'pool.len':
      return set.pool.len;
    case 'pool.hash':
      return set.pool.hash;
    case 'pool.table':
      return set.pool.table;
    default:
      return (set as unknown as Record<string, Column>)[name]!;
  }
}

const view = (c: Column, from: number, to: number): Section => c.subarray(from, to) as Section;

/** The set's own sections: every column at its counted length. */
function setSections(set: ModuleSet, counts: Counts): Array<[string, Section]> {
  return COLUMNS.map(([name, , length]) => [`set.${name}`, view(columnOf(set, name), 0, length(counts))]);
}

function setFrom(body: ContainerBody, c: Counts, kernelSource: KernelSymbolSource | null, file: string): ModuleSet {
  const cols: Record<string, Column> = {};
  for (const [name, Type, length] of COLUMNS) {
    const code = Type === Uint8Array ? 'u8' : Type === Uint16Array ? 'u16' : Type === Uint32Array ? 'u32' : Type === Int32Array ? 'i32' : Type === Float64Array ? 'f64' : 'u64';
    const col = body.get(`set.${name}`, code);
    if (col.length !== length(c)) throw new FormatError(file, `cache column ${name} has ${col.length} elements, expected ${length(c)}`);
    cols[name] = col;
  }
  const pool = new SymbolPool({
    heap: new ByteHeap(cols['pool.heap'] as Uint8Array, c.poolHeap),
    count: c.symbols,
    off: cols['pool.off'] as Uint32Array,
    len: cols['pool.len'] as Uint32Array,
    hash: cols['pool.hash'] as Uint32Array,
    table: cols['pool.table'] as Int32Array,
  });
  if (pool.table.length === 0 || (pool.table.length & (pool.table.length - 1)) !== 0 || pool.table.length < 2 * pool.count) {
    throw new FormatError(file, 'cache symbol table has a bad size');
  }
  // The bounds of what a checksum vouches for need no second check.
  if (!body.checksummed) checkRanges(file, c, cols);
  const fields: Record<string, unknown> = {};
  for (const [name] of COLUMNS) if (!name.startsWith('pool.') && name !== 'heap') fields[name] = cols[name];
  return ModuleSet.fromColumns({
    ...fields,
    slots: c.slots,
    aliases: c.aliases,
    values: c.values,
    exports: c.exports,
    imports: c.imports,
    heap: new ByteHeap(cols.heap as Uint8Array, c.heap),
    pool,
    kernelSource: kernelSource ?? undefined,
    aliasSortedThrough: c.aliasSortedThrough,
    nameSortedThrough: c.nameSortedThrough,
    symbolSortedThrough: c.symbolSortedThrough,
  } as ModuleSetColumns);
}

/**
 * Every per-slot offset and count must point inside the arrays it indexes: what the size check
 * vouches for is that the file is the one we wrote, this that it is consistent (a bug must not
 * become an out-of-bounds read later). Per slot only: per-import checks cost more than an update.
 */
function checkRanges(file: string, c: Counts, cols: Record<string, Column>, fromSlot = 0): void {
  const u32 = (n: string): Uint32Array => cols[n] as Uint32Array;
  const bad = (what: string): never => {
    throw new FormatError(file, `cache column ${what} points outside its table`);
  };
  const within = (startCol: string, countCol: string, limit: number): void => {
    const st = u32(startCol);
    const ct = u32(countCol);
    for (let s = fromSlot; s < c.slots; s++) if (st[s]! + ct[s]! > limit) bad(startCol);
  };
  const bytesWithin = (offCol: string, lenCol: string, n: number, limit: number, from = fromSlot): void => {
    const o = u32(offCol);
    const l = u32(lenCol);
    for (let i = from; i < n; i++) if (o[i]! + l[i]! > limit) bad(offCol);
  };
  within('aliasStart', 'aliasCount', c.aliases);
  within('softStart', 'softCount', c.values);
  within('weakStart', 'weakCount', c.values);
  within('expStart', 'expCount', c.exports);
  within('impStart', 'impCount', c.imports);
  bytesWithin('pathOff', 'pathLen', c.slots, c.heap);
  bytesWithin('nameOff', 'nameLen', c.slots, c.heap);
  bytesWithin('loadErrOff', 'loadErrLen', c.slots, c.heap);
  bytesWithin('pool.off', 'pool.len', c.symbols, c.poolHeap, 0);
  if (c.aliasSortedThrough > c.aliases || c.nameSortedThrough > c.slots || c.symbolSortedThrough > c.symbols) bad('sorted orders');
}

function listSections(prefix: string, l: SlotLists): Array<[string, Section]> {
  return [[`${prefix}.start`, l.start], [`${prefix}.list`, l.list]];
}

function stateSections(state: DbState): Array<[string, Section]> {
  const f = state.findings;
  return [
    ['st.order', state.order],
    ['st.idxOf', state.idxOf],
    ['st.unreadable', state.unreadable],
    ['st.ownerSlot', state.ownerSlot],
    ['st.ownerCrc', state.ownerCrc],
    ...listSections('st.deps', state.deps),
    ...listSections('st.lines', state.lines),
    ['st.f.start', f.start],
    ['st.f.k', f.k],
    ['st.f.kind', f.kind],
    ['st.f.crc', f.crc],
    ['st.f.owner', f.owner],
    ['st.exp.start', state.exporters.start],
    ['st.exp.list', state.exporters.list],
    ['st.imp.start', state.importers.start],
    ['st.imp.list', state.importers.list],
  ];
}

function layoutSections(layout: DatabaseLayout): { sections: Array<[string, Section]>; kinds: Record<string, 'text' | 'index'> } {
  const sections: Array<[string, Section]> = [];
  const kinds: Record<string, 'text' | 'index'> = {};
  for (const [file, l] of layout) {
    if ('off' in l) {
      kinds[file] = 'text';
      sections.push([`lay.${file}.off`, l.off]);
      if (l.ids !== undefined) sections.push([`lay.${file}.ids`, l.ids]);
    } else {
      kinds[file] = 'index';
      sections.push([`lay.${file}.ref`, l.refPos], [`lay.${file}.prio`, l.prioPos]);
    }
  }
  return { sections, kinds };
}

function layoutFrom(body: ContainerBody, kinds: Record<string, 'text' | 'index'>): DatabaseLayout {
  const layout: DatabaseLayout = new Map();
  for (const [file, kind] of Object.entries(kinds)) {
    if (kind === 'text') {
      const l: TextLayout = { off: body.get(`lay.${file}.off`, 'u32') };
      if (body.has(`lay.${file}.ids`)) l.ids = body.get(`lay.${file}.ids`, 'u32');
      layout.set(file, l);
    } else layout.set(file, { refPos: body.get(`lay.${file}.ref`, 'u32'), prioPos: body.get(`lay.${file}.prio`, 'u32') } satisfies IndexLayout);
  }
  return layout;
}

/** What the base's header holds besides the meta. */
interface BaseHeader {
  meta: CacheMeta;
  counts: Counts;
  kernelSource: KernelSymbolSource | null;
  indexSlots: { exporters: number; importers: number };
  layoutKinds: Record<string, 'text' | 'index'>;
}

export interface EncodedBase {
  bytes: Uint8Array;
  generation: bigint;
}

/** The base file of a cache (its overlays folded in). */
export function encodeBase(c: CacheContents): EncodedBase {
  // Saved orders must hold live ids only and be up to date: a loaded set trusts them as they are.
  c.set.sortedAliases();
  c.set.sortedNames();
  c.set.sortedSymbols();
  const counts = countsOf(c.set);
  const state = packState(c.state, c.set.slots);
  const lay = layoutSections(c.layout);
  const generation = newGeneration();
  const header: BaseHeader = {
    meta: c.meta,
    counts,
    kernelSource: c.set.kernelSource ?? null,
    indexSlots: { exporters: state.exporters.slots, importers: state.importers.slots },
    layoutKinds: lay.kinds,
  };
  const bytes = encodeContainer({
    magic: BASE_MAGIC,
    version: CACHE_VERSION,
    generation,
    baseGeneration: 0n,
    meta: header,
    sections: [...setSections(c.set, counts), ...stateSections(state), ...lay.sections, ['dirEntries', encodeListings(c.dirEntries.all())], ['orderLines', c.orderLines]],
  });
  return { bytes, generation };
}

export interface OpenedBase {
  header: ContainerHeader<BaseHeader>;
  contents: CacheContents;
}

function slotLists(body: ContainerBody, prefix: string): SlotLists {
  return { start: body.get(`${prefix}.start`, 'u32'), list: body.get(`${prefix}.list`, 'u32'), over: new Map() };
}

/** The base's contents as views of `bytes` (which must not be reused). */
export function decodeBase(bytes: Uint8Array, file: string): OpenedBase {
  const header = decodeHeader<BaseHeader>(bytes, BASE_MAGIC, CACHE_VERSION, file);
  const body = new ContainerBody(bytes, header, file);
  const h = header.meta;
  if (typeof h?.counts?.slots !== 'number' || typeof h.meta?.kver !== 'string') throw new FormatError(file, 'cache header incomplete');
  const set = setFrom(body, h.counts, h.kernelSource, file);
  const findings: FindingLists = {
    start: body.get('st.f.start', 'u32'),
    k: body.get('st.f.k', 'u32'),
    kind: body.get('st.f.kind', 'u8'),
    crc: body.get('st.f.crc', 'f64'),
    owner: body.get('st.f.owner', 'i32'),
    over: new Map(),
  };
  const state: DbState = {
    order: body.get('st.order', 'u32'),
    idxOf: body.get('st.idxOf', 'i32'),
    unreadable: body.get('st.unreadable', 'u8'),
    ownerSlot: body.get('st.ownerSlot', 'i32'),
    ownerCrc: body.get('st.ownerCrc', 'f64'),
    deps: slotLists(body, 'st.deps'),
    lines: slotLists(body, 'st.lines'),
    findings,
    exporters: { slots: h.indexSlots.exporters, start: body.get('st.exp.start', 'u32'), list: body.get('st.exp.list', 'u32') },
    importers: { slots: h.indexSlots.importers, start: body.get('st.imp.start', 'u32'), list: body.get('st.imp.list', 'u32') },
    cycles: h.meta.cycles,
  };
  if (state.idxOf.length !== set.slots || state.unreadable.length !== set.slots || state.deps.start.length !== set.slots + 1 || state.lines.start.length !== set.slots + 1 || findings.start.length !== set.slots + 1) {
    throw new FormatError(file, 'cache state does not match its module set');
  }
  return {
    header,
    contents: {
      meta: h.meta,
      set,
      state,
      layout: layoutFrom(body, h.layoutKinds),
      dirEntries: decodeListings(body.get('dirEntries', 'u8'), file),
      orderLines: body.get('orderLines', 'u32'),
    },
  };
}

/** What the delta's header holds besides the meta. */
interface DeltaHeader {
  meta: CacheMeta;
  /** The base's counts (where the tails start) and the counts now. */
  base: Counts;
  counts: Counts;
  layoutKinds: Record<string, 'text' | 'index'>;
  /** Slots of the base dropped since. */
  dropped: number[];
  /** Resolution findings overlay: [slot, findings]. */
  findings: Array<[number, SlotFinding[]]>;
  /** Relisted directories: their entries now. */
  dirEntries: Record<string, DirEntry[]>;
  cycles: CycleReport | null;
}

/** Per-slot lists of an overlay, packed: slots, starts, items. */
function overlaySections(prefix: string, over: Map<number, Uint32Array>): Array<[string, Section]> {
  const slots = Uint32Array.from(over.keys());
  const start = new Uint32Array(slots.length + 1);
  let total = 0;
  slots.forEach((s, i) => {
    start[i] = total;
    total += over.get(s)!.length;
  });
  start[slots.length] = total;
  const list = new Uint32Array(total);
  slots.forEach((s, i) => list.set(over.get(s)!, start[i]!));
  return [[`${prefix}.slots`, slots], [`${prefix}.start`, start], [`${prefix}.list`, list]];
}

function overlayFrom(body: ContainerBody, prefix: string): Map<number, Uint32Array> {
  const slots = body.get(`${prefix}.slots`, 'u32');
  const start = body.get(`${prefix}.start`, 'u32');
  const list = body.get(`${prefix}.list`, 'u32');
  const out = new Map<number, Uint32Array>();
  for (let i = 0; i < slots.length; i++) out.set(slots[i]!, list.subarray(start[i]!, start[i + 1]!));
  return out;
}

export interface DeltaInput {
  base: { generation: bigint; counts: Counts };
  contents: CacheContents;
  /** Base slots dropped since the base was written. */
  dropped: readonly number[];
  /** Every directory relisted since the base, with its entries now. */
  dirEntries: Record<string, DirEntry[]>;
}

/** The delta file of a cache whose base is `base`. */
export function encodeDelta(d: DeltaInput): Uint8Array {
  const { set, state, meta } = d.contents;
  const counts = countsOf(set);
  const tails: Array<[string, Section]> = [];
  for (const [name, , length, tail] of COLUMNS) {
    if (!tail) continue;
    tails.push([`tail.${name}`, view(columnOf(set, name), length(d.base.counts), length(counts))]);
  }
  const lay = layoutSections(d.contents.layout);
  const header: DeltaHeader = {
    meta,
    base: d.base.counts,
    counts,
    layoutKinds: lay.kinds,
    dropped: [...d.dropped],
    findings: [...state.findings.over].map(([s, f]) => [s, [...f]]),
    dirEntries: d.dirEntries,
    cycles: state.cycles,
  };
  return encodeContainer({
    magic: DELTA_MAGIC,
    version: CACHE_VERSION,
    generation: newGeneration(),
    baseGeneration: d.base.generation,
    meta: header,
    sections: [
      ...tails,
      ['st.order', state.order],
      ['st.idxOf', state.idxOf],
      ['st.unreadable', state.unreadable],
      ['st.ownerSlot', state.ownerSlot],
      ['st.ownerCrc', state.ownerCrc],
      ...overlaySections('st.deps', state.deps.over),
      ...overlaySections('st.lines', state.lines.over),
      ...lay.sections,
    ],
  });
}

/** The base's counts (where a delta's tails start). */
export function baseCounts(b: OpenedBase): Counts {
  return b.header.meta.counts;
}

export function countsNow(set: ModuleSet): Counts {
  return countsOf(set);
}

export type { Counts as CacheCounts };

/**
 * The base with a delta applied: its column tails appended, its dropped slots dead, its state and
 * layouts in place of the base's. Throws FormatError when the delta does not fit the base.
 */
export function applyDelta(base: OpenedBase, bytes: Uint8Array, file: string): { contents: CacheContents; dropped: number[]; dirEntries: Record<string, DirEntry[]> } {
  const header = decodeHeader<DeltaHeader>(bytes, DELTA_MAGIC, CACHE_VERSION, file);
  if (header.baseGeneration !== base.header.generation) throw new FormatError(file, 'delta of another base');
  const body = new ContainerBody(bytes, header, file);
  const h = header.meta;
  const b = base.header.meta.counts;
  if (JSON.stringify(h.base) !== JSON.stringify(b)) throw new FormatError(file, 'delta counts do not match its base');
  const set = base.contents.set;
  const c = h.counts;
  const grown: Record<string, Column> = {};
  // Room to grow, counted in rows (a slot is four fingerprint words): the update that loaded this
  // adds a few modules, which must not copy every column again.
  const room = Object.fromEntries(Object.entries(c).map(([k, v]) => [k, v + (v >>> 3) + 64])) as unknown as Counts;
  for (const [name, Type, length, tail] of COLUMNS) {
    if (!tail) continue;
    const code = Type === Uint8Array ? 'u8' : Type === Uint16Array ? 'u16' : Type === Uint32Array ? 'u32' : Type === Int32Array ? 'i32' : Type === Float64Array ? 'f64' : 'u64';
    const t = body.get(`tail.${name}`, code);
    const from = length(b);
    if (t.length !== length(c) - from) throw new FormatError(file, `delta tail ${name} has ${t.length} elements, expected ${length(c) - from}`);
    const col = new Type(length(room)) as Column;
    (col as Uint8Array).set(columnOf(set, name).subarray(0, from) as Uint8Array);
    (col as Uint8Array).set(t as Uint8Array, from);
    grown[name] = col;
  }
  const cols: Record<string, Column> = { ...grown, 'pool.table': set.pool.table };
  // The base's rows were checked when it was opened: the tail's only.
  if (!body.checksummed) checkRanges(file, c, { ...cols, 'pool.off': grown['pool.off']!, 'pool.len': grown['pool.len']! }, b.slots);
  for (const [name] of COLUMNS) {
    if (name.startsWith('pool.') || name === 'heap' || grown[name] === undefined) continue;
    (set as unknown as Record<string, Column>)[name] = grown[name];
  }
  Object.assign(set, { slots: c.slots, aliases: c.aliases, values: c.values, exports: c.exports, imports: c.imports });
  set.heap.bytes = grown.heap as Uint8Array;
  set.heap.used = c.heap;
  set.pool.adoptTail(grown['pool.heap'] as Uint8Array, c.poolHeap, grown['pool.off'] as Uint32Array, grown['pool.len'] as Uint32Array, grown['pool.hash'] as Uint32Array, c.symbols);
  for (const s of h.dropped) {
    if (s >= b.slots) throw new FormatError(file, `delta drops slot ${s}, past the base's ${b.slots}`);
    set.alive[s] = 0;
  }
  const prev = base.contents.state;
  const findingsOver = new Map<number, readonly SlotFinding[]>(h.findings);
  const state: DbState = {
    ...prev,
    order: body.get('st.order', 'u32'),
    idxOf: body.get('st.idxOf', 'i32'),
    unreadable: body.get('st.unreadable', 'u8'),
    ownerSlot: body.get('st.ownerSlot', 'i32'),
    ownerCrc: body.get('st.ownerCrc', 'f64'),
    deps: { ...prev.deps, over: overlayFrom(body, 'st.deps') },
    lines: { ...prev.lines, over: overlayFrom(body, 'st.lines') },
    findings: { ...prev.findings, over: findingsOver },
    cycles: h.cycles,
  };
  if (state.idxOf.length !== set.slots || state.unreadable.length !== set.slots) throw new FormatError(file, 'delta state does not match its module set');
  for (let i = 0; i < state.order.length; i++) if (state.order[i]! >= set.slots) throw new FormatError(file, 'delta order names a slot past the set');
  return {
    contents: {
      meta: h.meta,
      set,
      state,
      layout: layoutFrom(body, h.layoutKinds),
      dirEntries: overlaidListings(base.contents.dirEntries, h.dirEntries),
      orderLines: base.contents.orderLines,
    },
    dropped: h.dropped,
    dirEntries: h.dirEntries,
  };
}
