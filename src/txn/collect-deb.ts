// The paths a `.deb` will install, read without unpacking it (apt's Pre-Install-Pkgs hook runs
// before dpkg, so the package file is the only manifest there is).
//
// Layout (deb(5), ar(5)): "!<arch>\n", then members, each a 60-byte ASCII header
//   name[16] mtime[12] uid[6] gid[6] mode[8] size[10] "`\n"
// followed by `size` bytes padded to an even offset. Members: debian-binary, control.tar.*,
// data.tar[.xz|.zst|.gz]. Not a kmod format.
//
// Two sources, cheapest first:
//   md5sums  the control member's list of every regular file the package installs (dh_md5sums,
//            which every Debian package build runs): a few kB to decompress. A kernel image's
//            data.tar.xz is 100 MB of tar; `dpkg-deb -c` decodes all of it to print the names.
//            Symbolic links are not listed; the merge finds what a hint misses by the mtimes of
//            the directories (src/merge/merge.ts), so the list only needs to be a good hint.
//   data.tar every non-directory entry of the payload, when the package has no md5sums (built by
//            dpkg-deb alone, as tests and some local packages are): through
//            `dpkg-deb --fsys-tarfile` (C, multi-threaded xz) when dpkg-deb exists, else streamed
//            here (decompressor → tar-stream, entry bodies skipped, never held in memory whole).
import { spawn } from 'node:child_process';
import { createReadStream, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Transform, PassThrough, Writable, type Duplex, type Readable } from 'node:stream';
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

/** The compression of member `name` of kind `base` (data.tar, control.tar), by its suffix. */
function compressionOf(name: string, base: string): DebCompression | undefined {
  if (name === base) return 'none';
  if (name === `${base}.xz`) return 'xz';
  if (name === `${base}.zst`) return 'zst';
  if (name === `${base}.gz`) return 'gz';
  return undefined;
}

export function compressionOfMember(name: string): DebCompression | undefined {
  return compressionOf(name, 'data.tar');
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
  /** Where the list came from: the package's md5sums (regular files) or its data.tar (every non-directory entry). */
  source: 'md5sums' | 'data.tar';
  /** Absolute paths in the system namespace, in the order the source lists them. */
  paths: string[];
}

export interface ListOptions {
  /** Read md5sums when the package has one (default true). */
  md5sums?: boolean;
  /** dpkg-deb to decompress data.tar with; false: decompress here (default: dpkg-deb from PATH when it runs). */
  dpkgDeb?: string | false;
}

/** A member's bytes as a stream (an empty member: no bytes at all). */
function memberStream(file: string, m: DebMember): Readable | Iterable<Buffer> {
  return m.size === 0 ? [] : createReadStream(file, { start: m.offset, end: m.offset + m.size - 1 });
}

/** Streams a tar through `onEntry` (names of every entry; the body only when it asks for it). */
async function walkTar(source: Readable | Iterable<Buffer>, stages: Duplex[], onEntry: (name: string, type: string, body: Readable) => Promise<void> | void): Promise<void> {
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    stream.on('end', next);
    Promise.resolve(onEntry(header.name, header.type ?? 'file', stream as unknown as Readable)).then(
      () => stream.resume(),
      (err: Error) => extract.destroy(err),
    );
  });
  await pipeline([source as NodeJS.ReadableStream, ...stages, extract as unknown as Writable]);
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** md5sums lines: "HEX  path" (path relative to /). Pure. */
export function parseMd5sums(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^[0-9a-fA-F]{32} [ *](.+)$/.exec(line);
    if (m !== null) out.push(normaliseTarName(m[1]!));
  }
  return out;
}

/** The control member's md5sums, or undefined when the package has none. */
async function readMd5sums(file: string, control: DebMember): Promise<string[] | undefined> {
  const compression = compressionOf(control.name, 'control.tar');
  if (compression === undefined) return undefined;
  let found: string[] | undefined;
  // xz goes through xz(1) when it runs (module/decompress.ts): loading lzma-native costs more than the whole listing.
  await walkTar(memberStream(file, control), [await decompressor(compression, file)], async (name, type, body) => {
    if (type === 'file' && normaliseTarName(name) === '/md5sums') found = parseMd5sums((await readAll(body)).toString('utf8'));
  });
  return found;
}

let dpkgDebOnPath: string | false | undefined;

function defaultDpkgDeb(): string | false {
  if (dpkgDebOnPath === undefined) {
    const dirs = (process.env.PATH ?? '').split(':').filter((d) => d.startsWith('/'));
    dpkgDebOnPath = [...dirs, '/usr/bin', '/bin'].map((d) => `${d}/dpkg-deb`).find((p) => {
      try {
        return statSync(p).isFile();
      } catch {
        return false;
      }
    }) ?? false;
  }
  return dpkgDebOnPath;
}

/** Every non-directory entry of the payload, decompressed by dpkg-deb or here. */
async function listDataTar(file: string, data: DebMember, dpkgDeb: string | false, decoder: Duplex | undefined): Promise<string[]> {
  const paths: string[] = [];
  const onEntry = (name: string, type: string): void => {
    if (type !== 'directory') paths.push(normaliseTarName(name));
  };
  if (decoder === undefined) {
    const child = spawn(dpkgDeb as string, ['--fsys-tarfile', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    try {
      await walkTar(child.stdout, [], onEntry);
    } catch (err) {
      child.kill();
      await exited.catch(() => undefined);
      throw err;
    }
    const code = await exited;
    if (code !== 0) throw new Error(`dpkg-deb --fsys-tarfile exited ${code}: ${stderr.trim()}`);
    return paths;
  }
  await walkTar(memberStream(file, data), [decoder], onEntry);
  return paths;
}

/** Lists the files a .deb installs (see the file header). Throws FormatError naming the .deb on any damage. */
export async function listDebPayload(file: string, opts: ListOptions = {}): Promise<DebPayload> {
  const members = await listArMembers(file);
  const data = members.find((m) => m.name.startsWith('data.tar'));
  if (data === undefined) throw new FormatError(file, 'no data.tar member');
  const compression = compressionOfMember(data.name);
  if (compression === undefined) throw new FormatError(file, `unsupported payload compression: ${data.name}`);
  const control = members.find((m) => m.name.startsWith('control.tar'));
  if (opts.md5sums !== false && control !== undefined) {
    let md5: string[] | undefined;
    try {
      md5 = await readMd5sums(file, control);
    } catch (err) {
      throw new FormatError(file, `cannot read ${control.name}: ${(err as Error).message}`, control.offset, { cause: err });
    }
    if (md5 !== undefined) return { compression, source: 'md5sums', paths: md5 };
  }
  const dpkgDeb = opts.dpkgDeb ?? defaultDpkgDeb();
  // Outside the try: no decoder on this system is its own typed error, not a damaged payload.
  const decoder = dpkgDeb === false ? await decompressor(compression, file) : undefined;
  try {
    return { compression, source: 'data.tar', paths: await listDataTar(file, data, dpkgDeb, decoder) };
  } catch (err) {
    throw new FormatError(file, `cannot read ${data.name}: ${(err as Error).message}`, data.offset, { cause: err });
  }
}
