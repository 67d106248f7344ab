// decompressStreamed must hand over, for every file it takes, exactly the bytes the usual decoders
// give, in order; say whether the tool vouched for all of them (else the caller redoes every file);
// and leave every file it is unsure about (or cannot decompress) to the usual path.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { decompressStreamed, streamToolFor, xzUncompressedSize, zstdContentSize } from '../../src/io/stream-decompress.ts';
import { decompressModule, nativeZstdDecompress } from '../../src/module/decompress.ts';

function xz(data: Uint8Array, args: string[] = ['--check=crc32', '--lzma2=dict=1MiB']): Uint8Array {
  return execFileSync('xz', ['-c', ...args], { input: data });
}

function payload(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = i % 7 === 0 ? x >>> 24 : i & 0xff; // partly compressible
  }
  return out;
}

/** The files through one stream: what was handed over, in the order handed, and whether the run vouched for it. */
async function stream(files: Uint8Array[], maxBytes?: number): Promise<{ images: Buffer[]; whole: boolean }> {
  const taken = files.map((raw) => {
    const t = streamToolFor(raw, maxBytes);
    assert.ok(t !== undefined, 'every file here is streamable');
    return { raw, size: t.size, tool: t.tool };
  });
  assert.ok(taken.every((t) => t.tool === taken[0]!.tool));
  const images: Buffer[] = [];
  const whole = await decompressStreamed(taken[0]!.tool, taken, (k, image) => {
    assert.equal(k, images.length, 'in order');
    images.push(Buffer.from(image));
  });
  if (whole) assert.equal(images.length, files.length);
  return { images, whole };
}

test('index size equals the decompressed length; multi-block and multi-stream files', async () => {
  for (const [n, args] of [
    [1, undefined],
    [100_000, undefined],
    [300_000, ['--check=crc64', '--block-size=65536']], // several blocks, several index records
    [0, undefined],
  ] as const) {
    const data = payload(n, n + 1);
    const file = xz(data, args ? [...args] : undefined);
    assert.equal(xzUncompressedSize(file), n, `${n} bytes`);
    assert.equal((await decompressModule(file, 'f')).length, n);
  }
  const two = Buffer.concat([xz(payload(10, 1)), xz(payload(20, 2))]);
  assert.equal(xzUncompressedSize(two), undefined, 'two streams: not taken');
  assert.equal(streamToolFor(two), undefined);
  assert.equal(xzUncompressedSize(payload(100, 3)), undefined, 'not xz');
  assert.equal(streamToolFor(payload(100, 3)), undefined);
  assert.equal(streamToolFor(xz(payload(0, 1))), undefined, 'an empty image is left to the usual path');
  const cut = xz(payload(5000, 4));
  assert.equal(xzUncompressedSize(cut.subarray(0, cut.length - 1)), undefined, 'truncated');
});

test('a stream hands over every image, in order, equal to decompressModule and to the addon', async () => {
  const datas = [payload(1000, 1), payload(70_000, 2), payload(5, 3), payload(250_000, 4), payload(1, 5)];
  const files = [xz(datas[0]!), xz(datas[1]!), xz(datas[2]!), xz(datas[3]!, ['--block-size=40000']), xz(datas[4]!)];
  const { images, whole } = await stream(files);
  assert.ok(whole);
  for (let i = 0; i < files.length; i++) {
    assert.deepEqual(images[i], Buffer.from(datas[i]!));
    // Against the other decoder: one xz(1) run over the files against the addon, file by file.
    assert.deepEqual(images[i], Buffer.from(await decompressModule(files[i]!, 'f', { xzDecoders: ['lzma-native'] })));
  }
  assert.equal(streamToolFor(xz(payload(30_000, 3)), 25_000), undefined, 'over the cap: the usual path refuses it');
});

test('a corrupt stream: the run vouches for nothing (the files before it were handed over, tentatively)', async () => {
  const good = xz(payload(20_000, 1));
  const bad = Uint8Array.from(xz(payload(20_000, 2)));
  bad[40] = bad[40]! ^ 0xff; // inside the compressed block: xz fails, sizes from the index still look fine
  assert.notEqual(xzUncompressedSize(bad), undefined);
  const r = await stream([good, good, bad, good]);
  assert.equal(r.whole, false);
  assert.equal(r.images.length, 2);
  assert.deepEqual(r.images[1], Buffer.from(payload(20_000, 1)));
  assert.equal((await stream([bad, good])).whole, false);
});

