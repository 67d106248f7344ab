// Runs Debian's depmod on a tiny module tree with no modules but a hand-written
// modules.builtin / modules.builtin.modinfo: output_builtin_bin and output_builtin_alias_bin
// then turn chosen keys and values into index files, which makes the oracle usable for trie
// edge cases (splits, duplicates, empty key, non-ASCII bytes).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const KVER = '9.9.9-tiny';

export interface TinyOracleRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  /** The bytes of each requested output that depmod wrote. */
  files: Map<string, Uint8Array>;
}

export function tinyOracle(inputs: Record<string, Uint8Array>, outputs: string[]): TinyOracleRun {
  const root = mkdtempSync(join(tmpdir(), 'depmod-tx-tiny-'));
  try {
    const moddir = join(root, 'lib', 'modules', KVER);
    mkdirSync(join(moddir, 'kernel'), { recursive: true });
    writeFileSync(join(moddir, 'modules.order'), '');
    for (const [name, bytes] of Object.entries(inputs)) writeFileSync(join(moddir, name), bytes);
    const r = spawnSync('depmod', ['-b', root, '-a', KVER], { encoding: 'utf8' });
    const files = new Map<string, Uint8Array>();
    for (const name of outputs) {
      const p = join(moddir, name);
      if (existsSync(p)) files.set(name, new Uint8Array(readFileSync(p)));
    }
    return { status: r.status, signal: r.signal, files };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** modules.builtin.modinfo records "modname.key=value\0" from [modname, key, value] triples. */
export function modinfoBytes(records: [string, string, string][]): Uint8Array {
  return new TextEncoder().encode(records.map(([m, k, v]) => `${m}.${k}=${v}\0`).join(''));
}
