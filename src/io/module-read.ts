// Reads a module file for parsing. An uncompressed .ko is read sparsely, the way kmod's mmap only
// faults in the pages depmod touches: ELF header, section header table, section-name table, and
// the sections src/module/parse.ts looks at (.modinfo, __ksymtab_strings, .symtab, .strtab,
// __versions, and each section a __crc_ symbol points into, e.g. __kcrctab / __kcrctab_gpl).
// The rest of the image (.text, relocations, BTF: ~90% of the bytes of a Debian module) stays
// zero in a buffer of the file's full size, so every offset the parser computes is unchanged and
// its bounds checks see the real file size.
//
// ELF layout (ELF32/ELF64, either byte order): e_shoff at 40 (64-bit) / 32 (32-bit), e_shentsize,
// e_shnum, e_shstrndx at 58/60/62 (64-bit) / 46/48/50 (32-bit); section header: sh_name at 0,
// sh_offset at 24/16, sh_size at 32/20. Symbol: st_name at 0, st_shndx at 6 (64-bit) / 14 (32-bit).
// Anything unusual (not ELF, odd entry sizes, ranges past the end, extended section numbering)
// makes us read the whole file and leave the verdict to the parser.
// A file's bytes are read into one of two buffers kept per thread and used again for the next file
// (readModuleFile): one zero-filled for sparse reads, whose filled ranges are zeroed again when the
// caller releases the bytes (so the next read sees zeros there too), one for whole reads. A fresh
// buffer per module would stay resident until the next garbage collection: on a 4,000-module tree
// tens of MB per thread. While the thread's buffers hold a file not yet released (merges of several
// kernels interleaved in one thread, each awaiting between its reads), the next read gets buffers
// of its own, dropped with it.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { Fingerprint } from '../depmod/module-set.ts';

/** Below this size one read of the whole file costs less than several small ones. */
const WHOLE_BELOW = 48 * 1024;
const WANTED = new Set(['.modinfo', '__ksymtab_strings', '.symtab', '.strtab', '__versions']);
const SHN_LORESERVE = 0xff00;

/** Where a read puts a file's bytes; `filled` lists the ranges of `sparse` the current read wrote: start, end, ... */
interface ReadBuffers {
  sparse: Buffer;
  whole: Buffer;
  filled: number[];
  busy: boolean;
}

function readAt(rb: ReadBuffers, fd: number, buf: Uint8Array, offset: number, length: number): boolean {
  rb.filled.push(offset, offset + length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, offset + done, length - done, offset + done);
    if (n === 0) return false;
    done += n;
  }
  return true;
}

function readWhole(rb: ReadBuffers, fd: number, size: number): Uint8Array {
  if (rb.whole.length < size) rb.whole = Buffer.allocUnsafeSlow(Math.max(size, 2 * rb.whole.length, 64 * 1024));
  const buf = rb.whole.subarray(0, size);
  let done = 0;
  for (;;) {
    const n = readSync(fd, buf, done, buf.length - done, done);
    if (n === 0) return done === buf.length ? buf : buf.subarray(0, done);
    done += n;
    if (done === buf.length) {
      // The file grew since fstat: read the rest too, like readFileSync would.
      const more = readRest(fd, done);
      return more.length === 0 ? buf : Buffer.concat([buf, more]);
    }
  }
}

function readRest(fd: number, from: number): Buffer {
  const parts: Buffer[] = [];
  let pos = from;
  for (;;) {
    const chunk = Buffer.allocUnsafe(64 * 1024);
    const n = readSync(fd, chunk, 0, chunk.length, pos);
    if (n === 0) return Buffer.concat(parts);
    parts.push(chunk.subarray(0, n));
    pos += n;
  }
}

/** The bytes the parser needs from `path` (as readModuleFile reads them), in a buffer of their own. */
export function readModuleForParse(path: string): Uint8Array {
  const r = readModuleFile(path);
  const own = Uint8Array.from(r.bytes);
  r.release();
  return own;
}

/** This thread's buffers (see the file header). */
const threadBuffers: ReadBuffers = { sparse: Buffer.alloc(0), whole: Buffer.allocUnsafe(0), filled: [], busy: false };

function clean(rb: ReadBuffers): void {
  for (let i = 0; i < rb.filled.length; i += 2) rb.sparse.fill(0, rb.filled[i]!, rb.filled[i + 1]!);
  rb.filled.length = 0;
}

/**
 * The bytes the parser needs from `path`: the whole file, or for a plain ELF module only its used
 * sections; with the identity of the file read (taken from the open file before reading it: a
 * change after that is caught by the next merge). The bytes lie in this thread's buffers: valid
 * until release().
 */
export function readModuleFile(path: string): { bytes: Uint8Array; fp: Fingerprint; release: () => void } {
  const rb: ReadBuffers = threadBuffers.busy ? { sparse: Buffer.alloc(0), whole: Buffer.allocUnsafe(0), filled: [], busy: false } : threadBuffers;
  const release = (): void => {
    clean(rb);
    rb.busy = false;
  };
  const fd = openSync(path, 'r');
  rb.busy = true;
  try {
    const st = fstatSync(fd, { bigint: true });
    const fp: Fingerprint = { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino };
    const size = Number(st.size);
    let bytes = size < WHOLE_BELOW ? undefined : readSparse(rb, fd, size);
    if (bytes === undefined) {
      clean(rb);
      bytes = readWhole(rb, fd, size);
    }
    return { bytes, fp, release };
  } catch (err) {
    release();
    throw err;
  } finally {
    closeSync(fd);
  }
}

