// The slice of lzma-native (no bundled types) that decompress.ts uses.
declare module 'lzma-native' {
  import type { Duplex } from 'node:stream';
  export function createStream(coder: 'streamDecoder' | 'autoDecoder', options?: { synchronous?: boolean; bufsize?: number; memlimit?: number }): Duplex;
}
