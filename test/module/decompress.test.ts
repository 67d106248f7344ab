// Module paths (kmod v30 shared/util.c rules) and decompression: formats by magic, corrupt
// streams and decompression bombs as FormatErrors naming the file; each xz decoder (xz(1), the
// lzma-native addon) on its own, and none at all as a DecoderUnavailableError naming the file.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { gzipSync } from 'node:zlib';
import { DecoderUnavailableError, FormatError } from '../../src/errors.ts';
import {
  MAX_MODULE_BYTES,
  XZ_DECODERS,
  decompressModule,
  detectCompression,
  isModulePath,
  modnameFromPath,
  moduleSuffix,
  xzDecompressStream,
} from '../../src/module/decompress.ts';
import { parseModule, parseModuleFile } from '../../src/module/parse.ts';
import { exitCodeFor } from '../../src/cli/exit-codes.ts';
import { buildModuleElf } from '../support/fixture-elf.ts';

test('which paths are modules (path_ends_with_kmod_ext) and their suffix', () => {
  assert.equal(moduleSuffix('kernel/fs/ext4/ext4.ko'), '.ko');
  assert.equal(moduleSuffix('ext4.ko.xz'), '.ko.xz');
  assert.equal(moduleSuffix('ext4.ko.zst'), '.ko.zst');
  assert.equal(moduleSuffix('ext4.ko.gz'), '.ko.gz');
  for (const p of ['ext4.o', 'ext4.ko.bz2', 'ext4.kox', 'modules.dep', 'dir/.ko', '.ko.xz', 'ext4.KO', 'a.ko/']) {
    assert.equal(isModulePath(p), false, p);
  }
  assert.equal(isModulePath('a.ko'), true);
  assert.equal(isModulePath('x/.ko.ko'), true, 'longer than the suffix');
});

test('module names (path_to_modname): base name up to the first ".", "-" → "_"', () => {
  assert.equal(modnameFromPath('kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko'), 'e1000e');
  assert.equal(modnameFromPath('/lib/modules/6.1.0/kernel/sound/snd-hda-intel.ko.xz'), 'snd_hda_intel');
  assert.equal(modnameFromPath('foo.bar-baz.ko'), 'foo');
  assert.equal(modnameFromPath('dir-with-dash/mod.ko.zst'), 'mod');
});

test('detection by magic, like kmod_file_open', () => {
  assert.equal(detectCompression(gzipSync(Buffer.from('x'))), 'gzip');
  assert.equal(detectCompression(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0])), 'zstd');
  assert.equal(detectCompression(new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0])), 'xz');
  assert.equal(detectCompression(new Uint8Array([0x7f, 0x45, 0x4c, 0x46])), 'none');
});

const elf = buildModuleElf({ modinfo: [['alias', 'pci:v*'], ['license', 'GPL']], exports: [{ name: 'f', crc: 3 }] });
const cli = (cmd: string, args: string[], input: Uint8Array): Uint8Array => execFileSync(cmd, args, { input, maxBuffer: 1 << 26 });

test('the three formats decompress to the same module', async () => {
  const want = parseModule(elf, 'm.ko');
  for (const [file, bytes] of [
    ['m.ko.gz', gzipSync(elf)],
    ['m.ko.xz', cli('xz', ['-c', '--check=crc32'], elf)],
    ['m.ko.zst', cli('zstd', ['-c', '-q'], elf)],
    ['m.ko', elf],
  ] as const) {
    const got = await parseModuleFile(bytes, file);
    // zstd from a pipe writes no content size: kmod 34 could not load that file (zstd-frames.ts).
    if (file.endsWith('.zst')) assert.equal(got.zstdUnsized, true, 'streamed zstd is marked');
    const { zstdUnsized: _marked, ...facts } = got;
    assert.deepEqual(facts, want, file);
  }
});

async function rejectsFormat(p: Promise<unknown>, file: string, reason: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.ok(e.message.startsWith(`${file}: `));
    assert.match(e.reason, reason);
    return true;
  });
}

