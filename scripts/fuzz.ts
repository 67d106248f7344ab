// Mutation fuzzer over every parser that reads outside input (issue 7): ELF modules, .bin indexes,
// depmod.d, Module.symvers, the journal, apt's hook protocol and .deb archives.
//
// Oracle: a parser may return, or throw a DepmodTxError subclass; any other exception, an input that
// runs longer than the per-input limit, or one that grows the process by more than the memory limit
// is a crasher. Crashers are written to test/fixtures/crashers/<target>/<sha1>.bin and replayed by
// test/reliability/fuzz.test.ts.
//
// Guidance without an instrumented build: each result is reduced to a signature (the error's class
// and message with numbers and quoted text blurred, or a coarse shape of the parsed value); an
// input whose signature is new joins the corpus, so mutations spread from inputs that reached new
// checks. Mutations aim at the format's structure: header fields and section headers of ELF, node
// offsets of indexes, line boundaries and keywords of text formats.
//
// Hangs: the campaign runs in a worker thread that copies each input into shared memory before
// running it; the main thread's watchdog terminates a worker that makes no progress for a while
// (a synchronous endless loop cannot be interrupted otherwise) and saves the input it was on.
//
//   npm run fuzz -- [--minutes M] [--seed S] [--target NAME]...   (default: the CI campaign)
import { mulberry32 } from '../test/support/random-tree.ts';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { DepmodTxError } from '../src/errors.ts';
import { parseModule, parseModuleFile } from '../src/module/parse.ts';
import type { ModuleReading, ModuleRecord } from '../src/module/record.ts';
import { readIndex } from '../src/index/read.ts';
import { IndexTrie } from '../src/index/trie.ts';
import { parseDepmodConfig, configLogicalLines } from '../src/depmod/config.ts';
import { parseSymvers, parseSystemMap } from '../src/depmod/kernel-symbols.ts';
import { parseJournalText, formatEvent } from '../src/txn/journal.ts';
import { parseAptHookInfo } from '../src/txn/collect-apt.ts';
import { listDebPayload } from '../src/txn/collect-deb.ts';
import { readModuleForParse } from '../src/io/module-read.ts';
import { buildModuleElf, type FixtureModule } from '../test/support/fixture-elf.ts';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const CRASHER_DIR = join(REPO, 'test', 'fixtures', 'crashers');

export type TargetName = 'elf' | 'module-file' | 'module-sparse' | 'index' | 'depmod.d' | 'symvers' | 'journal' | 'apt-hook' | 'deb' | 'selftest-hang';
export const TARGETS: readonly TargetName[] = ['elf', 'module-file', 'module-sparse', 'index', 'depmod.d', 'symvers', 'journal', 'apt-hook', 'deb'];

export interface Target {
  name: TargetName;
  seeds: Uint8Array[];
  /** Offsets worth hitting with interesting values, per seed. */
  hot(seed: Uint8Array): number[];
  /** Tokens spliced into text formats. */
  dict: string[];
  /** Runs the parser; returns a coarse shape of what it produced. Throws what the parser throws. */
  run(input: Uint8Array): string | Promise<string>;
}

// ---------------------------------------------------------------- random numbers

/** The same seeded generator the random trees use (test/support/random-tree.ts). */
export const rng = mulberry32;

const bucket = (n: number): number => (n <= 0 ? 0 : 1 + Math.floor(Math.log2(n)));
const text = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

// ---------------------------------------------------------------- seeds and targets

function elfSeeds(): Uint8Array[] {
  const m: FixtureModule = {
    modinfo: [['alias', 'pci:v00008086d*sv*sd*bc*sc*i*'], ['depends', 'dep_a,dep_b'], ['softdep', 'pre: crc32c'], ['devname', 'fuzz'], ['vermagic', '6.1.0 SMP mod_unload']],
    exports: [{ name: 'fuzz_export', crc: 0x12345678 }, { name: 'fuzz_other', crc: 0x9abcdef0 }],
    imports: [{ name: 'printk', crc: 0x1 }, { name: 'weak_thing', weak: true }, { name: 'module_layout', crc: 7, versionOnly: true }],
  } as FixtureModule;
  const out: Uint8Array[] = [];
  for (const bits of [32, 64] as const) for (const endian of ['le', 'be'] as const) out.push(buildModuleElf(m, { bits, endian }));
  out.push(buildModuleElf({ ...m, crcStyle: 'crc-section' } as FixtureModule, { bits: 64, endian: 'le' }));
  out.push(buildModuleElf({ ...m, crcStyle: 'crc-absolute' } as FixtureModule, { bits: 32, endian: 'le' }));
  // A few small real Debian modules, when the kernel cache is there (CI has it).
  const real = join(REPO, '.cache', 'kernels', '6.1.0-56-cloud-amd64', 'root', 'lib', 'modules', '6.1.0-56-cloud-amd64', 'kernel', 'lib');
  if (existsSync(real)) {
    const small = readdirSync(real).filter((f) => f.endsWith('.ko')).map((f) => join(real, f)).filter((p) => statSync(p).size < 24_000).sort().slice(0, 3);
    for (const p of small) out.push(new Uint8Array(readFileSync(p)));
  }
  return out;
}

