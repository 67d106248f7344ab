// Patching a kmod binary trie index (layout in format.ts) instead of writing it anew: the new file is
// the canonical trie of the new key set (what writeIndex, and kmod's index_write, make of it), built
// from the old file's bytes. A subtree none of whose keys changed is one contiguous run of bytes in
// both node orders (post-order: its nodes, then its root; pre-order: its root, then its nodes), so
// it is copied as bytes and relocated: the child references inside it move by the distance it moved
// and its values' priorities (module array positions) go through the caller's remap, both found
// through the old file's IndexLayout as a linker finds address words through relocations. Only the
// nodes on the paths to changed keys are read, decided and written again.
//
// Why the result is canonical: kmod's trie has an empty-prefix root and every other node's prefix
// runs to the longest common prefix of the keys below it (trie.ts). Here a node's items are changed
// keys and untouched old subtrees, each subtree standing for its keys by its full path (the LCP of
// its keys, by that same property); a group of items gets a node at their LCP, with the values of the
// key ending there and one child per next byte. A subtree is reused whole only when it is the only
// item of its group and hangs at the same depth as before (same edge, same prefix); otherwise its
// root is read and rewritten, its children becoming items one level down.
// Pure: bytes and typed arrays in, bytes and typed arrays out.
import { FormatError } from '../errors.ts';
import { INDEX_CHILDMAX, INDEX_HEADER_SIZE, INDEX_MAGIC, INDEX_VERSION, NODE_CHILDS, NODE_OFFSET_MASK, NODE_PREFIX, NODE_VALUES } from './format.ts';
import type { IndexLayout, IndexNodeOrder } from './trie.ts';

/** One value of a key: its priority and its bytes (without the NUL). */
export interface PatchValue {
  priority: number;
  bytes: Uint8Array;
}

/**
 * A key whose values are replaced: `values` in the file's order (kmod's: by priority, later insert
 * first among equals), empty to remove the key. Changes are sorted by key bytes, keys distinct.
 */
export interface KeyChange {
  key: Uint8Array;
  values: readonly PatchValue[];
}

export interface PatchInput {
  old: Uint8Array;
  layout: IndexLayout;
  changes: readonly KeyChange[];
  /** Old priority → new priority for every value not in a changed key (-1: a bug of the caller). */
  remap?: Int32Array | undefined;
  order: IndexNodeOrder;
  /** The file's name, for errors. */
  name: string;
}

export interface PatchResult {
  bytes: Uint8Array;
  layout: IndexLayout;
  /** Old bytes copied as whole subtrees, and nodes written anew (for the plan and the trace). */
  copiedBytes: number;
  writtenNodes: number;
}

/** An untouched old subtree: its root's reference, full path, and the depth its prefix starts at. */
interface Sub {
  kind: 0;
  ref: number;
  full: Uint8Array;
  hang: number;
}

/** A key with the values it must end up with (old values of an opened node, or a change). */
interface Key {
  kind: 1;
  key: Uint8Array;
  /** The change's values; for an old node's values, undefined until used (read from `ref`). */
  values: readonly PatchValue[] | undefined;
  ref: number;
  /** From the change list (wins over the old values of the same key); an empty change deletes. */
  changed: boolean;
}

type Item = Sub | Key;

/** A node of the new file: written anew, or an old subtree copied whole. */
interface NewNode {
  kind: 'new';
  prefix: Uint8Array;
  values: readonly PatchValue[];
  /** Edge bytes ascending, one child each. */
  edges: number[];
  children: Array<NewNode | Block>;
  /** Set by placement. */
  offset: number;
  size: number;
}

interface Block {
  kind: 'block';
  ref: number;
  start: number;
  end: number;
  offset: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

function startsWith(s: Uint8Array, prefix: Uint8Array): boolean {
  if (s.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (s[i] !== prefix[i]) return false;
  return true;
}

function concat(a: Uint8Array, edge: number, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + 1 + b.length);
  out.set(a);
  out[a.length] = edge;
  out.set(b, a.length + 1);
  return out;
}

const itemString = (it: Item): Uint8Array => (it.kind === 0 ? it.full : it.key);

/** Reads old nodes (offset and flags from the reference pointing at them). */
class OldIndex {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly name: string;
  readonly remap: Int32Array | undefined;
  constructor(bytes: Uint8Array, name: string, remap: Int32Array | undefined) {
    // A plain view even of a Buffer: Buffer's indexOf and subarray go through slower paths than the
    // typed array's (stringEnd runs once per string of every node read).
    this.bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.name = name;
    this.remap = remap;
  }

