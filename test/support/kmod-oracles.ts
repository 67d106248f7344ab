// The depmods tests compare with, one per kmod release depmod-tx reproduces:
//   kmod 30    Debian 12's, installed (.ci/run): the default oracle.
//   kmod 34.2  Debian 13's (trixie), downloaded with apt into .cache/kmod-trixie and run through its
//              own loader (it needs glibc 2.38): LD --library-path LIB --argv0 depmod kmod ARGS.
//   others     depmods built from kmod's own tags, when a developer has them under
//              .cache/kmod-builds/NAME/bin/depmod (never in CI: kmod's code is not ours to ship).
// Each oracle also exists as a `depmod` executable in a directory of its own (binDir), so tests can
// put it first on PATH and let depmod-tx find the kmod version by itself; it runs kmod by the name
// depmod, as package scripts do.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unpackedFromSuite } from './debian-archive.ts';

export interface DepmodOracle {
  /** "kmod30", "kmod34", "v28", ... */
  name: string;
  /** What its `depmod --version` prints on the first line after "kmod version ". */
  version: string;
  /** Command and leading arguments that run this depmod. */
  command: [string, ...string[]];
  /** A directory holding an executable `depmod` that is this oracle. */
  binDir: string;
}

const cacheDir = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), '.cache');

function versionOf(command: readonly string[]): string {
  const r = spawnSync(command[0]!, [...command.slice(1), '--version'], { encoding: 'utf8' });
  const m = /^kmod version (\S+)/.exec(r.stdout ?? '');
  if (r.status !== 0 || m === null) throw new Error(`${command.join(' ')} --version failed: ${r.stderr}`);
  return m[1]!;
}

function wrapper(name: string, command: readonly string[]): string {
  const dir = join(cacheDir, 'oracle-bin', name);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'depmod');
  const quoted = command.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  // By the name depmod, as package scripts call it: getopt's messages start with argv[0].
  writeFileSync(file, `#!/bin/bash\nexec -a depmod ${quoted} "$@"\n`);
  chmodSync(file, 0o755);
  return dir;
}

function systemDepmod(): string {
  for (const p of ['/usr/sbin/depmod', '/sbin/depmod']) if (existsSync(p)) return p;
  return 'depmod';
}

let bookworm: DepmodOracle | undefined;

/** Debian 12's kmod 30 (the machine's own depmod). */
export function kmod30(): DepmodOracle {
  if (bookworm !== undefined) return bookworm;
  const command: [string] = [systemDepmod()];
  bookworm = { name: 'kmod30', version: versionOf(command), command, binDir: wrapper('kmod30', command) };
  return bookworm;
}

let trixie: DepmodOracle | undefined;

/** Debian 13's kmod 34.2, fetched once into .cache/kmod-trixie (bookworm machines reach the trixie suite). */
export function kmod34(): DepmodOracle {
  if (trixie !== undefined) return trixie;
  const root = unpackedFromSuite(join(cacheDir, 'kmod-trixie'), 'trixie', ['kmod', 'libkmod2', 'libc6', 'liblzma5', 'libzstd1', 'libssl3t64', 'zlib1g']);
  const lib = join(root, 'usr', 'lib', 'x86_64-linux-gnu');
  const command: [string, ...string[]] = [join(lib, 'ld-linux-x86-64.so.2'), '--library-path', lib, '--argv0', 'depmod', join(root, 'usr', 'bin', 'kmod')];
  trixie = { name: 'kmod34', version: versionOf(command), command, binDir: wrapper('kmod34', command) };
  return trixie;
}

/**
 * depmods a developer built from kmod's tags (.cache/kmod-builds/NAME/bin/depmod), if any. Builds
 * named pr* are patched kmods kept for the benchmark (pull request 253), not formats to reproduce.
 */
export function localKmodBuilds(): DepmodOracle[] {
  const base = join(cacheDir, 'kmod-builds');
  if (!existsSync(base)) return [];
  const out: DepmodOracle[] = [];
  for (const name of readdirSync(base).sort()) {
    if (name.startsWith('pr')) continue;
    const bin = join(base, name, 'bin', 'depmod');
    if (!existsSync(bin)) continue;
    out.push({ name, version: versionOf([bin]), command: [bin], binDir: wrapper(name, [bin]) });
  }
  return out;
}

/** Every oracle this machine has: kmod 30, kmod 34.2, then the local builds. */
export function allOracles(): DepmodOracle[] {
  return [kmod30(), kmod34(), ...localKmodBuilds()];
}

/** An oracle by name (kmod30, kmod34, or a local build's name). */
export function oracleNamed(name: string): DepmodOracle {
  const o = allOracles().find((x) => x.name === name);
  if (o === undefined) throw new Error(`no oracle ${name} (have: ${allOracles().map((x) => x.name).join(', ')})`);
  return o;
}

/** Runs an oracle's depmod; returns status and stderr. */
export function runOracle(o: DepmodOracle, args: readonly string[]): { status: number | null; stderr: string; stdout: string; signal: NodeJS.Signals | null } {
  const r = spawnSync(o.command[0], [...o.command.slice(1), ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout, signal: r.signal };
}
