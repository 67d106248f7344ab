// Test-only reference model: kmod v30's incremental index_insert (node splitting on every
// insert, tools/depmod.c) followed step by step, with post-order writing (index_write__node).
// src/index/trie.ts builds the same canonical trie from sorted keys instead, which is faster;
// tests feed both the same random inserts and require equal bytes. This model also produced
// byte-identical files for the real-kernel oracles before the sorted builder replaced it.

import { FormatError } from '../../src/errors.ts';
import {
  INDEX_CHILDMAX,
  INDEX_HEADER_SIZE,
  INDEX_MAGIC,
  INDEX_VERSION,
  NODE_CHILDS,
  NODE_OFFSET_MASK,
  NODE_PREFIX,
  NODE_VALUES,
  toByteString,
  type IndexValue,
} from '../../src/index/format.ts';


/**
 * The order in which nodes are placed in the file. kmod 30 (Debian 12) writes children, in edge
 * character order, before their parent, so the root comes last ('post-order'). kmod 34 writes the
 * same nodes parent first ('pre-order'): same size, different bytes.
 */
type IndexLayout = 'post-order' | 'pre-order';

interface TrieNode {
  /** Byte string (see toByteString). */
  prefix: string;
  /** Kept sorted by priority; a new value goes before existing values of equal priority. */
  values: IndexValue[] | undefined;
  /** Edge character range; kids[ch - first]. Both meaningless while kids is undefined. */
  first: number;
  last: number;
  kids: (TrieNode | undefined)[] | undefined;
  /** Filled by serialize. */
  offset: number;
}

function newNode(prefix: string, values: IndexValue[] | undefined): TrieNode {
  return { prefix, values, first: INDEX_CHILDMAX, last: 0, kids: undefined, offset: 0 };
}

function childAt(node: TrieNode, ch: number): TrieNode | undefined {
  if (node.kids === undefined || ch < node.first || ch > node.last) return undefined;
  return node.kids[ch - node.first];
}

function setChild(node: TrieNode, ch: number, child: TrieNode): void {
  if (node.kids === undefined) {
    node.first = ch;
    node.last = ch;
    node.kids = [child];
    return;
  }
  if (ch < node.first) {
    const grown = new Array<TrieNode | undefined>(node.first - ch).fill(undefined);
    node.kids = grown.concat(node.kids);
    node.first = ch;
  } else if (ch > node.last) {
    for (let c = node.last + 1; c < ch; c++) node.kids.push(undefined);
    node.kids.push(undefined);
    node.last = ch;
  }
  node.kids[ch - node.first] = child;
}

export class KmodInsertModel {
  readonly #root: TrieNode = newNode('', undefined);
  readonly #name: string;

  /** `name` (the output file, e.g. "modules.alias.bin") prefixes error messages. */
  constructor(name = 'index') {
    this.#name = name;
  }