  fail(reason: string, offset?: number): never {
    throw new FormatError(this.name, `cannot patch: ${reason}`, offset);
  }

  u32(pos: number): number {
    const b = this.bytes;
    if (pos + 4 > b.length) this.fail('node runs past the end of the file', pos);
    return ((b[pos]! << 24) | (b[pos + 1]! << 16) | (b[pos + 2]! << 8) | b[pos + 3]!) >>> 0;
  }

  /** Position just after the NUL ending the string at pos. */
  stringEnd(pos: number): number {
    const nul = this.bytes.indexOf(0, pos);
    if (nul < 0) this.fail('string not NUL-terminated', pos);
    return nul + 1;
  }

  prefix(ref: number): Uint8Array {
    if ((ref & NODE_PREFIX) === 0) return new Uint8Array(0);
    const at = ref & NODE_OFFSET_MASK;
    return this.bytes.subarray(at, this.stringEnd(at) - 1);
  }

  /** The node's parts: where its child table and values start, and where it ends. */
  parts(ref: number): { childAt: number; first: number; last: number; valuesAt: number; end: number } {
    let pos = ref & NODE_OFFSET_MASK;
    if (pos < INDEX_HEADER_SIZE || pos > this.bytes.length) this.fail(`node offset ${pos} out of range`, pos);
    if ((ref & NODE_PREFIX) !== 0) pos = this.stringEnd(pos);
    let childAt = -1;
    let first = 0;
    let last = -1;
    if ((ref & NODE_CHILDS) !== 0) {
      if (pos + 2 > this.bytes.length) this.fail('child table runs past the end of the file', pos);
      first = this.bytes[pos]!;
      last = this.bytes[pos + 1]!;
      if (last < first) this.fail('child table with last < first', pos);
      childAt = pos + 2;
      pos = childAt + 4 * (last - first + 1);
    }
    let valuesAt = -1;
    if ((ref & NODE_VALUES) !== 0) {
      valuesAt = pos;
      const count = this.u32(pos);
      pos += 4;
      for (let i = 0; i < count; i++) pos = this.stringEnd(pos + 4);
    }
    if (pos > this.bytes.length) this.fail('node runs past the end of the file', pos);
    return { childAt, first, last, valuesAt, end: pos };
  }