test('an image written out whole does not count before its integrity check passed', async () => {
  // The block's CRC32 (the 4 bytes before the index) broken: xz writes all 50,000 bytes, then fails.
  const data = payload(50_000, 8);
  const f = Uint8Array.from(xz(data));
  const n = f.length;
  const indexStart = n - 12 - (new DataView(f.buffer).getUint32(n - 8, true) + 1) * 4;
  f[indexStart - 1] = f[indexStart - 1]! ^ 0x01;
  assert.throws(() => execFileSync('xz', ['-dc'], { input: f, stdio: ['pipe', 'pipe', 'ignore'] }));
  const last = await stream([f]);
  assert.deepEqual([last.images.length, last.whole], [1, false], 'handed over whole, then refused by the exit status');
  assert.equal((await stream([xz(payload(10, 1)), f, xz(payload(10, 2))])).whole, false);
});

/** A stream of 1,000 bytes of data whose index records `size` (993..1,023: the same second varint byte) as their size. */
function xzIndexClaiming(size: number): Uint8Array {
  const f = Uint8Array.from(xz(payload(1000, 7)));
  const n = f.length;
  const indexStart = n - 12 - (new DataView(f.buffer).getUint32(n - 8, true) + 1) * 4;
  // indicator, count (1), unpadded size varint, uncompressed size varint (1000 = e8 07)
  let p = indexStart + 2;
  while (f[p]! >= 0x80) p++;
  p++;
  assert.deepEqual([f[p], f[p + 1]], [0xe8, 0x07]);
  assert.equal(size >> 7, 7);
  f[p] = 0x80 | (size & 0x7f);
  assert.equal(xzUncompressedSize(f), size);
  return f;
}

test('an index that understates the data: its extra bytes would pass for the next file\'s; the run vouches for nothing', async () => {
  // xz writes the 1,000 bytes, then refuses the index.
  const f = xzIndexClaiming(999);
  const r = await stream([f, xz(payload(10, 1))]);
  assert.equal(r.whole, false);
  assert.equal(r.images.length, 1, 'the first 999 bytes were handed over; the 1,000th started the next file');
});

test('an index that overstates the data: the sizes do not add up, the run vouches for nothing', async () => {
  const f = xzIndexClaiming(1001);
  assert.deepEqual(await stream([f]), { images: [], whole: false });
  assert.equal((await stream([f, xz(payload(10, 1))])).whole, false, 'the run fails on the index');
});

test('no xz(1): nothing is handed over, every file is left to the usual path', async () => {
  const file = xz(payload(100, 1));
  const t = streamToolFor(file)!;
  const missing = { ...t.tool, argv: ['/nonexistent/xz', t.tool.argv[1]] as const };
  assert.equal(await decompressStreamed(missing, [{ raw: file, size: t.size }], () => assert.fail('nothing to take')), false);
});

/** Compressed from a file, as the kernel's packaging does: only then does zstd record the content size. */
function zst(data: Uint8Array, args: string[] = ['-q']): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'zst-'));
  try {
    writeFileSync(join(dir, 'm.ko'), data);
    return execFileSync('zstd', ['-c', ...args, join(dir, 'm.ko')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('zstd: content size from the frame header; streamed bytes equal fzstd; doubtful frames left out', async () => {
  const datas = [payload(1, 1), payload(300, 2), payload(70_000, 3), payload(400_000, 4)];
  for (const d of datas) assert.equal(zstdContentSize(zst(d)), d.length);
  // From a pipe zstd cannot know the size in advance and records none.
  const piped = execFileSync('zstd', ['-q', '-c'], { input: payload(5000, 6) });
  assert.equal(zstdContentSize(piped), undefined);
  assert.equal(streamToolFor(piped), undefined);
  assert.equal(zstdContentSize(Buffer.concat([zst(datas[0]!), zst(datas[1]!)])), undefined, 'two frames');
  const f = zst(datas[2]!);
  assert.equal(zstdContentSize(f.subarray(0, f.length - 1)), undefined, 'truncated');
  if (nativeZstdDecompress !== undefined) {
    // Node's own zstd decompresses in-process, file by file: no zstd(1) stream.
    assert.equal(streamToolFor(zst(datas[1]!)), undefined);
    return;
  }
  const files = [zst(datas[0]!), zst(datas[1]!), zst(datas[2]!, ['-q', '--no-check']), zst(datas[3]!, ['-q', '-19'])];
  const { images, whole } = await stream(files);
  assert.ok(whole);
  for (let i = 0; i < files.length; i++) {
    assert.deepEqual(images[i], Buffer.from(datas[i]!));
    assert.deepEqual(images[i], Buffer.from(await decompressModule(files[i]!, 'f')));
  }
  const bad = Uint8Array.from(zst(datas[3]!));
  bad[bad.length - 10] = bad[bad.length - 10]! ^ 0x55;
  assert.equal((await stream([zst(datas[1]!), bad, zst(datas[0]!)])).whole, false, 'a failing frame: the run vouches for nothing');
});
