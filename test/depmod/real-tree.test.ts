// The real proof: depmod-tx's full rebuild of Debian's own 6.1 kernels equals Debian's depmod -a
// byte for byte, for every file, and writes no file depmod does not.
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { parseSymvers } from '../../src/depmod/kernel-symbols.ts';
import { cloneRoot, kernelCache, oracleOutput, realKernel, realKernelSkipReason, recompressedKernel, trixieKernel, type Flavour } from '../support/kernels.ts';
import { kmod30, kmod34 } from '../support/kmod-oracles.ts';
import { kmodBehaviour } from '../../src/depmod/kmod-version.ts';
import { cli } from '../reliability/crash-support.ts';
import { compareWithOracle } from './compare.ts';
import { runOurs } from './pipeline.ts';
import { rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const skip = realKernelSkipReason();

const kmod34Behaviour = kmodBehaviour('34.2')!;

for (const flavour of ['cloud-amd64', 'amd64'] as Flavour[]) {
  describe(`real kernel ${flavour}`, { skip }, () => {
    for (const comp of ['none', 'xz', 'zst'] as const) {
      it(`every modules.* file is byte-identical to kmod 30's and kmod 34.2's depmod -a (${comp === 'none' ? '.ko' : `.ko.${comp}`})`, async () => {
        const k = recompressedKernel(realKernel(flavour), comp);
        const r = await runOurs(k.root, k.kver);
        assert.deepEqual(compareWithOracle(r.files, oracleOutput(k, comp)), [], 'kmod 30');
        assert.deepEqual(r.warnings, []);
        // The same parsed modules in kmod 34's format.
        const r34 = await runOurs(k.root, k.kver, { records: r.records, behaviour: kmod34Behaviour });
        assert.deepEqual(compareWithOracle(r34.files, oracleOutput(k, comp, kmod34())), [], 'kmod 34.2');
      });
    }
  });
}

describe('Debian 13 kernel (6.12, .ko.xz, trixie)', { skip }, () => {
  it('rebuild equals kmod 34.2 and kmod 30 (--kmod-version), and kmod 34.2 found by itself on PATH', () => {
    const k = trixieKernel();
    const work = mkdtempSync(join(tmpdir(), 'dtx-trixie-'));
    // An empty depmod.d, as the host has (the oracle reads the host's, depmod-tx under --root the root's).
    mkdirSync(join(work, 'no-config'));
    try {
      for (const [oracle, how] of [[kmod34(), 'option'], [kmod30(), 'option'], [kmod34(), 'path']] as const) {
        const out = join(work, `${oracle.name}-${how}`);
        mkdirSync(out);
        const args = ['rebuild', '-b', k.root, '-C', join(work, 'no-config'), '-o', out, k.kver];
        const r = how === 'option' ? cli([...args, '--kmod-version', oracle.version]) : cli(args, { env: { PATH: `${oracle.binDir}:/usr/bin:/bin` } });
        assert.equal(r.status, 0, r.stderr);
        const expected = oracleOutput(k, 'shipped', oracle);
        assert.deepEqual(compareWithOracle(new Map(readdirSync(out).map((f) => [f, readFileSync(join(out, f))])), expected), [], `${oracle.name} by ${how}`);
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

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