  values(ref: number): PatchValue[] {
    const { valuesAt } = this.parts(ref);
    if (valuesAt < 0) return [];
    const count = this.u32(valuesAt);
    const out: PatchValue[] = [];
    let pos = valuesAt + 4;
    for (let i = 0; i < count; i++) {
      const old = this.u32(pos);
      const end = this.stringEnd(pos + 4);
      out.push({ priority: this.#remapped(old, pos), bytes: this.bytes.subarray(pos + 4, end - 1) });
      pos = end;
    }
    return out;
  }

  #remapped(old: number, pos: number): number {
    if (this.remap === undefined) return old;
    const p = old < this.remap.length ? this.remap[old]! : -1;
    if (p < 0) this.fail(`value priority ${old} has no new position (a module dropped without its keys changed)`, pos);
    return p;
  }

  remapPriority(old: number, pos: number): number {
    return this.#remapped(old, pos);
  }

  /** The children of a node: edge byte and reference, in edge order. */
  children(ref: number): Array<{ edge: number; ref: number }> {
    const { childAt, first, last } = this.parts(ref);
    const out: Array<{ edge: number; ref: number }> = [];
    if (childAt < 0) return out;
    for (let c = first; c <= last; c++) {
      const r = this.u32(childAt + 4 * (c - first));
      if (r !== 0) out.push({ edge: c, ref: r });
    }
    return out;
  }

  /** The reference of a node's first (or last) child, 0 when it has none. */
  edgeChild(ref: number, last: boolean): number {
    if ((ref & NODE_CHILDS) === 0) return 0;
    let pos = ref & NODE_OFFSET_MASK;
    if ((ref & NODE_PREFIX) !== 0) pos = this.stringEnd(pos);
    if (pos + 2 > this.bytes.length) this.fail('child table runs past the end of the file', pos);
    const n = this.bytes[pos + 1]! - this.bytes[pos]! + 1;
    const table = pos + 2;
    for (let k = 0; k < n; k++) {
      const r = this.u32(table + 4 * (last ? n - 1 - k : k));
      if (r !== 0) return r;
    }
    return 0;
  }

  /** The byte range an old subtree occupies (contiguous in both node orders). */
  extent(ref: number, order: IndexNodeOrder): { start: number; end: number } {
    if (order === 'post-order') {
      // The first leaf below comes first; the subtree's own root ends it.
      let r = ref;
      for (let c = this.edgeChild(r, false); c !== 0; c = this.edgeChild(r, false)) r = c;
      return { start: r & NODE_OFFSET_MASK, end: this.parts(ref).end };
    }
    let r = ref;
    for (let c = this.edgeChild(r, true); c !== 0; c = this.edgeChild(r, true)) r = c;
    return { start: ref & NODE_OFFSET_MASK, end: this.parts(r).end };
  }
}

/** The items an old node stands for when it must be rewritten: its values as a key, its children as subtrees. */
function open(old: OldIndex, sub: { ref: number; full: Uint8Array }): Item[] {
  const out: Item[] = [];
  // Old values are read (and their priorities remapped) only if no change replaces them.
  if ((sub.ref & NODE_VALUES) !== 0) out.push({ kind: 1, key: sub.full, values: undefined, ref: sub.ref, changed: false });
  for (const c of old.children(sub.ref)) {
    out.push({ kind: 0, ref: c.ref, full: concat(sub.full, c.edge, old.prefix(c.ref)), hang: sub.full.length + 1 });
  }
  return out;
}

/** Order of items: by their strings; a changed key before old values of the same key. */
function itemOrder(a: Item, b: Item): number {
  return compareBytes(itemString(a), itemString(b)) || (a.kind === 1 && b.kind === 1 ? Number(b.changed) - Number(a.changed) : 0);
}

/** Two sorted item lists as one. */
function mergeSorted(a: readonly Item[], b: readonly Item[]): Item[] {
  const out: Item[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) out.push(itemOrder(a[i]!, b[j]!) <= 0 ? a[i++]! : b[j++]!);
  while (i < a.length) out.push(a[i++]!);
  while (j < b.length) out.push(b[j++]!);
  return out;
}

/**
 * Appends `sorted` to `out` with every subtree that holds a deleted key opened, recursively. A
 * subtree's keys are the items right after it, so opening it touches only that range: one pass
 * over the list, however many subtrees a large removal opens.
 */
function openDeleted(old: OldIndex, sorted: readonly Item[], out: Item[]): void {
  for (let i = 0; i < sorted.length; i++) {
    const it = sorted[i]!;
    if (it.kind !== 0) {
      out.push(it);
      continue;
    }
    let j = i + 1;
    let deletes = false;
    for (; j < sorted.length; j++) {
      const k = sorted[j]!;
      if (k.kind !== 1 || !startsWith(k.key, it.full)) break;
      if (k.changed && k.values!.length === 0) deletes = true;
    }
    if (!deletes) {
      out.push(it);
      continue;
    }
    openDeleted(old, mergeSorted(open(old, it), sorted.slice(i + 1, j)), out);
    i = j - 1;
  }
}

/**
 * The items of one node with the changes applied, in order: every old subtree that holds a
 * deleted key is opened (a deletion can empty a subtree or lengthen its keys' common prefix, so its
 * full path no longer stands for it), recursively; then a changed key replaces the old values of
 * the same key, and a deletion removes them. A subtree holding only added or replaced keys still
 * stands for its keys by its full path; node() opens it when its root is where the node goes.
 * Keys inside a subtree sort right after it, so each subtree looks only at the items after it.
 */
function settle(old: OldIndex, sorted: readonly Item[]): Item[] {
  const items: Item[] = [];
  openDeleted(old, sorted, items);
  const out: Item[] = [];
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    if (it.kind === 1) {
      const prev = out.length > 0 ? out[out.length - 1]! : undefined;
      if (prev !== undefined && prev.kind === 1 && compareBytes(prev.key, it.key) === 0) continue;
      if (it.changed && it.values!.length === 0) {
        const next = items[i + 1];
        if (next !== undefined && next.kind === 1 && compareBytes(next.key, it.key) === 0) i++;
        continue;
      }
    }
    out.push(it);
  }
  return out;
}

function lcpFrom(items: readonly Item[], from: number): number {
  let l = itemString(items[0]!).length;
  for (let i = 1; i < items.length; i++) {
    const a = itemString(items[i - 1]!);
    const b = itemString(items[i]!);
    let c = from;
    const m = Math.min(a.length, b.length, l);
    while (c < m && a[c] === b[c]) c++;
    if (c < l) l = c;
  }
  return l;
}

class Builder {
  readonly old: OldIndex;
  readonly order: IndexNodeOrder;
  written = 0;
  constructor(old: OldIndex, order: IndexNodeOrder) {
    this.old = old;
    this.order = order;
  }