/** ELF header fields and every section header's fields: where a flipped value hurts most. */
function elfHot(b: Uint8Array): number[] {
  if (b.length < 52 || b[0] !== 0x7f) return [];
  const is64 = b[4] === 2;
  const le = b[5] !== 2;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hot = is64 ? [0x04, 0x05, 0x10, 0x12, 0x28, 0x3a, 0x3c, 0x3e] : [0x04, 0x05, 0x10, 0x12, 0x20, 0x2e, 0x30, 0x32];
  try {
    const shoff = is64 ? Number(dv.getBigUint64(0x28, le)) : dv.getUint32(0x20, le);
    const shentsize = dv.getUint16(is64 ? 0x3a : 0x2e, le);
    const shnum = dv.getUint16(is64 ? 0x3c : 0x30, le);
    const fields = is64 ? [0, 4, 0x18, 0x20, 0x28, 0x2c, 0x38] : [0, 4, 0x10, 0x14, 0x18, 0x1c, 0x24];
    for (let i = 0; i < shnum && shoff + (i + 1) * shentsize <= b.length; i++) for (const f of fields) hot.push(shoff + i * shentsize + f);
  } catch {
    /* a mutated seed: its header is nonsense, the fixed fields still count */
  }
  return hot;
}

function indexSeeds(): Uint8Array[] {
  const out: Uint8Array[] = [];
  const sets: Array<Array<[string, string, number]>> = [
    [['a', 'x', 0]],
    [['ab', 'x', 1], ['ac', 'y', 2], ['abc', 'z', 0], ['b', 'w', 3]],
    [['pci:v00008086d*', 'e1000e', 0], ['pci:v00008086d*', 'igb', 1], ['usb:v1D6Bp*', 'xhci', 0], ['symbol:printk', 'kernel', 0]],
    Array.from({ length: 40 }, (_, i) => [`mod_${i.toString(36)}_${'x'.repeat(i % 7)}`, `kernel/m${i}.ko: kernel/d${i % 5}.ko`, i % 3] as [string, string, number]),
  ];
  for (const s of sets) {
    const t = new IndexTrie();
    for (const [k, v, p] of s) t.insert(k, v, p);
    out.push(t.serialize());
  }
  return out;
}

function indexHot(b: Uint8Array): number[] {
  const hot = [0, 3, 4, 7, 8, 11];
  for (let o = 12; o + 4 <= b.length; o += 4) hot.push(o);
  return hot;
}

const CONFIG_SEEDS = [
  'search updates built-in external extra\noverride e1000e * weak-updates\nexternal * /lib/modules/extra-dir\nexclude .git\n',
  '# comment\nsearch built-in\noverride foo 6.1.* kernel/drivers\\\n/net\nmake_map_files no\n',
  'search updates\n\n\t  \noverride   a   *   b\nexternal 6.* /x\n',
];
const CONFIG_DICT = ['search', 'override', 'external', 'exclude', 'built-in', 'updates', '*', '6.1.*', '\\\n', '\n', ' ', '\t', '#', '\0', '[a-', '\\', '..', '/', '^$', '(?:', 'a'.repeat(300)];

const SYMVERS_SEEDS = [
  '0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n0x9abcdef0\tfoo\tdrivers/foo\tEXPORT_SYMBOL_GPL\tNS\n0x00000000\t_mcount\tvmlinux\tEXPORT_SYMBOL\t\n',
  '0xffffffff\tx\tvmlinux\tEXPORT_SYMBOL\n0x1\ty\tvmlinux\n',
];
const SYMVERS_DICT = ['0x', 'vmlinux', '\t', '\n', ' ', 'ffffffff', '0x7fffffff', '0xffffffffffffffff', 'EXPORT_SYMBOL', '\r', '-1', 'G', '\0'];

