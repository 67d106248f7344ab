// Child of native-zstd.test.ts, run by a Node with zlib zstd. argv: ZST_MODDIR PLAIN_MODDIR.
// Decompresses every .ko.zst with decompressModule and compares it with the plain tree's .ko;
// then the error paths. Prints one JSON line.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { decompressModule, nativeZstdDecompress } from '../../src/module/decompress.ts';
import { FormatError } from '../../src/errors.ts';

const [zstDir, plainDir] = process.argv.slice(2) as [string, string];
const files: string[] = [];
const walk = (d: string): void => {
  for (const e of readdirSync(d, { withFileTypes: true })) {
    if (e.isDirectory()) walk(join(d, e.name));
    else if (e.name.endsWith('.ko.zst')) files.push(join(d, e.name));
  }
};
walk(zstDir);
let same = 0;
const differ: string[] = [];
for (const f of files) {
  const out = await decompressModule(readFileSync(f), f);
  const plain = readFileSync(join(plainDir, relative(zstDir, f).slice(0, -'.zst'.length)));
  if (Buffer.compare(Buffer.from(out.buffer, out.byteOffset, out.byteLength), plain) === 0) same++;
  else differ.push(f);
}
const message = async (bytes: Uint8Array, maxBytes?: number): Promise<string> => {
  try {
    await decompressModule(bytes, 'x.ko.zst', maxBytes === undefined ? {} : { maxBytes });
    return 'no error';
  } catch (e) {
    return e instanceof FormatError ? e.message : `untyped: ${String(e)}`;
  }
};
const sample = readFileSync(files[0]!);
const corrupt = Uint8Array.from(sample);
for (let i = 32; i < corrupt.length - 8; i += 7) corrupt[i] = corrupt[i]! ^ 0xa5;
console.log(JSON.stringify({
  native: nativeZstdDecompress !== undefined,
  files: files.length,
  same,
  differ: differ.slice(0, 5),
  overCap: await message(sample, 1000),
  corrupt: await message(corrupt),
  truncated: await message(sample.subarray(0, sample.length >> 1)),
}));