  /** The node whose prefix starts at depth h (the root: h = 0, always rewritten, empty prefix). */
  node(h: number, input: Item[], root: boolean): NewNode | Block | null {
    let items = settle(this.old, input);
    for (;;) {
      if (items.length === 0) return root ? this.#newNode(new Uint8Array(0), [], []) : null;
      const only = items.length === 1 ? items[0]! : undefined;
      if (!root && only !== undefined && only.kind === 0 && only.hang === h) {
        const { start, end } = this.old.extent(only.ref, this.order);
        return { kind: 'block', ref: only.ref, start, end, offset: 0 };
      }
      const l = root ? 0 : lcpFrom(items, h);
      // An old subtree whose own root sits where this node goes is opened: the node is rewritten.
      const here = items.findIndex((it) => it.kind === 0 && it.full.length === l);
      if (here >= 0) {
        const s = items[here] as Sub;
        let j = here + 1;
        while (j < items.length && startsWith(itemString(items[j]!), s.full)) j++;
        items = settle(this.old, [...items.slice(0, here), ...mergeSorted(open(this.old, s), items.slice(here + 1, j)), ...items.slice(j)]);
        continue;
      }
      const any = itemString(items[0]!);
      let values: readonly PatchValue[] = [];
      const edges: number[] = [];
      const children: Array<NewNode | Block> = [];
      let i = 0;
      const first = items[0]!;
      if (first.kind === 1 && first.key.length === l) {
        values = first.values ?? this.old.values(first.ref);
        i = 1;
      }
      while (i < items.length) {
        const edge = itemString(items[i]!)[l]!;
        let j = i + 1;
        while (j < items.length && itemString(items[j]!)[l] === edge) j++;
        if (edge >= INDEX_CHILDMAX) {
          const k = itemString(items[i]!);
          throw new FormatError(this.old.name, `key "${dec.decode(k)}": byte 0x${edge.toString(16)} would become a trie edge; kmod only supports 7-bit ASCII there (depmod 30 crashes)`);
        }
        const child = this.node(l + 1, items.slice(i, j), false);
        if (child !== null) {
          edges.push(edge);
          children.push(child);
        }
        i = j;
      }
      return this.#newNode(root ? new Uint8Array(0) : any.subarray(h, l), values, children, edges);
    }
  }

  #newNode(prefix: Uint8Array, values: readonly PatchValue[], children: Array<NewNode | Block>, edges: number[] = []): NewNode {
    this.written++;
    let size = prefix.length > 0 ? prefix.length + 1 : 0;
    if (children.length > 0) size += 2 + 4 * (edges[edges.length - 1]! - edges[0]! + 1);
    if (values.length > 0) {
      size += 4;
      for (const v of values) size += 5 + v.bytes.length;
    }
    return { kind: 'new', prefix, values, edges, children, offset: 0, size };
  }
}