function journalSeeds(): string[] {
  const e = (op: 'add' | 'remove', p: string) => formatEvent({ op, path: p, package: 'pkg', time: '2026-01-01T00:00:00.000Z', id: '0123456789abcdef' });
  return [
    e('add', '/lib/modules/6.1.0-1-amd64/kernel/drivers/net/x.ko.xz') + e('remove', '/usr/lib/modules/6.1.0-1-amd64/updates/y.ko'),
    e('add', '/lib/modules/6.1.0-1-amd64/extra/z.ko.zst') + '{"op":"add","path":"/lib/mo',
  ];
}
const JOURNAL_DICT = ['"op"', '"add"', '"remove"', '"path"', '"/lib/modules/', '..', '/', '\\u0000', '\\n', '{', '}', '[', ']', 'null', '"package"', '"id"', ':', ',', '\n', '\0', '.ko', '.ko.xz', '/../', '\u00ff', '1e999'];

const APT_SEEDS = [
  [
    'VERSION 3',
    'APT::Architecture=amd64',
    'DPkg::Pre-Install-Pkgs::=/usr/sbin/depmod-tx%20record',
    'Weird%3Dkey=value%25with%0Anewline',
    '',
    'linux-image-6.1.0-57-amd64 - - none < 6.1.200-1 amd64 none /var/cache/apt/archives/linux-image-6.1.0-57-amd64_6.1.200-1_amd64.deb',
    'foo-dkms 1.0 amd64 same = 1.0 amd64 same **CONFIGURE**',
    'linux-image-6.1.0-50-amd64 6.1.150-1 amd64 none > - - none **REMOVE**',
    '',
  ].join('\n'),
  'VERSION 2\n\npkg - < 1.0 /x/pkg.deb\n',
  '/a.deb\n/b.deb\n',
];
const APT_DICT = ['VERSION 3', 'VERSION 2', '\n', ' ', '%', '%0A', '%2', '=', '::', '<', '>', '=', '-', '**REMOVE**', '**CONFIGURE**', '/x.deb', 'none', 'same', '\0'];

function debSeeds(work: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  try {
    execFileSync('sh', ['-c', 'command -v dpkg-deb'], { stdio: 'ignore' });
  } catch {
    return out;
  }
  const pkg = join(work, 'pkg');
  mkdirSync(join(pkg, 'DEBIAN'), { recursive: true });
  mkdirSync(join(pkg, 'lib/modules/6.1.0-1-amd64/extra'), { recursive: true });
  writeFileSync(join(pkg, 'DEBIAN/control'), 'Package: fuzz\nVersion: 1\nArchitecture: all\nMaintainer: T <t@example.org>\nDescription: fuzz seed\n');
  writeFileSync(join(pkg, 'lib/modules/6.1.0-1-amd64/extra/fuzz.ko'), 'not really an ELF\n');
  writeFileSync(join(pkg, 'lib/modules/6.1.0-1-amd64/extra/readme'), 'x\n');
  for (const z of ['xz', 'gzip', 'zstd', 'none']) {
    const deb = join(work, `fuzz-${z}.deb`);
    try {
      execFileSync('dpkg-deb', ['--root-owner-group', `-Z${z}`, '--build', pkg, deb], { stdio: 'ignore' });
      out.push(new Uint8Array(readFileSync(deb)));
    } catch {
      /* this dpkg-deb lacks that compressor */
    }
  }
  return out;
}

/** ar member headers (60 bytes each, starting at 8) and the tar headers of an uncompressed payload. */
function debHot(b: Uint8Array): number[] {
  const hot: number[] = [0, 7];
  let off = 8;
  while (off + 60 <= b.length && hot.length < 64) {
    for (const f of [0, 16, 28, 34, 40, 48, 58]) hot.push(off + f);
    const size = Number.parseInt(text(b.subarray(off + 48, off + 58)).trim(), 10);
    if (!Number.isFinite(size) || size < 0) break;
    off += 60 + size + (size & 1);
  }
  return hot;
}

const TIME_LIMIT_MS = 2_000;

