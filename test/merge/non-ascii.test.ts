// Non-ASCII bytes (valid UTF-8) in symbol names, aliases and softdeps: depmod copies bytes, so every
// file must equal depmod's byte for byte, and a symbol's name must match between the exporter, the
// importer's __versions and Module.symvers (KABI). Real kernels have none; this pins the decoding.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { merge } from '../../src/merge/merge.ts';
import { depmodConfigArgs, writeFixtureTree } from '../support/fixture-tree.ts';
import { realKernelSkipReason } from '../support/kernels.ts';
import { diffFileSets, oracleFiles, outputFiles } from './oracle-dir.ts';

const skip = realKernelSkipReason(); // needs Debian's depmod
const KVER = '6.1.0-utf8';

test('UTF-8 in symbol names, aliases and softdeps: files equal depmod; KABI matches names through symvers', { skip }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'dtx-utf8-'));
  try {
    writeFixtureTree(root, KVER, [
      { path: 'kernel/a.ko', module: { modinfo: [['alias', 'usb:vé*'], ['softdep', 'pre: ü'], ['author', 'Jörg']], exports: [{ name: 'sym_é', crc: 1 }, { name: 'plain', crc: 2 }] } },
      { path: 'kernel/b.ko', module: { imports: [{ name: 'sym_é', crc: 1 }, { name: 'kern_ß', crc: 7 }] } },
    ]);
    const moddir = join(root, 'lib', 'modules', KVER);
    const symvers = join(root, 'Module.symvers');
    writeFileSync(symvers, '0x00000007\tkern_ß\tvmlinux\tEXPORT_SYMBOL\t\n');
    const r = await merge({ root, kver: KVER, workers: 0, symvers });
    assert.deepEqual(diffFileSets(outputFiles(moddir), oracleFiles(root, KVER, depmodConfigArgs(root, undefined))), []);
    assert.deepEqual(r.kabi, [], 'sym_é resolves to a.ko with its CRC, kern_ß to vmlinux with its CRC');

    writeFileSync(symvers, '0x00000008\tkern_ß\tvmlinux\tEXPORT_SYMBOL\t\n');
    const r2 = await merge({ root, kver: KVER, workers: 0, symvers, fullScan: true });
    assert.deepEqual(r2.kabi.map((f) => [f.kind, f.symbol, f.foundCrc]), [['crc-mismatch', 'kern_ß', 8]]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
