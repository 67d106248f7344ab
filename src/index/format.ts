// kmod's binary trie index (modules.dep.bin, .alias.bin, .symbols.bin, .builtin.bin,
// .builtin.alias.bin): constants and types shared by the writer (trie.ts) and reader (read.ts).
//
// Layout, all integers 32-bit big-endian (kmod v30 libkmod/libkmod-index.c, "Disk format";
// the writer is tools/depmod.c index_write / index_write__node):
//   header: magic 0xB007F457, version 0x00020001 (major 2, minor 1), root node reference
//   node (at ref & 0x0FFFFFFF), each part present only when its flag is set in the reference:
//     PREFIX  0x80000000  NUL-terminated prefix (the label after the edge character)
//     CHILDS  0x20000000  u8 first, u8 last, then (last - first + 1) child references (0 = none)
//     VALUES  0x40000000  u32 count, then per value: u32 priority, NUL-terminated string
// A child reference's edge character is its index in the range (first + i); keys are the
// concatenation along the path of edge characters and prefixes. Edge characters are 7-bit ASCII
// (INDEX_CHILDMAX = 128); prefixes and values are arbitrary bytes except NUL.

export const INDEX_MAGIC = 0xb007f457;
export const INDEX_VERSION = 0x00020001;
export const INDEX_HEADER_SIZE = 12;
/** Edge characters index a 128-slot child array in kmod: 7-bit ASCII only. */
export const INDEX_CHILDMAX = 128;

export const NODE_PREFIX = 0x80000000;
export const NODE_VALUES = 0x40000000;
export const NODE_CHILDS = 0x20000000;
/** The fourth flag bit is unused by every kmod version; the reader rejects it. */
export const NODE_FLAGS = 0xf0000000;
export const NODE_OFFSET_MASK = 0x0fffffff;

export interface IndexValue {
  priority: number;
  value: string;
}

/**
 * Strings are stored as their UTF-8 bytes. Trie code works on "byte strings" (one UTF-16 code
 * unit per byte, all < 256) so that slicing and comparing follow kmod's byte-wise logic; for
 * ASCII text, which is all a real kernel produces, the byte string is the string itself.
 */
const NUL_OR_NON_ASCII = /[^\x01-\x7f]/;
const utf8Encoder = new TextEncoder();

/** The byte string of `s`, or undefined when it contains NUL (kmod's strings are C strings). */
export function toByteString(s: string): string | undefined {
  if (!NUL_OR_NON_ASCII.test(s)) return s;
  if (s.includes('\0')) return undefined;
  const bytes = utf8Encoder.encode(s);
  let out = '';
  for (let i = 0; i < bytes.length; i += 4096) {
    out += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return out;
}
