// decompressBatch must give, for every file it takes, exactly the bytes lzma-native gives, and leave
// every file it is unsure about (or cannot decompress) to that usual path.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { decompressBatch, xzUncompressedSize, zstdContentSize } from '../../src/io/batch-decompress.ts';
import { decompressModule } from '../../src/module/decompress.ts';

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
  assert.equal(xzUncompressedSize(payload(100, 3)), undefined, 'not xz');
  const cut = xz(payload(5000, 4));
  assert.equal(xzUncompressedSize(cut.subarray(0, cut.length - 1)), undefined, 'truncated');
});

test('a batch decompresses to the same bytes as decompressModule, in place', async () => {
  const datas = [payload(1000, 1), payload(70_000, 2), payload(5, 3), payload(250_000, 4)];
  const plain = payload(300, 9);
  const inputs = [xz(datas[0]!), plain, xz(datas[1]!), undefined, xz(datas[2]!), xz(datas[3]!, ['--block-size=40000'])];
  const out = decompressBatch(inputs);
  assert.equal(out.length, inputs.length);
  assert.equal(out[1], undefined);
  assert.equal(out[3], undefined);
  for (const [i, d] of [[0, 0], [2, 1], [4, 2], [5, 3]] as const) {
    assert.deepEqual(Buffer.from(out[i]!), Buffer.from(datas[d]!));
    // Against the other decoder: one xz(1) run over the batch against the addon, file by file.
    assert.deepEqual(Buffer.from(out[i]!), Buffer.from(await decompressModule(inputs[i]!, 'f', { xzDecoders: ['lzma-native'] })));
  }
});

test('a corrupt stream sends the whole batch back to the usual path; oversized files are left out', () => {
  const good = xz(payload(20_000, 1));
  const bad = Uint8Array.from(xz(payload(20_000, 2)));
  bad[40] = bad[40]! ^ 0xff; // inside the compressed block: xz fails, sizes from the index still look fine
  assert.notEqual(xzUncompressedSize(bad), undefined);
  assert.deepEqual(decompressBatch([good, bad]), [undefined, undefined]);
  const out = decompressBatch([good, xz(payload(30_000, 3))], 25_000);
  assert.equal(out[1], undefined);
  assert.deepEqual(Buffer.from(out[0]!), Buffer.from(payload(20_000, 1)));
});

test('an index that lies about the size is caught by the length check', () => {
  // Same stream, but claim one more byte in the index record: the batch total no longer matches.
  const f = Uint8Array.from(xz(payload(1000, 7)));
  const n = f.length;
  const indexStart = n - 12 - (new DataView(f.buffer).getUint32(n - 8, true) + 1) * 4;
  // indicator, count (1), unpadded size varint, uncompressed size varint (1000 = e8 07)
  let p = indexStart + 2;
  while (f[p]! >= 0x80) p++;
  p++;
  assert.deepEqual([f[p], f[p + 1]], [0xe8, 0x07]);
  f[p] = 0xe9;
  assert.equal(xzUncompressedSize(f), 1001);
  assert.deepEqual(decompressBatch([f]), [undefined]);
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

test('zstd: content size from the frame header; batch bytes equal fzstd; doubtful frames left out', async () => {
  const datas = [payload(1, 1), payload(300, 2), payload(70_000, 3), payload(400_000, 4)];
  for (const d of datas) assert.equal(zstdContentSize(zst(d)), d.length);
  // From a pipe zstd cannot know the size in advance and records none.
  const streamed = execFileSync('zstd', ['-q', '-c'], { input: payload(5000, 6) });
  assert.equal(zstdContentSize(streamed), undefined);
  assert.equal(zstdContentSize(Buffer.concat([zst(datas[0]!), zst(datas[1]!)])), undefined, 'two frames');
  const f = zst(datas[2]!);
  assert.equal(zstdContentSize(f.subarray(0, f.length - 1)), undefined, 'truncated');

  const mixed = [zst(datas[0]!), xz(datas[1]!), streamed, zst(datas[2]!, ['-q', '--no-check']), payload(10, 5), zst(datas[3]!, ['-q', '-19'])];
  const out = decompressBatch(mixed);
  assert.equal(out[2], undefined);
  assert.equal(out[4], undefined);
  for (const [i, d] of [[0, 0], [1, 1], [3, 2], [5, 3]] as const) {
    assert.deepEqual(Buffer.from(out[i]!), Buffer.from(datas[d]!));
    assert.deepEqual(Buffer.from(out[i]!), Buffer.from(await decompressModule(mixed[i]!, 'f')));
  }
  const bad = Uint8Array.from(zst(datas[3]!));
  bad[bad.length - 10] = bad[bad.length - 10]! ^ 0x55;
  const res = decompressBatch([zst(datas[1]!), bad, xz(datas[0]!)]);
  assert.deepEqual(res.slice(0, 2), [undefined, undefined], 'a failing zstd run leaves all .zst to the usual path');
  assert.deepEqual(Buffer.from(res[2]!), Buffer.from(datas[0]!), 'the xz run is independent');
});
