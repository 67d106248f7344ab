// Issue 4's KABI oracle through the whole merge (symvers read from a file, the cache path and the
// files written), where test/depmod/real-tree.test.ts checks the pure core: on the amd64 tree with
// the cloud kernel's Module.symvers, the (module, symbol, kind) findings of merge() equal those of
// Debian's `depmod -e -E CLOUD_SYMVERS -a`; with amd64's own symvers both find nothing; and the
// kernel symbols never change the files depmod -a writes. Without any symvers, CRCs between modules
// are still compared: none on the shipped tree, exactly one for a doctored out-of-tree copy of ext4.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { KabiFinding } from '../../src/depmod/compute.ts';
import { merge } from '../../src/merge/merge.ts';
import { findSection, isElfRefusal, openElf } from '../../src/elf/elf.ts';
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
    const r = await merge({ root, kver: amd.kver, full: true, symvers: cloud.symvers, config: [] });
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
    // fullScan: an unchanged tree would otherwise take the no-op path, which checks nothing.
    const r2 = await merge({ root, kver: amd.kver, symvers: amd.symvers, config: [], fullScan: true });
    assert.equal(r2.fullReason, undefined);
    assert.equal(r2.noop, false);
    assert.ok(r2.reused > 4000, `records from the cache: ${r2.reused}`);
    assert.equal(r2.kabiAgainst, 'symvers');
    assert.deepEqual(r2.kabi, []);
    assert.deepEqual(depmodFindings(root, amd.kver, amd.symvers), []);

    // No symvers to be found (Debian ships it in linux-headers): the in-tree modules agree with each other.
    const r3 = await merge({ root, kver: amd.kver, symvers: 'auto', config: [], fullScan: true });
    assert.equal(r3.symversFile, undefined);
    assert.equal(r3.kabiAgainst, 'modules');
    assert.deepEqual(r3.kabi, []);

    // A stale out-of-tree ext4 in updates/: one jbd2 CRC in its __versions changed. Without symvers
    // exactly that import is reported against jbd2; with symvers depmod -e -E reports the same.
    const ext4 = readFileSync(join(moddir, 'kernel/fs/ext4/ext4.ko'));
    const elf = openElf(ext4, 'ext4.ko');
    assert.ok(!isElfRefusal(elf));
    const versions = findSection(elf, '__versions')!;
    let victim = '';
    for (let at = versions.offset; at < versions.offset + versions.size; at += 64) {
      const name = ext4.toString('latin1', at + 8, ext4.indexOf(0, at + 8));
      if (name.startsWith('jbd2_')) {
        victim = name;
        ext4.writeUInt32LE(ext4.readUInt32LE(at) ^ 0x5a5a5a5a, at);
        break;
      }
    }
    assert.ok(victim !== '', 'ext4 imports a jbd2 symbol');
    mkdirSync(join(moddir, 'updates'), { recursive: true });
    writeFileSync(join(moddir, 'updates/ext4.ko'), ext4);
    const r4 = await merge({ root, kver: amd.kver, symvers: 'auto', config: [], hints: ['updates/ext4.ko'] });
    assert.equal(r4.kabiAgainst, 'modules');
    assert.deepEqual(r4.kabi.map((f) => [f.kind, f.modulePath.slice(moddir.length + 1), f.symbol, f.provider]), [['crc-mismatch', 'updates/ext4.ko', victim, 'jbd2']]);
    assert.deepEqual(depmodFindings(root, amd.kver, amd.symvers), [`updates/ext4.ko\t${victim}\tcrc-mismatch`]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
