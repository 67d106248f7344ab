// Reader for kmod's binary trie index (layout in format.ts; kmod v30 libkmod/libkmod-index.c,
// index_mm_open / index_mm_read_node / index_mm_dump). It dumps the whole index for tests and
// verification. Input may be hostile: every offset and length is checked before use, each node
// may be reached once only (no cycles or shared nodes), and depth and output size are capped,
// so any file either yields a map or a FormatError, in time linear in its size.

import { FormatError } from '../errors.ts';
import {
  INDEX_CHILDMAX,
  INDEX_HEADER_SIZE,
  INDEX_MAGIC,
  INDEX_VERSION,
  NODE_CHILDS,
  NODE_FLAGS,
  NODE_OFFSET_MASK,
  NODE_PREFIX,
  NODE_VALUES,
  type IndexValue,
} from './format.ts';

/** Longest key accepted (kmod's keys are names and aliases, far shorter). */
const MAX_KEY_BYTES = 1 << 16;
/** Deepest trie accepted; real indexes are a few dozen levels deep. */
const MAX_DEPTH = 4096;
/** Keys are materialised per value node; cap their total so a long chain cannot explode. */
const keyBudget = (fileSize: number): number => 64 * 1024 * 1024 + 32 * fileSize;

const KNOWN_FLAGS = NODE_PREFIX | NODE_VALUES | NODE_CHILDS;
const decoder = new TextDecoder('utf-8');

interface Pending {
  ref: number;
  /** Key length before this node's edge character. */
  keyLen: number;
  /** The edge character leading here, or -1 for the root. */
  edge: number;
  depth: number;
}

/** Every key of the index with its values in file order (keys in byte order). */
export function readIndex(bytes: Uint8Array, file: string): Map<string, IndexValue[]> {
  const fail = (reason: string, offset?: number): never => {
    throw new FormatError(file, reason, offset);
  };
  if (bytes.length < INDEX_HEADER_SIZE) fail(`index of ${bytes.length} bytes is shorter than its 12-byte header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  if (magic !== INDEX_MAGIC) fail(`bad index magic 0x${hex(magic)} (expected 0x${hex(INDEX_MAGIC)})`, 0);
  const version = view.getUint32(4);
  if (version !== INDEX_VERSION) fail(`unsupported index version 0x${hex(version)} (expected 0x${hex(INDEX_VERSION)})`, 4);

  const u32 = (pos: number, what: string): number => {
    if (pos + 4 > bytes.length) fail(`${what} runs past the end of the file`, pos);
    return view.getUint32(pos);
  };
  /** Returns the position of the NUL ending the string that starts at pos. */
  const stringEnd = (pos: number, what: string): number => {
    const nul = bytes.indexOf(0, pos);
    if (nul < 0) fail(`${what} is not NUL-terminated before the end of the file`, pos);
    return nul;
  };

  const result = new Map<string, IndexValue[]>();
  const seen = new Set<number>();
  const key = new Uint8Array(MAX_KEY_BYTES);
  let budget = keyBudget(bytes.length);
  const stack: Pending[] = [{ ref: view.getUint32(8), keyLen: 0, edge: -1, depth: 0 }];

  while (stack.length > 0) {
    const { ref, keyLen, edge, depth } = stack.pop()!;
    const offset = ref & NODE_OFFSET_MASK;
    if ((ref & NODE_FLAGS & ~KNOWN_FLAGS) !== 0) fail(`node reference 0x${hex(ref)} has an unknown flag`, offset);
    if (offset < INDEX_HEADER_SIZE) fail(`node reference 0x${hex(ref)} points into the header`, offset);
    if (offset > bytes.length) fail(`node offset ${offset} is past the end of the file (${bytes.length} bytes)`, offset);
    if (seen.has(offset)) fail(`node at offset ${offset} is reached twice (a cycle or shared node)`, offset);
    seen.add(offset);
    if (depth > MAX_DEPTH) fail(`trie deeper than ${MAX_DEPTH} levels`, offset);

    let len = keyLen;
    if (edge >= 0) key[len++] = edge;
    let pos = offset;
    if ((ref & NODE_PREFIX) !== 0) {
      const end = stringEnd(pos, 'node prefix');
      if (len + (end - pos) > MAX_KEY_BYTES) fail(`key longer than ${MAX_KEY_BYTES} bytes`, pos);
      key.set(bytes.subarray(pos, end), len);
      len += end - pos;
      pos = end + 1;
    }

    const children: Pending[] = [];
    if ((ref & NODE_CHILDS) !== 0) {
      if (pos + 2 > bytes.length) fail('child range runs past the end of the file', pos);
      const first = bytes[pos]!;
      const last = bytes[pos + 1]!;
      if (first > last) fail(`child range first 0x${hex(first)} > last 0x${hex(last)}`, pos);
      if (last >= INDEX_CHILDMAX) fail(`child range ends at 0x${hex(last)}, beyond 7-bit ASCII`, pos);
      pos += 2;
      if (len + 1 > MAX_KEY_BYTES) fail(`key longer than ${MAX_KEY_BYTES} bytes`, pos);
      for (let ch = first; ch <= last; ch++, pos += 4) {
        const child = u32(pos, 'child reference');
        if (child !== 0) children.push({ ref: child, keyLen: len, edge: ch, depth: depth + 1 });
      }
    }

    if ((ref & NODE_VALUES) !== 0) {
      const count = u32(pos, 'value count');
      pos += 4;
      // Each value takes at least 5 bytes: check before allocating anything for it.
      if (count > (bytes.length - pos) / 5) fail(`value count ${count} cannot fit in the rest of the file`, pos - 4);
      budget -= len;
      if (budget < 0) fail('index expands to more key text than any real index', offset);
      const keyText = decoder.decode(key.subarray(0, len));
      if (result.has(keyText)) fail(`key "${keyText}" appears twice`, offset);
      const values: IndexValue[] = [];
      for (let i = 0; i < count; i++) {
        const priority = u32(pos, 'value priority');
        const end = stringEnd(pos + 4, 'value');
        values.push({ priority, value: decoder.decode(bytes.subarray(pos + 4, end)) });
        pos = end + 1;
      }
      result.set(keyText, values);
    }

    // Reverse so that children come off the stack in edge order: the map is then in key order.
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
  return result;
}

/** Human-readable differences between two dumps, one line per key, sorted by key. */
export function diffIndexes(a: Map<string, IndexValue[]>, b: Map<string, IndexValue[]>): string[] {
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  const out: string[] = [];
  for (const k of keys) {
    const va = a.get(k);
    const vb = b.get(k);
    if (vb === undefined) out.push(`${JSON.stringify(k)}: only in first: ${showValues(va ?? [])}`);
    else if (va === undefined) out.push(`${JSON.stringify(k)}: only in second: ${showValues(vb)}`);
    else if (showValues(va) !== showValues(vb)) out.push(`${JSON.stringify(k)}: first ${showValues(va)} second ${showValues(vb)}`);
  }
  return out;
}

function showValues(values: IndexValue[]): string {
  return `[${values.map((v) => `${v.priority} ${JSON.stringify(v.value)}`).join(', ')}]`;
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}
