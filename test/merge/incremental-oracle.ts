// Test helper for incremental scenarios: Debian depmod's output for a tree's current state, run on
// a symlink farm (cp -as) instead of a hard-link clone. A hard link changes the ctime of every
// module inode it shares with the work tree, which would make the next incremental merge re-parse
// files nobody touched (its cache validates ctime), and the `parsed` counts the scenarios assert
// would measure the oracle, not the merge. depmod follows the links (fstatat) and, the names being
// the same on the same file system, lists the directories in the same order; the file set it
// writes was checked equal to the hard-link clone's on the real amd64 tree.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { oracleDepmod } from '../support/kernels.ts';

const SHIPPED = new Set(['modules.order', 'modules.builtin', 'modules.builtin.modinfo']);

export function oracleFilesByLinks(root: string, kver: string, extra: string[] = []): Map<string, Uint8Array> {
  const clone = mkdtempSync(join(tmpdir(), 'dtx-oracle-farm-'));
  try {
    const r = join(clone, 'r');
    execFileSync('cp', ['-as', resolve(root), r]);
    const moddir = join(r, 'lib', 'modules', kver);
    for (const f of readdirSync(moddir)) if (f.startsWith('modules.') && !SHIPPED.has(f)) rmSync(join(moddir, f));
    oracleDepmod(r, kver, extra);
    const out = new Map<string, Uint8Array>();
    for (const f of readdirSync(moddir)) if (f.startsWith('modules.') && !SHIPPED.has(f)) out.set(f, readFileSync(join(moddir, f)));
    return out;
  } finally {
    rmSync(clone, { recursive: true, force: true });
  }
}
