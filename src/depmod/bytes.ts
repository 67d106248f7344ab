// Byte-level building blocks of the compact database (module-set.ts, emit.ts): an append-only
// heap of byte strings, an output builder, and growable typed-array columns. The database keeps
// every name, path and alias as bytes and writes output files by copying byte ranges, so a merge
// makes no JavaScript string per alias or symbol (kmod's strings are C strings: bytes, not text).

export type Column = Uint8Array | Uint16Array | Uint32Array | Int32Array | Float64Array | BigUint64Array;

/** `a` with room for at least `need` elements (the same array when it already has them). */
export function grow<T extends Column>(a: T, need: number): T {
  if (need <= a.length) return a;
  const Ctor = a.constructor as new (n: number) => T;
  const bigger = new Ctor(Math.max(need, a.length * 2, 16));
  (bigger as unknown as { set(src: T): void }).set(a);
  return bigger;
}

const utf8 = new TextEncoder();
let scratch = new Uint8Array(1024);

/**
 * The UTF-8 bytes of `s` in a scratch buffer that the next call overwrites: ASCII (nearly every
 * module string) is copied code unit by code unit, anything else goes through TextEncoder.
 */
export function scratchBytes(s: string): Uint8Array {
  const n = s.length;
  if (n * 3 > scratch.length) scratch = new Uint8Array(n * 3 + 16);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return scratch.subarray(0, utf8.encodeInto(s, scratch).written);
    scratch[i] = c;
  }
  return scratch.subarray(0, n);
}

const latin1 = new TextDecoder('latin1');
const utf8Decoder = new TextDecoder('utf-8');

/** The text of bytes start..end: ASCII and UTF-8 alike (module strings are decoded as UTF-8). */
export function decodeBytes(heap: Uint8Array, start: number, end: number): string {
  for (let i = start; i < end; i++) if (heap[i]! >= 0x80) return utf8Decoder.decode(heap.subarray(start, end));
  return latin1.decode(heap.subarray(start, end));
}

/** An append-only store of byte strings; a string is its (offset, length) in `bytes`. */
export class ByteHeap {
  bytes: Uint8Array;
  used: number;

  constructor(initial: Uint8Array = new Uint8Array(1 << 16), used = 0) {
    this.bytes = initial;
    this.used = used;
  }

  /** Appends `src` (a range of another array, or the scratch buffer) and returns its offset. */
  append(src: Uint8Array): number {
    const at = this.used;
    if (at + src.length > this.bytes.length) this.bytes = grow(this.bytes, at + src.length);
    this.bytes.set(src, at);
    this.used = at + src.length;
    return at;
  }

  /** Appends bytes off..off+len of `src` (no view made for the short strings most are); returns their offset. */
  appendRange(src: Uint8Array, off: number, len: number): number {
    const at = this.used;
    if (at + len > this.bytes.length) this.bytes = grow(this.bytes, at + len);
    const b = this.bytes;
    if (len < 32) for (let i = 0; i < len; i++) b[at + i] = src[off + i]!;
    else b.set(src.subarray(off, off + len), at);
    this.used = at + len;
    return at;
  }

  /** Appends the UTF-8 bytes of `s`; returns [offset, length]. */
  appendString(s: string): [number, number] {
    const b = scratchBytes(s);
    return [this.append(b), b.length];
  }

  text(off: number, len: number): string {
    return decodeBytes(this.bytes, off, off + len);
  }
}

/** Builds one output file: bytes appended, grown by doubling, handed out once. */
export class ByteSink {
  #buf: Uint8Array;
  #n = 0;

  constructor(sizeHint = 1 << 16) {
    this.#buf = new Uint8Array(sizeHint);
  }

  get length(): number {
    return this.#n;
  }

  #room(k: number): void {
    if (this.#n + k > this.#buf.length) this.#buf = grow(this.#buf, this.#n + k);
  }

  range(heap: Uint8Array, off: number, len: number): void {
    this.#room(len);
    const b = this.#buf;
    let n = this.#n;
    // Short strings (names, aliases) copy faster by hand than through subarray + set.
    if (len < 32) for (let i = 0; i < len; i++) b[n++] = heap[off + i]!;
    else {
      b.set(heap.subarray(off, off + len), n);
      n += len;
    }
    this.#n = n;
  }

  /** ASCII text (headers, keywords). */
  ascii(s: string): void {
    this.#room(s.length);
    for (let i = 0; i < s.length; i++) this.#buf[this.#n++] = s.charCodeAt(i);
  }

  byte(c: number): void {
    this.#room(1);
    this.#buf[this.#n++] = c;
  }

  /** The bytes written so far (a view: the sink must not be used afterwards). */
  done(): Uint8Array {
    return this.#buf.subarray(0, this.#n);
  }

  /** The underlying array, for ranges recorded while writing (valid until the next append). */
  get buffer(): Uint8Array {
    return this.#buf;
  }
}
