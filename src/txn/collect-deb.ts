// The paths a `.deb` will install, read from its payload without unpacking it (apt's
// Pre-Install-Pkgs hook runs before dpkg, so the payload is the only manifest there is).
//
// Layout (deb(5), ar(5)): "!<arch>\n", then members, each a 60-byte ASCII header
//   name[16] mtime[12] uid[6] gid[6] mode[8] size[10] "`\n"
// followed by `size` bytes padded to an even offset. Members: debian-binary, control.tar.*,
// data.tar[.xz|.zst|.gz]. The data member is a tar of `./path` entries; only names are needed, so
// it is streamed (decompressor → tar-stream, entry bodies skipped) and never held in memory whole:
// a kernel image's payload is hundreds of MB decompressed. Not a kmod format.
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Transform, PassThrough, Writable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import tar from 'tar-stream';
import { FormatError } from '../errors.ts';
import { xzDecompressStream } from '../module/decompress.ts';

export type DebCompression = 'xz' | 'zst' | 'gz' | 'none';

export interface DebMember {
  name: string;
  offset: number;
  size: number;
}

const AR_MAGIC = '!<arch>\n';
const HEADER = 60;

/** Decodes one ar member header; pure. Throws FormatError naming `file`. */
export function decodeArHeader(h: Uint8Array, offset: number, file: string): { name: string; size: number } {
  const text = Buffer.from(h.buffer, h.byteOffset, h.byteLength).toString('latin1');
  if (text.slice(58, 60) !== '`\n') throw new FormatError(file, 'bad ar member header terminator', offset + 58);
  const name = text.slice(0, 16).trimEnd().replace(/\/$/, '');
  const sizeText = text.slice(48, 58).trim();
  if (!/^[0-9]{1,10}$/.test(sizeText)) throw new FormatError(file, `bad ar member size ${JSON.stringify(sizeText)}`, offset + 48);
  return { name, size: Number(sizeText) };
}

/** The ar members of a .deb (names, offsets of their data, sizes). */
export async function listArMembers(file: string): Promise<DebMember[]> {
  const fh = await open(file, 'r');
  try {
    const { size: total } = await fh.stat();
    const magic = Buffer.alloc(8);
    await fh.read(magic, 0, 8, 0);
    if (magic.toString('latin1') !== AR_MAGIC) throw new FormatError(file, 'not a .deb (no ar magic)', 0);
    const out: DebMember[] = [];
    const h = Buffer.alloc(HEADER);
    let off = 8;
    while (off < total) {
      if (off + HEADER > total) throw new FormatError(file, 'truncated ar member header', off);
      await fh.read(h, 0, HEADER, off);
      const { name, size } = decodeArHeader(h, off, file);
      const data = off + HEADER;
      if (data + size > total) throw new FormatError(file, `ar member ${name} runs past the end of the file`, off);
      out.push({ name, offset: data, size });
      off = data + size + (size & 1);
    }
    return out;
  } finally {
    await fh.close();
  }
}

export function compressionOfMember(name: string): DebCompression | undefined {
  if (name === 'data.tar') return 'none';
  if (name === 'data.tar.xz') return 'xz';
  if (name === 'data.tar.zst') return 'zst';
  if (name === 'data.tar.gz') return 'gz';
  return undefined;
}

function zstdTransform(): Transform {
  let dec: ZstdDecompress | undefined;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try {
        dec ??= new ZstdDecompress((data) => this.push(data));
        dec.push(chunk);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb) {
      try {
        dec?.push(new Uint8Array(0), true);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}

async function decompressor(c: DebCompression, file: string): Promise<Duplex> {
  switch (c) {
    case 'none':
      return new PassThrough();
    case 'gz':
      return createGunzip();
    case 'zst':
      return zstdTransform();
    case 'xz':
      return xzDecompressStream(file);
  }
}

/** `./lib/modules/x.ko` → `/lib/modules/x.ko`. Pure. */
export function normaliseTarName(name: string): string {
  let n = name;
  while (n.startsWith('./')) n = n.slice(2);
  n = n.replace(/^\/+/, '');
  return '/' + n.replace(/\/+$/, '');
}

export interface DebPayload {
  compression: DebCompression;
  /** Every non-directory entry, as an absolute path in the system namespace, in archive order. */
  paths: string[];
}

/** Lists the files a .deb installs. Throws FormatError naming the .deb on any damage. */
export async function listDebPayload(file: string): Promise<DebPayload> {
  const members = await listArMembers(file);
  const data = members.find((m) => m.name.startsWith('data.tar'));
  if (data === undefined) throw new FormatError(file, 'no data.tar member');
  const compression = compressionOfMember(data.name);
  if (compression === undefined) throw new FormatError(file, `unsupported payload compression: ${data.name}`);
  const paths: string[] = [];
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    if (header.type !== 'directory') paths.push(normaliseTarName(header.name));
    stream.on('end', next);
    stream.resume();
  });
  const source = data.size === 0 ? [] : createReadStream(file, { start: data.offset, end: data.offset + data.size - 1 });
  // Outside the try: no decoder on this system is its own typed error, not a damaged payload.
  const decoder = await decompressor(compression, file);
  try {
    await pipeline(source as NodeJS.ReadableStream, decoder, extract as unknown as Writable);
  } catch (err) {
    throw new FormatError(file, `cannot read ${data.name}: ${(err as Error).message}`, data.offset, { cause: err });
  }
  return { compression, paths };
}