  /**
   * Adds `value` under `key` (kmod index_insert + index_add_value). Returns true when the key
   * already held an equal value (kmod reports that as a duplicate; depmod -w warns about it);
   * the value is stored again either way.
   */
  insert(key: string, value: string, priority: number): boolean {
    if (!Number.isInteger(priority) || priority < 0 || priority > 0xffffffff) {
      throw new FormatError(this.#name, `priority ${priority} of key "${key}" is not a 32-bit unsigned integer`);
    }
    const k = toByteString(key);
    const v = toByteString(value);
    if (k === undefined || v === undefined) {
      throw new FormatError(this.#name, `key "${key}" or its value contains a NUL character`);
    }
    let node = this.#root;
    let i = 0;
    for (;;) {
      const p = node.prefix;
      let j = 0;
      for (; j < p.length; j++) {
        const ch = p.charCodeAt(j);
        if (ch !== k.charCodeAt(i + j)) {
          // Check both edges this insert will create before changing anything, so a rejected
          // key leaves the trie as it was.
          this.#checkEdge(ch, key);
          if (i + j < k.length) this.#checkEdge(k.charCodeAt(i + j), key);
          const moved: TrieNode = { ...node, prefix: p.slice(j + 1), offset: 0 };
          node.prefix = p.slice(0, j);
          node.values = undefined;
          node.kids = undefined;
          setChild(node, ch, moved);
          break;
        }
      }
      i += j;
      if (i === k.length) return addValue(node, v, priority);
      const ch = k.charCodeAt(i);
      const child = childAt(node, ch);
      if (child === undefined) {
        this.#checkEdge(ch, key);
        setChild(node, ch, newNode(k.slice(i + 1), [{ priority, value: v }]));
        return false;
      }
      node = child;
      i++;
    }
  }

  /**
   * kmod 30's index__checkstring means to reject bytes >= 0x80, but it reads them through a
   * signed char on x86, so the check never fires: such bytes pass into prefixes and values
   * unchanged (the oracle writes them), and only when one must become an edge character does
   * depmod index its child array with a negative number (observed: segfault, no output file).
   * We keep the bytes kmod keeps and turn the undefined case into an error.
   */
  #checkEdge(ch: number, key: string): void {
    if (ch >= INDEX_CHILDMAX) {
      throw new FormatError(
        this.#name,
        `key "${key}": byte 0x${ch.toString(16)} would become a trie edge; kmod only supports 7-bit ASCII there (depmod 30 crashes)`,
      );
    }
  }

  /** The index file's bytes: sizes and offsets first, then one Uint8Array filled in place. */
  serialize(layout: IndexLayout = 'post-order'): Uint8Array {
    const order = layout === 'pre-order' ? 'pre' : 'post';
    const nodes: TrieNode[] = [];
    let cursor = INDEX_HEADER_SIZE;
    const place = (node: TrieNode): void => {
      if (order === 'pre') {
        node.offset = cursor;
        cursor += nodeSize(node);
        nodes.push(node);
      }
      // Recursion depth is bounded by the longest key (each level consumes at least one byte).
      if (node.kids !== undefined) for (const kid of node.kids) if (kid !== undefined) place(kid);
      if (order === 'post') {
        node.offset = cursor;
        cursor += nodeSize(node);
        nodes.push(node);
      }
    };
    place(this.#root);
    if (cursor - 1 > NODE_OFFSET_MASK) {
      throw new FormatError(this.#name, `index of ${cursor} bytes does not fit 28-bit node offsets`);
    }

    const out = new Uint8Array(cursor);
    const view = new DataView(out.buffer);
    view.setUint32(0, INDEX_MAGIC);
    view.setUint32(4, INDEX_VERSION);
    view.setUint32(8, nodeRef(this.#root));
    for (const node of nodes) {
      let pos = node.offset;
      if (node.prefix.length > 0) pos = putByteString(out, pos, node.prefix);
      if (node.kids !== undefined) {
        out[pos] = node.first;
        out[pos + 1] = node.last;
        pos += 2;
        for (const kid of node.kids) {
          view.setUint32(pos, kid === undefined ? 0 : nodeRef(kid));
          pos += 4;
        }
      }
      if (node.values !== undefined) {
        view.setUint32(pos, node.values.length);
        pos += 4;
        for (const v of node.values) {
          view.setUint32(pos, v.priority);
          pos = putByteString(out, pos + 4, v.value);
        }
      }
    }
    return out;
  }
}

/**
 * kmod index_add_value: the list stays sorted by priority and a new value is placed before
 * the values of equal priority already there. Scanning from the end finds the same place and
 * is O(1) for the common case of values arriving in increasing priority.
 */
function addValue(node: TrieNode, value: string, priority: number): boolean {
  const values = node.values;
  if (values === undefined) {
    node.values = [{ priority, value }];
    return false;
  }
  let duplicate = false;
  for (const v of values) if (v.value === value) duplicate = true;
  let at = values.length;
  while (at > 0 && values[at - 1]!.priority >= priority) at--;
  values.splice(at, 0, { priority, value });
  return duplicate;
}

function nodeSize(node: TrieNode): number {
  let size = 0;
  if (node.prefix.length > 0) size += node.prefix.length + 1;
  if (node.kids !== undefined) size += 2 + 4 * node.kids.length;
  if (node.values !== undefined) {
    size += 4;
    for (const v of node.values) size += 4 + v.value.length + 1;
  }
  return size;
}

function nodeRef(node: TrieNode): number {
  let ref = node.offset;
  if (node.prefix.length > 0) ref |= NODE_PREFIX;
  if (node.kids !== undefined) ref |= NODE_CHILDS;
  if (node.values !== undefined) ref |= NODE_VALUES;
  return ref >>> 0;
}

/** Writes a byte string and its NUL terminator; returns the position after the NUL. */
function putByteString(out: Uint8Array, pos: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[pos + i] = s.charCodeAt(i);
  out[pos + s.length] = 0;
  return pos + s.length + 1;
}