/** What a reading says, coarsely: how much it holds and why kmod could not read the rest (numbers blurred). */
function shapeOfReading(r: ModuleReading): string {
  const why = r.kmodAborts !== undefined ? `abort:${r.kmodAborts}` : r.loadError !== undefined ? `${r.loadError}:${(r.loadDetail ?? '').replace(/0x[0-9a-f]+|\d+/gi, '#')}` : '';
  return `${bucket(r.modinfo.length)}:${bucket(r.exports.length)}:${bucket(r.imports.length)}${why !== '' ? `:${why}` : ''}`;
}

/** A record's shape: parsing never throws for a file's content, so kmod's verdicts are the outcomes that guide the campaign. */
function shapeOfRecord(r: ModuleRecord): string {
  return `ok:${shapeOfReading(r)}${r.kmod34 !== undefined ? `|34:${shapeOfReading(r.kmod34)}` : ''}${r.zstdUnsized === true ? '|unsized' : ''}`;
}

/** The fixture ELFs compressed as the kernel does (.ko.xz, .ko.zst, .ko.gz), for the decompressing reader. */
function compressedSeeds(): Uint8Array[] {
  const elf = elfSeeds().slice(0, 2);
  const out: Uint8Array[] = [];
  for (const e of elf) {
    for (const cmd of [['xz', '--check=crc32', '-c'], ['zstd', '-q', '-c'], ['gzip', '-9', '-c']]) {
      try {
        out.push(new Uint8Array(execFileSync(cmd[0]!, cmd.slice(1), { input: e })));
      } catch {
        /* compressor missing */
      }
    }
  }
  return out;
}

/** Modules above the sparse reader's whole-file threshold: fixtures padded with zeros, and real ones. */
function largeElfSeeds(): Uint8Array[] {
  const out = elfSeeds().slice(0, 4).map((e) => {
    const b = new Uint8Array(64 * 1024);
    b.set(e);
    return b;
  });
  const real = join(REPO, '.cache', 'kernels', '6.1.0-56-cloud-amd64', 'root', 'lib', 'modules', '6.1.0-56-cloud-amd64', 'kernel', 'lib');
  if (existsSync(real)) {
    const mid = readdirSync(real).filter((f) => f.endsWith('.ko')).map((f) => join(real, f)).filter((p) => statSync(p).size > 60_000 && statSync(p).size < 200_000).sort().slice(0, 2);
    for (const p of mid) out.push(new Uint8Array(readFileSync(p)));
  }
  return out;
}

