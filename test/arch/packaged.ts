// The CLI as the packages ship it, for the suites that must run it without the lzma-native addon:
// the payload of the .deb from scripts/package.mjs, unpacked outside the repository (so Node's
// resolution, which walks up to the repository's node_modules, cannot find the addon), and a PATH
// holding everything the CLI runs except xz(1).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildPackage } from '../e2e/support.ts';

export interface PackagedCli {
  /** The built .deb. */
  deb: string;
  /** Where its payload was unpacked: TREE/usr/bin/depmod-tx, TREE/usr/lib/depmod-tx/depmod-tx.mjs. */
  tree: string;
  /** The bundle's entry point, to run with any node. */
  bundle: string;
}

/** Builds the .deb into DIR (a temporary directory outside the repository) and unpacks it there. */
export function packagedCli(dir: string): PackagedCli {
  const deb = buildPackage(join(dir, 'pkg'), 'deb');
  const tree = join(dir, 'payload');
  execFileSync('dpkg-deb', ['-x', deb, tree]);
  return { deb, tree, bundle: join(tree, 'usr', 'lib', 'depmod-tx', 'depmod-tx.mjs') };
}

export interface RuntimeProbe {
  arch: string;
  endianness: string;
  version: string;
  /** What `import('lzma-native')` gives from where the bundle lives: 'loaded' or the error's code. */
  addon: string;
}

/** Runs a probe module next to the bundle with NODE: the runtime, and whether the addon resolves there. */
export function probeRuntime(cli: PackagedCli, node = process.execPath): RuntimeProbe {
  const probe = join(dirname(cli.bundle), 'probe-runtime.mjs');
  writeFileSync(
    probe,
    `import { endianness } from 'node:os';
let addon = 'loaded';
try { await import('lzma-native'); } catch (e) { addon = e.code ?? e.message; }
console.log(JSON.stringify({ arch: process.arch, endianness: endianness(), version: process.version, addon }));
`,
  );
  return JSON.parse(execFileSync(node, [probe], { encoding: 'utf8' })) as RuntimeProbe;
}

/** The commands the CLI and its wrapper run besides node (flock(1) for the kernel lock, zstd(1)). */
const NEEDED = ['sh', 'flock', 'cat', 'dirname', 'readlink', 'rm', 'zstd'];

/** A directory to use as the whole PATH: node and NEEDED as symlinks, and no xz. */
export function pathWithoutXz(dir: string): string {
  const bin = join(dir, 'bin-without-xz');
  if (existsSync(bin)) return bin;
  mkdirSync(bin, { recursive: true });
  symlinkSync(process.execPath, join(bin, 'node'));
  for (const c of NEEDED) {
    const p = spawnSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' }).stdout.trim();
    if (p !== '') symlinkSync(realpathSync(p), join(bin, c));
  }
  if (spawnSync('sh', ['-c', 'command -v xz'], { env: { PATH: bin }, stdio: 'ignore' }).status === 0) throw new Error(`${bin} still finds xz`);
  return bin;
}

/** A scratch directory under the system's temporary directory (never inside the repository). */
export function scratchOutsideRepo(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
