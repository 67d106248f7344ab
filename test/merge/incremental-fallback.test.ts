// A module cache that cannot be trusted only costs time: missing, corrupt, of an old version, of
// another kernel → the update says why (fullReason), parses every module, and writes the same bytes
// as a full rebuild and as depmod -a. Changed inputs (depmod.d, modules.order) do not make the
// module facts wrong: they are reused, the search and order are redone, and the bytes are the same.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CACHE_VERSION } from '../../src/cache/format.ts';
import { cacheFile } from '../../src/cache/store.ts';
import { merge } from '../../src/merge/merge.ts';
import { depmodConfigArgs, writeFixtureTree } from '../support/fixture-tree.ts';
import { randomTree } from '../support/random-tree.ts';
import { realKernelSkipReason } from '../support/kernels.ts';
import { oracleFilesByLinks } from './oracle-dir.ts';
import { diffFileSets, outputFiles } from './oracle-dir.ts';

const skip = realKernelSkipReason(); // needs Debian's depmod

interface Case {
  name: string;
  /** 'full': the cache is refused and every module parsed again; 'reuse': its module facts serve. */
  expect: 'full' | 'reuse';
  /** Spoils the cache or changes an input; returns a pattern the reason must match. */
  spoil: (ctx: { root: string; kver: string; moddir: string; cache: string; confDir: string; otherCache: string }) => RegExp;
}

const cases: Case[] = [
  { name: 'missing', expect: 'full', spoil: ({ cache }) => (unlinkSync(cache), /no module cache yet/) },
  {
    // The header is checksummed; the body is vouched for by size and generation (src/cache/container.ts).
    name: 'corrupt (a header byte flipped)',
    expect: 'full',
    spoil: ({ cache }) => {
      const b = readFileSync(cache);
      const i = 40 + Math.floor(b.readUInt32LE(12) / 2);
      b[i] = b[i]! ^ 0x40;
      writeFileSync(cache, b);
      return /checksum mismatch/;
    },
  },
  {
    name: 'cut short (a torn write)',
    expect: 'full',
    spoil: ({ cache }) => {
      const b = readFileSync(cache);
      writeFileSync(cache, b.subarray(0, b.length - 100));
      return /truncated/;
    },
  },
  {
    name: 'old version',
    expect: 'full',
    spoil: ({ cache }) => {
      const b = readFileSync(cache);
      b.writeUInt32LE(CACHE_VERSION - 1, 8);
      writeFileSync(cache, b);
      return new RegExp(`version ${CACHE_VERSION - 1}, expected ${CACHE_VERSION}`);
    },
  },
  { name: 'foreign (another kernel\'s cache copied over)', expect: 'full', spoil: ({ cache, otherCache }) => (copyFileSync(otherCache, cache), /belongs to/) },
  {
    name: 'changed depmod.d',
    expect: 'reuse',
    spoil: ({ confDir }) => (writeFileSync(join(confDir, 'zz-added.conf'), 'search updates extra built-in weak-updates\n'), /./),
  },
  {
    name: 'changed modules.order',
    expect: 'reuse',
    spoil: ({ moddir }) => {
      const lines = readFileSync(join(moddir, 'modules.order'), 'latin1').split('\n').filter((l) => l !== '');
      writeFileSync(join(moddir, 'modules.order'), [...lines.reverse(), ''].join('\n'));
      return /./;
    },
  },
];

for (const c of cases) {
  test(`cache fallback: ${c.name} → ${c.expect === 'full' ? 'full parse' : 'facts reused'}, same bytes as a full rebuild and depmod -a`, { skip }, async () => {
    const work = mkdtempSync(join(tmpdir(), 'dtx-fallback-'));
    try {
      const t = randomTree(4242, { minModules: 25, maxModules: 30 });
      const root = join(work, 'r');
      const moddir = writeFixtureTree(root, t.kver, t.modules, { order: t.order, depmodConf: t.depmodConf, bits: t.bits, endian: t.endian });
      const cfgArgs = depmodConfigArgs(root, t.depmodConf);
      const config = cfgArgs.filter((a) => a !== '-C');
      // A second kernel in the same root, for the foreign cache.
      const otherKver = `${t.kver}-other`;
      writeFixtureTree(root, otherKver, t.modules.slice(0, 5), { bits: t.bits, endian: t.endian });
      await merge({ root, kver: otherKver, config });

      const first = await merge({ root, kver: t.kver, config });
      assert.equal(first.fullReason, 'no module cache yet');
      const reason = c.spoil({ root, kver: t.kver, moddir, cache: cacheFile(root, t.kver), confDir: config[0]!, otherCache: cacheFile(root, otherKver) });

      // A hinted path: a no-op would trust the header alone and leave the (verified) outputs be.
      const r = await merge({ root, kver: t.kver, config, hints: [t.modules[0]!.path] });
      if (c.expect === 'full') {
        assert.match(r.fullReason ?? '(none)', reason);
        assert.equal(r.parsed, r.modules, 'every module parsed again');
      } else {
        assert.equal(r.fullReason, undefined);
        assert.ok(r.parsed < r.modules, `reused the facts (parsed ${r.parsed} of ${r.modules})`);
      }
      const out = outputFiles(moddir);
      assert.deepEqual(diffFileSets(out, oracleFilesByLinks(root, t.kver, cfgArgs)), [], 'same as depmod -a');
      const fullDir = join(work, 'full');
      mkdirSync(fullDir);
      await merge({ root, kver: t.kver, config, full: true, outdir: fullDir });
      assert.deepEqual(diffFileSets(out, outputFiles(fullDir)), [], 'same as a full rebuild');

      // The cache written by the fallback is sound again: the next update reuses it.
      const again = await merge({ root, kver: t.kver, config });
      assert.equal(again.fullReason, undefined);
      assert.equal(again.parsed, 0);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}
