// Test helper: an oracle depmod's output for the current state of a work tree, computed on a clone
// so the work tree itself (and its cache) stays untouched. The clone is made of hard links, or with
// `links` of symbolic links (cp -as): a hard link changes the ctime of every module inode it shares
// with the work tree, which would make the next incremental merge re-parse files nobody touched (its
// cache validates ctime). depmod follows the links (fstatat) and, the names being the same on the
// same file system, lists the directories in the same order; the file set it writes was checked
// equal to the hard-link clone's on the real amd64 tree.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { DepmodOracle } from '../support/kmod-oracles.ts';
import { cloneRoot, oracleDepmod } from '../support/kernels.ts';

const SHIPPED = new Set(['modules.order', 'modules.builtin', 'modules.builtin.modinfo']);

/** An oracle's files for ROOT/lib/modules/KVER as it is now: name → bytes. */
export function oracleFiles(root: string, kver: string, extra: string[] = [], opts: { links?: boolean; oracle?: DepmodOracle } = {}): Map<string, Uint8Array> {
  const clone = mkdtempSync(join(tmpdir(), 'dtx-oracle-'));
  try {
    if (opts.links) execFileSync('cp', ['-as', resolve(root), join(clone, 'r')]);
    else cloneRoot(root, join(clone, 'r'));
    const moddir = join(clone, 'r', 'lib', 'modules', kver);
    for (const f of readdirSync(moddir)) if (f.startsWith('modules.') && !SHIPPED.has(f)) rmSync(join(moddir, f));
    oracleDepmod(join(clone, 'r'), kver, extra, opts.oracle);
    const out = new Map<string, Uint8Array>();
    for (const f of readdirSync(moddir)) if (f.startsWith('modules.') && !SHIPPED.has(f)) out.set(f, readFileSync(join(moddir, f)));
    return out;
  } finally {
    rmSync(clone, { recursive: true, force: true });
  }
}

/** The modules.* files depmod-tx left in a module directory. */
export function outputFiles(moddir: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const f of readdirSync(moddir)) if (f.startsWith('modules.') && !SHIPPED.has(f)) out.set(f, readFileSync(join(moddir, f)));
  return out;
}

/** Byte comparison of two file sets; returns human-readable differences (empty when identical). */
export function diffFileSets(ours: Map<string, Uint8Array>, theirs: Map<string, Uint8Array>): string[] {
  const problems: string[] = [];
  for (const [f, b] of theirs) {
    const a = ours.get(f);
    if (a === undefined) problems.push(`${f}: missing`);
    else if (Buffer.compare(Buffer.from(a), Buffer.from(b)) !== 0) problems.push(`${f}: differs (${a.length} vs ${b.length} bytes)`);
  }
  for (const f of ours.keys()) if (!theirs.has(f)) problems.push(`${f}: extra file`);
  return problems;
}

/** oracleFiles on a symbolic-link clone (see the file header): for incremental scenarios. */
export function oracleFilesByLinks(root: string, kver: string, extra: string[] = [], oracle?: DepmodOracle): Map<string, Uint8Array> {
  return oracleFiles(root, kver, extra, { links: true, ...(oracle ? { oracle } : {}) });
}
