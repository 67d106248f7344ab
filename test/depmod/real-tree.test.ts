// The real proof: depmod-tx's full rebuild of Debian's own 6.1 kernels equals Debian's depmod -a
// byte for byte, for every file, and writes no file depmod does not.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseSymvers } from '../../src/depmod/kernel-symbols.ts';
import { cloneRoot, kernelCache, oracleOutput, realKernel, realKernelSkipReason, recompressedKernel, type Flavour } from '../support/kernels.ts';
import { compareWithOracle } from './compare.ts';
import { runOurs } from './pipeline.ts';
import { rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const skip = realKernelSkipReason();

for (const flavour of ['cloud-amd64', 'amd64'] as Flavour[]) {
  describe(`real kernel ${flavour}`, { skip }, () => {
    it('every modules.* file is byte-identical to Debian depmod -a (.ko)', async () => {
      const k = realKernel(flavour);
      const r = await runOurs(k.root, k.kver);
      assert.deepEqual(compareWithOracle(r.files, oracleOutput(k, 'none')), []);
      assert.deepEqual(r.warnings, []);
    });

    it('every modules.* file is byte-identical to Debian depmod -a (.ko.xz)', async () => {
      const k = recompressedKernel(realKernel(flavour), 'xz');
      const r = await runOurs(k.root, k.kver);
      assert.deepEqual(compareWithOracle(r.files, oracleOutput(k, 'xz')), []);
    });
  });
}

/** depmod's stderr; with -e it exits 1 when it printed warnings, which is not a failure here. */
function depmodStderr(root: string, kver: string, extra: string[]): string {
  const r = spawnSync('depmod', ['-b', root, ...extra, '-a', kver], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0 && r.status !== 1) throw new Error(`depmod failed (${r.status}): ${r.stderr.slice(0, 2000)}`);
  return r.stderr;
}

/**
 * KABI, issue 4's oracle: the amd64 tree checked against the cloud kernel's Module.symvers. Debian's
 * depmod -e -E prints one warning per (module, symbol) finding; ours must be the same set.
 */
describe('real kernel: KABI findings equal depmod -e -E', { skip }, () => {
  it('amd64 tree vs cloud symvers: same warnings; vs its own symvers: none', async () => {
    const amd = realKernel('amd64');
    const cloud = realKernel('cloud-amd64');
    const clone = join(kernelCache, `.work-kabi-${process.pid}`);
    cloneRoot(amd.root, clone);
    try {
      const stderr = depmodStderr(clone, amd.kver, ['-e', '-E', cloud.symvers]);
      const dirname = `${clone}/lib/modules/${amd.kver}`;
      const theirs = stderr
        .split('\n')
        .filter((l) => l.startsWith('depmod: WARNING: '))
        .map((l) => l.slice('depmod: WARNING: '.length))
        .sort();
      const wrong = parseSymvers(readFileSync(cloud.symvers, 'latin1'), cloud.symvers);
      const r = await runOurs(clone, amd.kver, { kernelSymbols: wrong });
      const ours = r.db.kabi.map((f) => f.message).sort();
      const counts = (xs: string[], w: string): number => xs.filter((x) => x.includes(w)).length;
      console.log(`KABI: depmod ${counts(theirs, 'disagrees')} disagree + ${counts(theirs, 'unknown symbol')} unknown; ours ${counts(ours, 'disagrees')} + ${counts(ours, 'unknown symbol')}`);
      assert.ok(theirs.length > 1000, 'the oracle should find many problems with the wrong symvers');
      assert.deepEqual(ours, theirs);
      // The files are unaffected by -E.
      assert.deepEqual(compareWithOracle(r.files, oracleOutput(amd, 'none')), []);

      const right = parseSymvers(readFileSync(amd.symvers, 'latin1'), amd.symvers);
      const theirsRight = depmodStderr(clone, amd.kver, ['-e', '-E', amd.symvers]).split('\n').filter((l) => l.includes('WARNING'));
      const r2 = await runOurs(clone, amd.kver, { kernelSymbols: right, records: r.records });
      assert.deepEqual(theirsRight, []);
      assert.deepEqual(r2.db.kabi, []);
    } finally {
      rmSync(clone, { recursive: true, force: true });
    }
  });
});
