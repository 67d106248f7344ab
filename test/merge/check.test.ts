// `depmod-tx check`: not-yet-installed module files against installed kernels, answered from the
// module cache. Expectations from first principles: a module shipped with a kernel loads on that
// kernel (Debian's depmod -e -E with its own symvers reports nothing, test/depmod/real-tree); a
// symvers with one CRC changed breaks exactly the modules importing that symbol; a symbol nobody
// exports is unknown. The pure comparison is also tested on synthetic records.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCheck, splitOperands } from '../../src/cli/check.ts';
import { parseSymvers } from '../../src/depmod/kernel-symbols.ts';
import { cacheFile } from '../../src/cache/store.ts';
import { checkAgainst, checkModules, readCandidates } from '../../src/merge/check.ts';
import { merge } from '../../src/merge/merge.ts';
import { buildModuleElf } from '../support/fixture-elf.ts';
import { realKernel, realKernelSkipReason } from '../support/kernels.ts';

const skip = realKernelSkipReason();

test('checkAgainst: kernel, installed and candidate providers; CRCs; weak imports; replaced module', () => {
  const kernel = parseSymvers('0x00000001\tk_sym\tvmlinux\tEXPORT_SYMBOL\t\n', 'S');
  const installed = [
    { name: 'a', exports: [{ name: 'a_sym', crc: 5 }] },
    { name: 'old', exports: [{ name: 'old_sym', crc: 9 }] },
  ];
  const cand = (name: string, imports: Array<{ name: string; crc: number; weak?: boolean }>, exports: Array<{ name: string; crc: number }> = []) => ({
    file: `/x/${name}.ko`,
    record: { name, modinfo: [], exports, imports: imports.map((i) => ({ weak: false, ...i })) },
  });
  // Resolved by vmlinux, an installed module and the other candidate, every CRC equal.
  const good = [cand('c1', [{ name: 'k_sym', crc: 1 }, { name: 'a_sym', crc: 5 }, { name: 'c2_sym', crc: 7 }]), cand('c2', [], [{ name: 'c2_sym', crc: 7 }])];
  assert.deepEqual(checkAgainst(good, installed, kernel), []);
  const bad = [cand('c1', [{ name: 'k_sym', crc: 2 }, { name: 'nobody', crc: 0 }, { name: 'weakling', crc: 0, weak: true }, { name: 'a_sym', crc: 6 }])];
  assert.deepEqual(
    checkAgainst(bad, installed, kernel).map((p) => [p.kind, p.symbol, p.provider, p.foundCrc, p.message]),
    [
      ['crc-mismatch', 'k_sym', 'vmlinux', 1, '/x/c1.ko disagrees about version of symbol k_sym'],
      ['unknown', 'nobody', null, null, '/x/c1.ko needs unknown symbol nobody'],
      ['crc-mismatch', 'a_sym', 'a', 5, '/x/c1.ko disagrees about version of symbol a_sym'],
    ],
  );
  // A candidate named like an installed module replaces it: the old one's exports are gone.
  assert.deepEqual(checkAgainst([cand('old', []), cand('u', [{ name: 'old_sym', crc: 9 }])], installed, kernel).map((p) => p.message), ['/x/u.ko needs unknown symbol old_sym']);
  // Without any kernel symbols the answer cannot be "loads".
  assert.deepEqual(checkAgainst(good, installed, undefined).map((p) => p.kind), ['no-symvers', 'no-symvers']);
  // ...but CRCs between modules are still compared; vmlinux's symbols are not called unknown.
  assert.deepEqual(
    checkAgainst(bad, installed, undefined).map((p) => [p.kind, p.symbol, p.provider, p.foundCrc]),
    [['no-symvers', null, null, null], ['crc-mismatch', 'a_sym', 'a', 5]],
  );
});

test('splitOperands: module files by suffix, the rest are kernel versions', () => {
  assert.deepEqual(splitOperands({ root: '/', all: false, json: false, operands: ['6.1.0-1-amd64', 'a.ko', 'b/c.ko.xz', '6.2'] }), {
    kvers: ['6.1.0-1-amd64', '6.2'],
    files: ['a.ko', 'b/c.ko.xz'],
  });
});