/** What a parse produced, exactly: for comparing two ways of reading the same file. */
function outcomeText(f: () => unknown): string {
  try {
    return JSON.stringify(f(), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } catch (err) {
    return `${(err as Error).constructor.name}: ${(err as Error).message}`;
  }
}

export function makeTargets(work: string, opts: { selfTest?: boolean } = {}): Target[] {
  let debN = 0;
  const targets: Target[] = [
    { name: 'elf', seeds: elfSeeds(), hot: elfHot, dict: [], run: (b) => shapeOfRecord(parseModule(b, 'fuzz.ko')) },
    {
      name: 'module-file',
      seeds: compressedSeeds(),
      hot: (b) => [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, b.length - 8, b.length - 4, b.length - 1].filter((o) => o >= 0),
      dict: [],
      run: async (b) => shapeOfRecord(await parseModuleFile(b, 'fuzz.ko.xz')),
    },
    {
      // The worker's sparse file reader must give the parser exactly what a whole read gives it.
      name: 'module-sparse',
      seeds: largeElfSeeds(),
      hot: elfHot,
      dict: [],
      run: (b) => {
        const file = join(work, 'sparse.ko');
        writeFileSync(file, b);
        const sparse = outcomeText(() => parseModule(readModuleForParse(file), 'fuzz.ko'));
        const whole = outcomeText(() => parseModule(b, 'fuzz.ko'));
        if (sparse !== whole) throw new Error(`sparse read differs from whole read:\n  sparse: ${sparse.slice(0, 300)}\n  whole:  ${whole.slice(0, 300)}`);
        return shapeOfRecord(parseModule(b, 'fuzz.ko'));
      },
    },
    {
      name: 'index',
      seeds: indexSeeds(),
      hot: indexHot,
      dict: [],
      run: (b) => {
        const m = readIndex(b, 'fuzz.bin');
        let values = 0;
        for (const v of m.values()) values += v.length;
        return `ok:${bucket(m.size)}:${bucket(values)}`;
      },
    },
    {
      name: 'depmod.d',
      seeds: CONFIG_SEEDS.map(bytes),
      hot: () => [],
      dict: CONFIG_DICT,
      run: (b) => {
        const t = text(b);
        configLogicalLines(t);
        const r = parseDepmodConfig([{ path: '/etc/depmod.d/fuzz.conf', text: t }], '6.1.0-1-amd64');
        return `ok:${r.config.searches.length}:${r.config.overrides.length}:${r.config.externals.length}:${r.config.excludes.length}:${bucket(r.warnings.length)}`;
      },
    },
    {
      name: 'symvers',
      seeds: SYMVERS_SEEDS.map(bytes),
      hot: () => [],
      dict: SYMVERS_DICT,
      run: (b) => {
        const t = text(b);
        const s = parseSymvers(t, 'Module.symvers');
        const m = parseSystemMap(t, 'System.map');
        return `ok:${bucket(s.symbols.size)}:${bucket(s.warnings.length)}:${bucket(m.symbols.size)}`;
      },
    },
    {
      name: 'journal',
      seeds: journalSeeds().map(bytes),
      hot: () => [],
      dict: JOURNAL_DICT,
      run: (b) => {
        const r = parseJournalText(Buffer.from(b).toString('utf8'), 'fuzz.jsonl');
        return `ok:${bucket(r.events.length)}:${r.warnings.map((w) => w.message.replace(/^[^:]*:\d+: /, '').replace(/"[^"]*"/g, '"s"').replace(/\d+/g, '#').slice(0, 60)).sort().join('|')}`;
      },
    },
    {
      name: 'apt-hook',
      seeds: APT_SEEDS.map(bytes),
      hot: () => [],
      dict: APT_DICT,
      run: (b) => {
        const r = parseAptHookInfo(Buffer.from(b).toString('utf8'), 'hook-in');
        return `ok:${r.version}:${bucket(r.actions.length)}:${r.actions.map((a) => a.action.kind).join(',')}`;
      },
    },
    {
      name: 'deb',
      seeds: debSeeds(work),
      hot: debHot,
      dict: [],
      run: async (b) => {
        const file = join(work, `in-${debN++ % 4}.deb`);
        writeFileSync(file, b);
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new HangError(`no answer within ${TIME_LIMIT_MS} ms`)), TIME_LIMIT_MS);
        });
        try {
          const r = await Promise.race([listDebPayload(file), timeout]);
          return `ok:${r.compression}:${bucket(r.paths.length)}`;
        } finally {
          clearTimeout(timer);
        }
      },
    },
  ];
  // Proves the watchdog: every input spins forever.
  if (opts.selfTest) targets.push({ name: 'selftest-hang', seeds: [new Uint8Array([1])], hot: () => [], dict: [], run: () => { for (;;); } });
  return targets;
}

class HangError extends Error {}

// ---------------------------------------------------------------- mutation

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff];

