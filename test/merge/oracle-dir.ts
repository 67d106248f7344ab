// Test helper: Debian depmod's output for the current state of a work tree, computed on a
// hard-link clone so the work tree itself (and its cache) stays untouched.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cloneRoot, oracleDepmod } from '../support/kernels.ts';

const SHIPPED = new Set(['modules.order', 'modules.builtin', 'modules.builtin.modinfo']);

/** depmod's files for ROOT/lib/modules/KVER as it is now: name → bytes. */
export function oracleFiles(root: string, kver: string, extra: string[] = []): Map<string, Uint8Array> {
  const clone = mkdtempSync(join(tmpdir(), 'dtx-oracle-'));
  try {
    cloneRoot(root, join(clone, 'r'));
    const moddir = join(clone, 'r', 'lib', 'modules', kver);
    for (const f of readdirSync(moddir)) if (f.startsWith('modules.') && !SHIPPED.has(f)) rmSync(join(moddir, f));
    oracleDepmod(join(clone, 'r'), kver, extra);
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