test('corrupt and truncated streams', async () => {
  const gz = gzipSync(elf);
  const xz = cli('xz', ['-c', '--check=crc32'], elf);
  const zst = cli('zstd', ['-c', '-q'], elf);
  const flip = (b: Uint8Array): Uint8Array => {
    const c = b.slice();
    for (let i = 20; i < c.length - 10; i += 9) c[i] = (c[i] as number) ^ 0x5a;
    return c;
  };
  await rejectsFormat(decompressModule(gz.subarray(0, gz.length - 20), 'a.ko.gz'), 'a.ko.gz', /corrupt gzip/);
  await rejectsFormat(decompressModule(flip(gz), 'a.ko.gz'), 'a.ko.gz', /corrupt gzip/);
  await rejectsFormat(decompressModule(xz.subarray(0, xz.length - 20), 'a.ko.xz'), 'a.ko.xz', /corrupt xz/);
  await rejectsFormat(decompressModule(flip(xz), 'a.ko.xz'), 'a.ko.xz', /corrupt xz/);
  await rejectsFormat(decompressModule(zst.subarray(0, zst.length - 6), 'a.ko.zst'), 'a.ko.zst', /corrupt zstd/);
  await rejectsFormat(decompressModule(flip(zst), 'a.ko.zst'), 'a.ko.zst', /corrupt zstd/);
  // A file with a module suffix but no compression magic is read as is (kmod does the same): not
  // ELF, which kmod reports as ENOEXEC; parsing a module never throws for its content.
  const g = await parseModuleFile(new TextEncoder().encode('garbage, not xz'), 'g.ko.xz');
  assert.equal(g.loadError, 'Exec format error');
  assert.match(g.loadDetail ?? '', /too short for an ELF header/);
  // The module parser's view of the same broken streams: kmod's strerror text, kmod 34's libkmod messages.
  const read = async (b: Uint8Array, f: string): Promise<string> => {
    const r = await parseModuleFile(b, f);
    return [r.loadError, ...(r.kmod34?.libkmodErrors ?? [])].join(' | ');
  };
  // kmod 34 reads on from where the failed call stopped: the later calls find the end of the file.
  // (flip above changed `xz` in place: Buffer#slice is a view. A fresh stream here.)
  const xz2 = new Uint8Array(cli('xz', ['-c', '--check=crc32'], elf));
  const atEnd = 'xz: Unexpected end of input';
  // Cut in the stream footer: liblzma wants more input whatever the data.
  assert.equal(await read(xz2.subarray(0, xz2.length - 4), 'a.ko.xz'), `Invalid argument | ${atEnd} | ${atEnd} | ${atEnd}`);
  assert.equal(await read(flip(xz2), 'a.ko.xz'), `Invalid argument | xz: File is corrupt | ${atEnd} | ${atEnd}`);
  assert.equal(await read(gz.subarray(0, gz.length - 20), 'a.ko.gz'), 'Invalid argument');
});

/** A zstd frame without a content size: N RLE blocks of 128 KiB zeros (4 bytes each), RFC 8878. */
function zstdRleBomb(blocks: number): Uint8Array {
  const out = new Uint8Array(6 + blocks * 4);
  out.set([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58]); // descriptor 0: no content size; window 2 MiB (0x58)
  for (let i = 0; i < blocks; i++) {
    const last = i === blocks - 1 ? 1 : 0;
    const h = last | (1 << 1) | ((128 * 1024) << 3); // RLE block of 128 KiB
    out.set([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff, 0], 6 + i * 4);
  }
  return out;
}

test('decompression bombs are refused at MAX_MODULE_BYTES (256 MiB) without inflating them', async () => {
  assert.equal(MAX_MODULE_BYTES, 256 * 1024 * 1024);
  // 300 MiB of zeros as 2,400 RLE blocks: a 9.6 kB file.
  const bomb = zstdRleBomb(2400);
  assert.ok(bomb.length < 10_000);
  const t0 = performance.now();
  await rejectsFormat(decompressModule(bomb, 'bomb.ko.zst'), 'bomb.ko.zst', /exceeds 268435456 bytes/);
  assert.ok(performance.now() - t0 < 1000, 'refused before decompressing');
  // The same construction under the cap decompresses (the bound is not a blanket refusal).
  assert.equal((await decompressModule(zstdRleBomb(8), 'ok.ko.zst')).byteLength, 8 * 128 * 1024);

  // 300 MiB of zeros as 300 concatenated gzip members of 1 MiB each (gunzip reads them all).
  const member = gzipSync(new Uint8Array(1 << 20));
  const gz = new Uint8Array(member.length * 300);
  for (let i = 0; i < 300; i++) gz.set(member, i * member.length);
  await rejectsFormat(decompressModule(gz, 'bomb.ko.gz'), 'bomb.ko.gz', /exceeds 268435456 bytes/);
});