function refOf(n: NewNode | Block): number {
  if (n.kind === 'block') return ((n.ref & ~NODE_OFFSET_MASK) | (n.offset + (n.ref & NODE_OFFSET_MASK) - n.start)) >>> 0;
  let r = n.offset;
  if (n.prefix.length > 0) r |= NODE_PREFIX;
  if (n.children.length > 0) r |= NODE_CHILDS;
  if (n.values.length > 0) r |= NODE_VALUES;
  return r >>> 0;
}

/** The new index's bytes and layout, patched from the old one. */
export function patchIndex(input: PatchInput): PatchResult {
  const { order, name } = input;
  const oldBytes = input.old;
  const old = new OldIndex(oldBytes, name, input.remap);
  if (oldBytes.length < INDEX_HEADER_SIZE || old.u32(0) !== INDEX_MAGIC || old.u32(4) !== INDEX_VERSION) old.fail('not a kmod index');
  const rootRef = old.u32(8);
  const changes: Item[] = input.changes.map((c) => ({ kind: 1, key: c.key, values: c.values, ref: 0, changed: true }));
  const b = new Builder(old, order);
  const root = b.node(0, mergeSorted(open(old, { ref: rootRef, full: new Uint8Array(0) }), changes), true) as NewNode;

  // Placement: sizes are known, offsets follow the node order.
  const seq: Array<NewNode | Block> = [];
  const place = (n: NewNode | Block): void => {
    if (n.kind === 'block') {
      seq.push(n);
      return;
    }
    if (order === 'pre-order') seq.push(n);
    for (const c of n.children) place(c);
    if (order === 'post-order') seq.push(n);
  };
  place(root);
  let cursor = INDEX_HEADER_SIZE;
  for (const n of seq) {
    n.offset = cursor;
    if (n.kind === 'block') cursor += n.end - n.start;
    else cursor += n.size;
  }
  if (cursor - 1 > NODE_OFFSET_MASK) throw new FormatError(name, `index of ${cursor} bytes does not fit 28-bit node offsets`);

  const out = new Uint8Array(cursor);
  const view = new DataView(out.buffer);
  view.setUint32(0, INDEX_MAGIC);
  view.setUint32(4, INDEX_VERSION);
  view.setUint32(8, refOf(root));
  // Bytes first: blocks copied (their words relocated below), new nodes written with their words'
  // positions noted. Blocks appear in the new file in the same order as in the old one.
  const blocks = seq.filter((n): n is Block => n.kind === 'block');
  const bStart = new Uint32Array(blocks.length);
  const bEnd = new Uint32Array(blocks.length);
  const bDelta = new Int32Array(blocks.length);
  const newRefPos: number[] = [];
  const newPrioPos: number[] = [];
  let copied = 0;
  let bi = 0;
  for (const n of seq) {
    if (n.kind === 'block') {
      out.set(oldBytes.subarray(n.start, n.end), n.offset);
      copied += n.end - n.start;
      bStart[bi] = n.start;
      bEnd[bi] = n.end;
      bDelta[bi++] = n.offset - n.start;
      continue;
    }
    let pos = n.offset;
    if (n.prefix.length > 0) {
      out.set(n.prefix, pos);
      pos += n.prefix.length;
      out[pos++] = 0;
    }
    if (n.children.length > 0) {
      const first = n.edges[0]!;
      const last = n.edges[n.edges.length - 1]!;
      out[pos] = first;
      out[pos + 1] = last;
      const table = pos + 2;
      n.children.forEach((c, k) => {
        const at = table + 4 * (n.edges[k]! - first);
        view.setUint32(at, refOf(c));
        newRefPos.push(at);
      });
      pos = table + 4 * (last - first + 1);
    }
    if (n.values.length > 0) {
      view.setUint32(pos, n.values.length);
      pos += 4;
      for (const v of n.values) {
        view.setUint32(pos, v.priority >>> 0);
        newPrioPos.push(pos);
        pos += 4;
        out.set(v.bytes, pos);
        pos += v.bytes.length;
        out[pos++] = 0;
      }
    }
  }
  const refs = relocate(out, input.layout.refPos, bStart, bEnd, bDelta, undefined);
  const prios = relocate(out, input.layout.prioPos, bStart, bEnd, bDelta, input.remap);
  if (prios.bad >= 0) old.remapPriority(old.u32(input.layout.prioPos[prios.bad]!), input.layout.prioPos[prios.bad]!); // throws, naming the word
  return {
    bytes: out,
    layout: { refPos: mergeAscending(refs.pos, refs.count, newRefPos), prioPos: mergeAscending(prios.pos, prios.count, newPrioPos) },
    copiedBytes: copied,
    writtenNodes: b.written,
  };
}