export function mutate(input: Uint8Array, t: Target, corpus: readonly Uint8Array[], r: () => number): Uint8Array {
  let b: Uint8Array = new Uint8Array(input);
  const n = 1 + Math.floor(r() * r() * 6);
  const pick = (k: number) => Math.floor(r() * k);
  for (let i = 0; i < n; i++) {
    const op = pick(t.dict.length > 0 ? 10 : 8);
    if (b.length === 0 && op < 4) {
      b = new Uint8Array([pick(256)]);
      continue;
    }
    switch (op) {
      case 0: {
        const o = pick(b.length);
        b[o]! ^= 1 << pick(8);
        break;
      }
      case 1:
        b[pick(b.length)] = pick(256);
        break;
      case 2:
      case 3: {
        // An interesting value, 1/2/4 bytes, either byte order, at a structural offset when known.
        const hot = t.hot(b);
        const o = hot.length > 0 && r() < 0.8 ? hot[pick(hot.length)]! : pick(b.length);
        const v = INTERESTING[pick(INTERESTING.length)]!;
        const w = [1, 2, 4][pick(3)]!;
        const le = r() < 0.5;
        for (let k = 0; k < w && o + k < b.length; k++) b[o + k] = (v >>> (8 * (le ? k : w - 1 - k))) & 0xff;
        break;
      }
      case 4:
        b = b.subarray(0, pick(b.length + 1)).slice();
        break;
      case 5: {
        // Splice: our head, another corpus entry's tail.
        const other = corpus[pick(corpus.length)] ?? b;
        const cut = pick(b.length + 1);
        const from = pick(other.length + 1);
        b = concat(b.subarray(0, cut), other.subarray(from));
        break;
      }
      case 6: {
        // Duplicate or delete a chunk.
        const s = pick(b.length + 1);
        const len = pick(Math.min(64, b.length - s) + 1);
        b = r() < 0.5 ? concat(b.subarray(0, s + len), b.subarray(s)) : concat(b.subarray(0, s), b.subarray(s + len));
        break;
      }
      case 7: {
        const o = pick(b.length);
        const len = Math.min(b.length - o, 1 + pick(16));
        b.fill(r() < 0.5 ? 0 : 0xff, o, o + len);
        break;
      }
      default: {
        // Text formats: a token at a random place, often a line start.
        const tok = bytes(t.dict[pick(t.dict.length)]!);
        let at = pick(b.length + 1);
        if (r() < 0.5) {
          const nl = b.lastIndexOf(0x0a, at - 1);
          at = nl + 1;
        }
        b = r() < 0.7 ? concat(b.subarray(0, at), tok, b.subarray(at)) : concat(b.subarray(0, at), tok, b.subarray(Math.min(b.length, at + tok.length)));
      }
    }
  }
  return b.length > 1 << 20 ? b.subarray(0, 1 << 20) : b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ---------------------------------------------------------------- campaign

export interface Crasher {
  target: TargetName;
  kind: 'exception' | 'hang' | 'memory';
  message: string;
  input: Uint8Array;
}

export interface TargetStats {
  executed: number;
  typedErrors: number;
  ok: number;
  signatures: number;
  corpus: number;
  ms: number;
}

/** Blurs numbers, quoted text and file positions so a message names a check, not an input. */
export function signatureOf(err: unknown): string {
  if (!(err instanceof Error)) return `throw:${typeof err}`;
  return `${err.constructor.name}:${err.message.replace(/"[^"]*"|'[^']*'/g, 'S').replace(/0x[0-9a-f]+|\d+/gi, '#').slice(0, 120)}`;
}

const MEMORY_LIMIT = 512 * 1024 * 1024;

/** Runs one input: undefined when it is fine, else a crasher. */
export async function execute(t: Target, input: Uint8Array): Promise<{ crash?: Crasher; sig: string; typed?: boolean }> {
  if (watch !== undefined) {
    const n = Math.min(input.length, WATCH_INPUT);
    watch.u8.set(input.subarray(0, n), WATCH_HEADER);
    Atomics.store(watch.i32, 1, n);
    Atomics.add(watch.i32, 0, 1);
  }
  const rss0 = process.memoryUsage.rss();
  const t0 = performance.now();
  let sig: string;
  let typed = false;
  try {
    sig = await t.run(input);
  } catch (err) {
    if (err instanceof HangError) return { crash: { target: t.name, kind: 'hang', message: err.message, input }, sig: 'hang' };
    if (!(err instanceof DepmodTxError)) {
      return { crash: { target: t.name, kind: 'exception', message: err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ''}` : String(err), input }, sig: 'crash' };
    }
    sig = signatureOf(err);
    typed = true;
  }
  const ms = performance.now() - t0;
  if (ms > TIME_LIMIT_MS) return { crash: { target: t.name, kind: 'hang', message: `took ${Math.round(ms)} ms (limit ${TIME_LIMIT_MS})`, input }, sig };
  const grown = process.memoryUsage.rss() - rss0;
  if (grown > MEMORY_LIMIT) return { crash: { target: t.name, kind: 'memory', message: `grew the process by ${grown >> 20} MiB`, input }, sig };
  return { sig, typed };
}

export async function fuzzTarget(t: Target, opts: { seed: number; inputs?: number; untilMs?: number; onCrash?: (c: Crasher) => void }): Promise<TargetStats> {
  const r = rng(opts.seed ^ hashName(t.name));
  const corpus: Uint8Array[] = [...t.seeds];
  const seen = new Set<string>();
  const stats: TargetStats = { executed: 0, typedErrors: 0, ok: 0, signatures: 0, corpus: 0, ms: 0 };
  const t0 = performance.now();
  for (const s of t.seeds) {
    const res = await execute(t, s);
    if (res.crash) opts.onCrash?.(res.crash);
    seen.add(res.sig);
  }
  if (corpus.length === 0) return stats;
  const more = () => (opts.inputs !== undefined ? stats.executed < opts.inputs : performance.now() < (opts.untilMs ?? 0));
  while (more()) {
    // Newer corpus entries (the ones that found something) are picked more often.
    const i = Math.min(corpus.length - 1, Math.floor(corpus.length * Math.sqrt(r())));
    const input = mutate(corpus[i]!, t, corpus, r);
    const res = await execute(t, input);
    stats.executed++;
    if (res.crash) {
      opts.onCrash?.(res.crash);
      continue;
    }
    if (res.typed) stats.typedErrors++;
    else stats.ok++;
    if (!seen.has(res.sig)) {
      seen.add(res.sig);
      if (corpus.length < 400) corpus.push(input);
    }
  }
  stats.signatures = seen.size;
  stats.corpus = corpus.length;
  stats.ms = performance.now() - t0;
  return stats;
}

function hashName(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Saves a crasher for replay; returns its path. */
export function saveCrasher(c: Crasher, dir = CRASHER_DIR): string {
  const d = join(dir, c.target);
  mkdirSync(d, { recursive: true });
  const name = createHash('sha1').update(c.input).digest('hex').slice(0, 16);
  const file = join(d, `${name}.bin`);
  writeFileSync(file, c.input);
  writeFileSync(join(d, `${name}.txt`), `${c.kind}: ${c.message}\n`);
  return file;
}

/** Every saved crasher input, by target. */
export function savedCrashers(dir = CRASHER_DIR): Array<{ target: TargetName; file: string }> {
  const out: Array<{ target: TargetName; file: string }> = [];
  for (const t of TARGETS) {
    const d = join(dir, t);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d).sort()) if (f.endsWith('.bin')) out.push({ target: t, file: join(d, f) });
  }
  return out;
}

/** Inputs per target of the CI campaign (>= 20,000 in total). */
export const CI_BUDGET: Record<TargetName, number> = { elf: 20000, 'module-file': 2000, 'module-sparse': 2000, index: 12000, 'depmod.d': 6000, symvers: 4000, journal: 6000, 'apt-hook': 6000, deb: 1500, 'selftest-hang': 10 };

// ---------------------------------------------------------------- watchdog (worker thread)

const WATCH_HEADER = 16; // int32: [progress counter, input length, target index, unused]
const WATCH_INPUT = 1 << 20;
let watch: { i32: Int32Array; u8: Uint8Array } | undefined;

interface WorkerJob {
  fuzz: true;
  work: string;
  seed: number;
  targets: TargetName[];
  budget?: Record<TargetName, number>;
  msPerTarget?: number;
  selfTest: boolean;
  sab: SharedArrayBuffer;
}

type WorkerMsg = { type: 'stats'; target: TargetName; stats: TargetStats } | { type: 'crash'; crash: Crasher } | { type: 'done' };

async function workerMain(job: WorkerJob): Promise<void> {
  watch = { i32: new Int32Array(job.sab, 0, 4), u8: new Uint8Array(job.sab) };
  const post = (m: WorkerMsg) => parentPort!.postMessage(m);
  const all = makeTargets(job.work, { selfTest: job.selfTest });
  for (const name of job.targets) {
    const t = all.find((x) => x.name === name);
    if (t === undefined) continue;
    Atomics.store(watch.i32, 2, job.targets.indexOf(name));
    const stats = await fuzzTarget(t, {
      seed: job.seed,
      ...(job.msPerTarget !== undefined ? { untilMs: performance.now() + job.msPerTarget } : { inputs: job.budget?.[name] ?? CI_BUDGET[name] }),
      onCrash: (crash) => post({ type: 'crash', crash }),
    });
    post({ type: 'stats', target: name, stats });
  }
  post({ type: 'done' });
}

export interface CampaignOptions {
  seed: number;
  targets?: readonly TargetName[];
  budget?: Record<TargetName, number>;
  minutes?: number;
  /** No progress for this long = a hang (default 10 s). */
  stallMs?: number;
  selfTest?: boolean;
  onStats?: (target: TargetName, s: TargetStats) => void;
  onCrash?: (c: Crasher) => void;
}

/** The whole campaign in a watched worker thread; a hung target is reported and the rest go on. */
export async function runCampaign(opts: CampaignOptions): Promise<{ stats: Map<TargetName, TargetStats>; crashers: Crasher[] }> {
  const stats = new Map<TargetName, TargetStats>();
  const crashers: Crasher[] = [];
  let pending = [...(opts.targets ?? TARGETS)];
  const msPerTarget = opts.minutes !== undefined ? (opts.minutes * 60_000) / pending.length : undefined;
  const stallMs = opts.stallMs ?? 10_000;
  const work = newWorkDir();
  try {
    while (pending.length > 0) {
      const sab = new SharedArrayBuffer(WATCH_HEADER + WATCH_INPUT);
      const i32 = new Int32Array(sab, 0, 4);
      const job: WorkerJob = { fuzz: true, work, seed: opts.seed, targets: pending, selfTest: opts.selfTest ?? false, sab, ...(opts.budget ? { budget: opts.budget } : {}), ...(msPerTarget !== undefined ? { msPerTarget } : {}) };
      const w = new Worker(new URL('../src/io/tsx-worker-bootstrap.mjs', import.meta.url), { workerData: { entry: import.meta.url, job } });
      const hung = await new Promise<TargetName | undefined>((resolve, reject) => {
        let last = -1;
        let lastChange = performance.now();
        const timer = setInterval(() => {
          const n = Atomics.load(i32, 0);
          if (n !== last) {
            last = n;
            lastChange = performance.now();
          } else if (n > 0 && performance.now() - lastChange > stallMs) {
            clearInterval(timer);
            const name = pending[Atomics.load(i32, 2)]!;
            const len = Atomics.load(i32, 1);
            const c: Crasher = { target: name, kind: 'hang', message: `no progress for ${stallMs} ms`, input: new Uint8Array(sab, WATCH_HEADER, len).slice() };
            crashers.push(c);
            opts.onCrash?.(c);
            void w.terminate().then(() => resolve(name));
          }
        }, 100);
        w.on('message', (m: WorkerMsg) => {
          if (m.type === 'crash') {
            crashers.push(m.crash);
            opts.onCrash?.(m.crash);
          } else if (m.type === 'stats') {
            stats.set(m.target, m.stats);
            opts.onStats?.(m.target, m.stats);
          } else {
            clearInterval(timer);
            resolve(undefined);
          }
        });
        w.on('error', (err) => {
          clearInterval(timer);
          reject(err);
        });
      });
      if (hung === undefined) {
        await w.terminate();
        break;
      }
      pending = pending.slice(pending.indexOf(hung) + 1);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { stats, crashers };
}

export function newWorkDir(): string {
  return mkdtempSync(join(tmpdir(), 'dtx-fuzz-'));
}

async function cliMain(argv: string[]): Promise<number> {
  let minutes: number | undefined;
  let seed = 1;
  const only: TargetName[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--minutes') minutes = Number(argv[++i]);
    else if (a === '--seed') seed = Number(argv[++i]);
    else if (a === '--target') only.push(argv[++i] as TargetName);
    else {
      process.stderr.write(`fuzz: unknown argument ${a}\nusage: fuzz [--minutes M] [--seed S] [--target ${TARGETS.join('|')}]...\n`);
      return 64;
    }
  }
  let crashes = 0;
  await runCampaign({
    seed,
    ...(only.length > 0 ? { targets: only } : {}),
    ...(minutes !== undefined ? { minutes } : {}),
    onCrash: (c) => {
      crashes++;
      process.stderr.write(`CRASH ${c.target} ${c.kind}: ${c.message.split('\n')[0]} → ${saveCrasher(c)}\n`);
    },
    onStats: (name, st) => {
      process.stdout.write(`${name.padEnd(11)} ${String(st.executed).padStart(8)} inputs  ${st.typedErrors} typed errors  ${st.ok} ok  ${st.signatures} signatures  corpus ${st.corpus}  ${Math.round(st.ms)} ms${st.corpus === 0 ? '  (no seeds: skipped)' : ''}\n`);
    },
  });
  process.stdout.write(`${crashes} crasher(s)\n`);
  return crashes > 0 ? 1 : 0;
}

if (!isMainThread && (workerData as { job?: WorkerJob } | null)?.job?.fuzz === true) {
  await workerMain((workerData as { job: WorkerJob }).job);
} else if (isMainThread && process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = await cliMain(process.argv.slice(2));
}
