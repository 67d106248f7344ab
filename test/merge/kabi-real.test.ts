// Issue 4's KABI oracle through the whole merge (symvers read from a file, the cache path and the
// files written), where test/depmod/real-tree.test.ts checks the pure core: on the amd64 tree with
// the cloud kernel's Module.symvers, the (module, symbol, kind) findings of merge() equal those of
// Debian's `depmod -e -E CLOUD_SYMVERS -a`; with amd64's own symvers both find nothing; and the
// kernel symbols never change the files depmod -a writes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { KabiFinding } from '../../src/depmod/build.ts';
import { merge } from '../../src/merge/merge.ts';
import { cloneRoot, DEPMOD_OUTPUTS, oracleOutput, realKernel, realKernelSkipReason } from '../support/kernels.ts';
import { diffFileSets, outputFiles } from './oracle-dir.ts';

const skip = realKernelSkipReason();

/** depmod -e -E's findings as "relpath\tsymbol\tkind" (it exits 1 when it printed warnings). */
function depmodFindings(root: string, kver: string, symvers: string): string[] {
  const r = spawnSync('depmod', ['-b', root, '-e', '-E', symvers, '-a', kver], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0 && r.status !== 1) throw new Error(`depmod failed (${r.status}): ${r.stderr.slice(0, 2000)}`);
  const moddir = `${root}/lib/modules/${kver}/`;
  const out: string[] = [];
  for (const line of r.stderr.split('\n')) {
    if (line === '') continue;
    const m = /^depmod: WARNING: (\S+) (disagrees about version of symbol|needs unknown symbol) (\S+)$/.exec(line);
    if (!m) throw new Error(`unexpected depmod line: ${line}`);
    const path = m[1]!.startsWith(moddir) ? m[1]!.slice(moddir.length) : m[1]!;
    out.push(`${path}\t${m[3]}\t${m[2]!.startsWith('disagrees') ? 'crc-mismatch' : 'unknown'}`);
  }
  return out.sort();
}

function ours(findings: KabiFinding[], moddir: string): string[] {
  return findings.map((f) => `${f.modulePath.slice(moddir.length + 1)}\t${f.symbol}\t${f.kind}`).sort();
}

test('merge KABI findings on amd64 vs the cloud symvers equal depmod -e -E; vs its own symvers none; files unchanged', { skip }, async () => {
  const amd = realKernel('amd64');
  const cloud = realKernel('cloud-amd64');
  const work = mkdtempSync(join(tmpdir(), 'dtx-kabi-'));
  try {
    const root = join(work, 'r');
    cloneRoot(amd.root, root);
    const moddir = join(root, 'lib', 'modules', amd.kver);
    const r = await merge({ root, kver: amd.kver, full: true, symvers: cloud.symvers, kabiScope: 'all', config: [] });
    assert.equal(r.symversFile, cloud.symvers);
    const oracle = new Map(DEPMOD_OUTPUTS.map((f) => [f, readFileSync(join(oracleOutput(amd, 'none'), f))] as const));
    assert.deepEqual(diffFileSets(outputFiles(moddir), oracle), [], 'kernel symbols must not change the files');

    const theirs = depmodFindings(root, amd.kver, cloud.symvers);
    const mine = ours(r.kabi, moddir);
    const count = (xs: string[], kind: string): number => xs.filter((x) => x.endsWith(`\t${kind}`)).length;
    console.log(`KABI amd64 vs cloud symvers: depmod ${count(theirs, 'crc-mismatch')} CRC + ${count(theirs, 'unknown')} unknown; merge ${count(mine, 'crc-mismatch')} + ${count(mine, 'unknown')}`);
    assert.ok(count(theirs, 'crc-mismatch') > 50_000 && count(theirs, 'unknown') > 5_000, 'the oracle finds the expected scale of problems');
    assert.equal(new Set(mine).size, mine.length, 'one finding per (module, symbol)');
    assert.deepEqual(mine, theirs);
    for (const f of r.kabi.slice(0, 200)) {
      if (f.kind === 'crc-mismatch') assert.ok(f.provider !== undefined && f.foundCrc !== undefined && f.foundCrc !== f.expectedCrc);
    }

    // Matching symvers, from the cache this time (update, every module in scope): nothing, like depmod.
    const r2 = await merge({ root, kver: amd.kver, symvers: amd.symvers, kabiScope: 'all', config: [] });
    assert.equal(r2.fullReason, undefined);
    assert.deepEqual(r2.kabi, []);
    assert.deepEqual(depmodFindings(root, amd.kver, amd.symvers), []);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