/**
 * The words at the old positions `pos` (ascending) that lie in copied blocks (ascending, with how far
 * each moved): child references move with their block (+delta), priorities go through `remap`.
 * One pass over all of them, so that the loop is hot at once in a short-lived process; returns their
 * new positions (ascending) and the index of a priority remap has no value for (-1: none).
 */
function relocate(out: Uint8Array, pos: Uint32Array, bStart: Uint32Array, bEnd: Uint32Array, bDelta: Int32Array, remap: Int32Array | undefined): { pos: Uint32Array; count: number; bad: number } {
  const moved = new Uint32Array(pos.length);
  let count = 0;
  let bad = -1;
  let b = 0;
  const nb = bStart.length;
  for (let i = 0; i < pos.length; i++) {
    const p = pos[i]!;
    while (b < nb && bEnd[b]! <= p) b++;
    if (b === nb) break;
    if (p < bStart[b]!) continue; // in a node written anew
    const d = bDelta[b]!;
    const q = p + d;
    const w = ((out[q]! << 24) | (out[q + 1]! << 16) | (out[q + 2]! << 8) | out[q + 3]!) >>> 0;
    let v: number;
    if (remap === undefined) v = w + d;
    else {
      v = w < remap.length ? remap[w]! : -1;
      if (v < 0) {
        if (bad < 0) bad = i;
        continue;
      }
    }
    out[q] = v >>> 24;
    out[q + 1] = v >>> 16;
    out[q + 2] = v >>> 8;
    out[q + 3] = v;
    moved[count++] = q;
  }
  return { pos: moved, count, bad };
}

/** Two ascending position lists as one. */
function mergeAscending(a: Uint32Array, na: number, b: readonly number[]): Uint32Array {
  const out = new Uint32Array(na + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < na && j < b.length) out[k++] = a[i]! < b[j]! ? a[i++]! : b[j++]!;
  while (i < na) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out;
}

/** A change list entry from strings (tests, builtin indexes): values as [priority, text]. */
export function keyChange(key: string, values: ReadonlyArray<readonly [number, string]>): KeyChange {
  return { key: enc.encode(key), values: values.map(([priority, v]) => ({ priority, bytes: enc.encode(v) })) };
}

/**
 * The layout of an index file found by walking it from its root (when no layout was kept, e.g. a
 * database written by kmod's own depmod): every node is visited once.
 */
export function indexLayoutOf(bytes: Uint8Array, name: string): IndexLayout {
  const old = new OldIndex(bytes, name, undefined);
  if (bytes.length < INDEX_HEADER_SIZE || old.u32(0) !== INDEX_MAGIC || old.u32(4) !== INDEX_VERSION) old.fail('not a kmod index');
  const refs: number[] = [];
  const prios: number[] = [];
  const stack = [old.u32(8)];
  let visited = 0;
  while (stack.length > 0) {
    const ref = stack.pop()!;
    if (++visited > bytes.length) old.fail('the trie has more nodes than bytes (a cycle)');
    const { childAt, first, last, valuesAt } = old.parts(ref);
    if (childAt >= 0) {
      for (let c = first; c <= last; c++) {
        const at = childAt + 4 * (c - first);
        const r = old.u32(at);
        if (r !== 0) {
          refs.push(at);
          stack.push(r);
        }
      }
    }
    if (valuesAt >= 0) {
      const count = old.u32(valuesAt);
      let pos = valuesAt + 4;
      for (let i = 0; i < count; i++) {
        prios.push(pos);
        pos = old.stringEnd(pos + 4);
      }
    }
  }
  return { refPos: Uint32Array.from(refs).sort(), prioPos: Uint32Array.from(prios).sort() };
}