test('the cap applies to every format (lowered for the test)', async () => {
  const zeros = new Uint8Array(2 << 20);
  const opts = { maxBytes: 1 << 20 };
  await rejectsFormat(decompressModule(gzipSync(zeros), 'z.ko.gz', opts), 'z.ko.gz', /exceeds 1048576 bytes/);
  await rejectsFormat(decompressModule(cli('xz', ['-c'], zeros), 'z.ko.xz', opts), 'z.ko.xz', /exceeds 1048576 bytes/);
  await rejectsFormat(decompressModule(cli('zstd', ['-c', '-q'], zeros), 'z.ko.zst', opts), 'z.ko.zst', /exceeds 1048576 bytes/);
  // zstd without a declared content size (streamed from a pipe with --no-content-size).
  await rejectsFormat(
    decompressModule(cli('zstd', ['-c', '-q', '--no-content-size'], zeros), 'z.ko.zst', opts),
    'z.ko.zst',
    /exceeds 1048576 bytes/,
  );
  await rejectsFormat(decompressModule(zeros, 'z.ko', opts), 'z.ko', /exceeds 1048576 bytes/);
  assert.equal((await decompressModule(gzipSync(zeros), 'z.ko.gz', { maxBytes: 2 << 20 })).byteLength, 2 << 20);
});

test('a zstd frame announcing a window over the cap is refused before any allocation', async () => {
  const b = zstdRleBomb(1);
  b[5] = 0xf8; // window 2^(10+31): fzstd would try to allocate it
  await rejectsFormat(decompressModule(b, 'w.ko.zst'), 'w.ko.zst', /exceeds 268435456 bytes/);
});

test('each xz decoder on its own: the same image, corrupt streams and the cap as FormatErrors', async () => {
  assert.deepEqual(XZ_DECODERS, ['xz(1)', 'lzma-native'], 'xz(1) first: faster for one file as for batches (docs/packagers.md)');
  const big = new Uint8Array(3 << 20).map((_, i) => (i * 2654435761) >>> 27); // 3 MiB: several pipe buffers
  const xz = cli('xz', ['-c', '--check=crc32', '--lzma2=dict=1MiB'], elf);
  const xzBig = cli('xz', ['-c', '-0'], big);
  for (const d of XZ_DECODERS) {
    const only = { xzDecoders: [d] };
    assert.deepEqual(Buffer.from(await decompressModule(xz, 'm.ko.xz', only)), Buffer.from(elf), d);
    assert.deepEqual(Buffer.from(await decompressModule(xzBig, 'b.ko.xz', only)), Buffer.from(big), d);
    await rejectsFormat(decompressModule(xz.subarray(0, xz.length - 20), 'a.ko.xz', only), 'a.ko.xz', /^corrupt xz stream: /);
    const flipped = Uint8Array.from(xz);
    for (let i = 40; i < flipped.length - 20; i += 7) flipped[i] = flipped[i]! ^ 0xa5;
    await rejectsFormat(decompressModule(flipped, 'a.ko.xz', only), 'a.ko.xz', /^corrupt xz stream: /);
    await rejectsFormat(decompressModule(xzBig, 'z.ko.xz', { ...only, maxBytes: 1 << 20 }), 'z.ko.xz', /exceeds 1048576 bytes/);
  }
});

test('no xz decoder: DecoderUnavailableError naming the file (exit 78), for files and streams', async () => {
  const xz = cli('xz', ['-c'], elf);
  const named = (file: string) => (e: unknown) => {
    assert.ok(e instanceof DecoderUnavailableError, `expected DecoderUnavailableError, got ${String(e)}`);
    assert.equal(exitCodeFor(e), 78);
    assert.equal(e.file, file);
    assert.match(e.message, new RegExp(`^${file}: cannot decompress xz: no xz decoder .*install xz-utils$`));
    return true;
  };
  await assert.rejects(decompressModule(xz, 'm.ko.xz', { xzDecoders: [] }), named('m.ko.xz'));
  await assert.rejects(xzDecompressStream('p.deb', []), named('p.deb'));
});

test('the xz stream decoders give the same bytes and fail on a corrupt stream', async () => {
  const big = new Uint8Array(5 << 20).map((_, i) => (i * 2246822519) >>> 29);
  const xz = cli('xz', ['-c', '-0'], big);
  for (const d of XZ_DECODERS) {
    const out = await buffer(Readable.from([xz.subarray(0, 1000), xz.subarray(1000)]).pipe(await xzDecompressStream('p.deb', [d])));
    assert.deepEqual(Buffer.from(out), Buffer.from(big), d);
    const cut = Readable.from([xz.subarray(0, xz.length - 30)]).pipe(await xzDecompressStream('p.deb', [d]));
    await assert.rejects(buffer(cut), /./, `${d}: a truncated stream is an error, not a short payload`);
  }
});