test('check on the real amd64 tree: from the cache, OK / changed CRC / unknown symbol; writes nothing', { skip }, async () => {
  const k = realKernel('amd64');
  const work = mkdtempSync(join(tmpdir(), 'dtx-check-'));
  try {
    const root = join(work, 'r');
    execFileSync('cp', ['-al', k.root, root]);
    const symvers = join(work, 'Module.symvers');
    copyFileSync(k.symvers, symvers);
    // Without a cache: a full parse, said so, nothing saved.
    const cand = join(work, 'btrfs.ko');
    copyFileSync(join(k.moddir, 'kernel/fs/btrfs/btrfs.ko'), cand);
    const noCache = await checkModules({ root, kernels: [k.kver], files: [cand], symvers, config: [] });
    assert.equal(noCache[0]!.records, 'parsed');
    assert.equal(noCache[0]!.ok, true, JSON.stringify(noCache[0]!.problems.slice(0, 3)));
    assert.throws(() => statSync(cacheFile(root, k.kver)), /ENOENT/);

    await merge({ root, kver: k.kver, full: true, config: [] });
    const cacheStat = statSync(cacheFile(root, k.kver), { bigint: true });

    const candidates = await readCandidates([cand]);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const v = await checkModules({ root, kernels: [k.kver], files: [], symvers }, candidates);
      times.push(performance.now() - t0);
      assert.equal(v[0]!.records, 'cache');
      assert.deepEqual(v[0]!.problems, []);
    }
    console.log(`check btrfs.ko against the amd64 cache: ${times.map((t) => t.toFixed(1)).join(', ')} ms`);

    // One CRC btrfs imports changed in the kernel's symvers: exactly that symbol disagrees.
    const btrfs = candidates[0]!.record;
    const victim = btrfs.imports.find((i) => !i.weak && i.crc !== 0 && readFileSync(k.symvers, 'latin1').includes(`\t${i.name}\tvmlinux\t`))!;
    const text = readFileSync(k.symvers, 'latin1').replace(new RegExp(`^0x[0-9a-f]+\\t${victim.name}\\tvmlinux\\t`, 'm'), `0x0badf00d\t${victim.name}\tvmlinux\t`);
    const changed = join(work, 'changed.symvers');
    writeFileSync(changed, text);
    const v2 = await checkModules({ root, kernels: [k.kver], files: [], symvers: changed }, candidates);
    assert.deepEqual(v2[0]!.problems.map((p) => [p.kind, p.symbol, p.foundCrc]), [['crc-mismatch', victim.name, 0x0badf00d]]);

    // A synthetic module importing a symbol nobody exports, through the command.
    const synth = join(work, 'needs_nothing_known.ko');
    writeFileSync(synth, buildModuleElf({ modinfo: [['license', 'GPL']], imports: [{ name: 'no_such_symbol_anywhere', crc: 0x1 }, { name: '_printk', crc: 0 }] }));
    let out = '';
    let err = '';
    const io = { stdout: (s: string) => void (out += s), stderr: (s: string) => void (err += s) };
    const code = await runCheck({ root, symvers, all: false, json: true, operands: [k.kver, synth, cand] }, io);
    assert.equal(code, 3, err);
    const rep = JSON.parse(out) as { ok: boolean; kernels: Array<{ kver: string; ok: boolean; records: string; problems: Array<{ kind: string; symbol: string; message: string }> }> };
    assert.equal(rep.ok, false);
    assert.equal(rep.kernels[0]!.records, 'cache');
    // _printk is vmlinux's but the synthetic module expects CRC 0: depmod would say it disagrees too.
    assert.deepEqual(rep.kernels[0]!.problems.map((p) => p.message), [
      `${synth} needs unknown symbol no_such_symbol_anywhere`,
      `${synth} disagrees about version of symbol _printk`,
    ]);
    out = '';
    assert.equal(await runCheck({ root, symvers, all: true, json: false, operands: [cand] }, io), 0);
    assert.equal(out, `${k.kver}: OK\n`);

    const after = statSync(cacheFile(root, k.kver), { bigint: true });
    assert.deepEqual([after.ino, after.mtimeNs], [cacheStat.ino, cacheStat.mtimeNs], 'check writes nothing');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('runCheck: usage errors', async () => {
  const io = { stdout: () => {}, stderr: () => {} };
  await assert.rejects(runCheck({ root: '/', all: false, json: false, operands: ['6.1'] }, io), /at least one module file/);
  await assert.rejects(runCheck({ root: '/', all: false, json: false, operands: ['a.ko'] }, io), /kernel version, or --all/);
  await assert.rejects(runCheck({ root: '/', all: true, json: false, operands: ['6.1', 'a.ko'] }, io), /not both/);
});