function readSparse(rb: ReadBuffers, fd: number, size: number): Uint8Array | undefined {
  // Zero-filled: large allocations come from fresh zero pages, so untouched sections cost nothing.
  if (rb.sparse.length < size) rb.sparse = Buffer.alloc(Math.max(size, 2 * rb.sparse.length));
  const buf = rb.sparse.subarray(0, size);
  if (!readAt(rb, fd, buf, 0, 64)) return undefined;
  if (buf[0] !== 0x7f || buf[1] !== 0x45 || buf[2] !== 0x4c || buf[3] !== 0x46) return undefined;
  const is64 = buf[4] === 2;
  if (!is64 && buf[4] !== 1) return undefined;
  if (buf[5] !== 1 && buf[5] !== 2) return undefined;
  const le = buf[5] === 1;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const u16 = (o: number): number => view.getUint16(o, le);
  const u32 = (o: number): number => view.getUint32(o, le);
  const word = (o: number): number => (is64 ? (le ? u32(o + 4) * 2 ** 32 + u32(o) : u32(o) * 2 ** 32 + u32(o + 4)) : u32(o));
  const shoff = word(is64 ? 40 : 32);
  const shentsize = u16(is64 ? 58 : 46);
  const shnum = u16(is64 ? 60 : 48);
  const shstrndx = u16(is64 ? 62 : 50);
  const shdrSize = is64 ? 64 : 40;
  const inFile = (off: number, len: number): boolean => Number.isSafeInteger(off) && Number.isSafeInteger(len) && off >= 0 && len >= 0 && off + len <= size;
  if (shentsize !== shdrSize || shnum === 0 || shstrndx === 0 || shstrndx >= shnum || shstrndx >= SHN_LORESERVE) return undefined;
  if (!inFile(shoff, shnum * shdrSize) || !readAt(rb, fd, buf, shoff, shnum * shdrSize)) return undefined;

  const offs: number[] = new Array(shnum);
  const sizes: number[] = new Array(shnum);
  for (let i = 0; i < shnum; i++) {
    const h = shoff + i * shdrSize;
    offs[i] = word(h + (is64 ? 24 : 16));
    sizes[i] = word(h + (is64 ? 32 : 20));
  }
  const load = (i: number): boolean => inFile(offs[i]!, sizes[i]!) && readAt(rb, fd, buf, offs[i]!, sizes[i]!);
  if (!load(shstrndx)) return undefined;
  const namesOff = offs[shstrndx]!;
  const namesSize = sizes[shstrndx]!;
  const nameOf = (i: number): string | undefined => {
    const n = u32(shoff + i * shdrSize);
    if (n >= namesSize) return undefined;
    const start = namesOff + n;
    const end = buf.indexOf(0, start);
    if (end < 0 || end >= namesOff + namesSize) return undefined;
    return buf.toString('latin1', start, end);
  };

  let symtab = -1;
  let strtab = -1;
  for (let i = 1; i < shnum; i++) {
    const name = nameOf(i);
    if (name === undefined || !WANTED.has(name)) continue;
    // A wanted section out of range is the parser's to report (or skip): give it the whole file.
    if (!load(i)) return undefined;
    // The parser reads names in .strtab and __versions up to the next NUL without a section bound:
    // when a section does not end in NUL, that NUL may lie in bytes we did not read.
    if ((name === '.strtab' || name === '__versions') && sizes[i]! > 0 && buf[offs[i]! + sizes[i]! - 1] !== 0) return undefined;
    if (name === '.symtab' && symtab < 0) symtab = i;
    if (name === '.strtab' && strtab < 0) strtab = i;
  }

  // Sections that __crc_ symbols point into hold the export CRCs.
  if (symtab >= 0 && strtab >= 0) {
    const entSize = is64 ? 24 : 16;
    const sOff = offs[symtab]!;
    const count = Math.floor(sizes[symtab]! / entSize);
    const tOff = offs[strtab]!;
    const tSize = sizes[strtab]!;
    const loaded = new Uint8Array(shnum);
    for (let k = 1; k < count; k++) {
      const e = sOff + k * entSize;
      const nameOff = u32(e);
      if (nameOff + 6 > tSize) continue;
      const p = tOff + nameOff;
      // "__crc_"
      if (buf[p] !== 0x5f || buf[p + 1] !== 0x5f || buf[p + 2] !== 0x63 || buf[p + 3] !== 0x72 || buf[p + 4] !== 0x63 || buf[p + 5] !== 0x5f) continue;
      const shndx = u16(e + (is64 ? 6 : 14));
      if (shndx === 0 || shndx >= shnum || loaded[shndx]) continue;
      loaded[shndx] = 1;
      // kmod only checks that a CRC's offset lies inside its section, then reads a whole word: for
      // a section shorter than that word the CRC's bytes lie past it, so read a word's slack too.
      if (inFile(offs[shndx]!, 0) && offs[shndx]! < size) {
        const len = Math.min(sizes[shndx]! + 8, size - offs[shndx]!);
        if (!readAt(rb, fd, buf, offs[shndx]!, len)) return undefined;
      }
    }
  }
  return buf;
}
