// Byte identity with the installed kmod, kmod 28 to 34 (src/depmod/kmod-version.ts): the behaviour
// table, how depmod-tx finds the installed kmod, and fixture trees written by depmod-tx in each
// kmod's format against that kmod's own depmod (Debian 12's kmod 30, Debian 13's kmod 34.2, and any
// kmod a developer built under .cache/kmod-builds). Real kernels: test/depmod/real-tree.test.ts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, test } from 'node:test';
import { kmodBehaviour, newestKmodBehaviour, parseDepmodVersionOutput } from '../../src/depmod/kmod-version.ts';
import { depmodCandidates, FRONT_END_MARK, installedKmod, requestedKmod } from '../../src/merge/installed-kmod.ts';
import { zstdFrameSizeKnown } from '../../src/module/zstd-frames.ts';
import { loadZstd } from '../../src/module/zstd-kmod.ts';
import { buildModuleElf } from '../support/fixture-elf.ts';
import { depmodConfigArgs, writeFixtureTree, type FixtureTreeModule } from '../support/fixture-tree.ts';
import { realKernelSkipReason } from '../support/kernels.ts';
import { kmod30, kmod34, localKmodBuilds, type DepmodOracle } from '../support/kmod-oracles.ts';
import { diffFileSets, oracleFiles, outputFiles } from '../merge/oracle-dir.ts';
import { cli } from '../reliability/crash-support.ts';

const skip = realKernelSkipReason(); // needs Debian's depmod and apt
const KVER = '6.1.0-kmodver';

test('behaviour table: the rows kmod history gives, unknown versions refused', () => {
  const b = (v: string) => kmodBehaviour(v)!;
  assert.deepEqual([b('28').builtinAlias, b('29').builtinAlias, b('30').builtinAlias, b('34.2').builtinAlias], ['kmod28', 'with-modnames', 'aliases', 'aliases']);
  assert.deepEqual(['31', '32', '33', '34', '34.2'].map((v) => b(v).writesWeakdep), [false, false, true, true, true]);
  assert.deepEqual(['33', '34', '34.1', '34-rc2'].map((v) => b(v).indexOrder), ['post-order', 'pre-order', 'pre-order', 'pre-order']);
  assert.deepEqual(['28', '29', '31', '32'].map((v) => b(v).configDirs.length), [3, 4, 4, 5]);
  assert.equal(b('29').supportsExclude, false);
  assert.equal(b('30').supportsExclude, true);
  for (const bad of ['27', '35', 'x', '']) assert.equal(kmodBehaviour(bad), undefined, bad);
  assert.equal(newestKmodBehaviour().major, 34);
  assert.equal(parseDepmodVersionOutput('kmod version 34.2\n+ZSTD +XZ -ZLIB +OPENSSL\n'), '34.2');
  assert.equal(parseDepmodVersionOutput('depmod 1.0\n'), undefined);
  assert.throws(() => requestedKmod('27'), /kmod 28 to 34/);
});

test('zstd: kmod 34 sizes a stream by its first frame, and loads it in one call only when that frame is alone', { skip }, () => {
  const data = Buffer.alloc(5000, 7);
  const sized = execFileSync('sh', ['-c', 'f=$(mktemp); cat > "$f"; zstd -q -c "$f"; rm -f "$f"'], { input: data });
  const streamed = execFileSync('zstd', ['-q', '-c'], { input: data });
  assert.equal(zstdFrameSizeKnown(sized), true);
  assert.equal(zstdFrameSizeKnown(streamed), false, 'no content size in the frame header (stdin)');
  assert.equal(zstdFrameSizeKnown(sized.subarray(0, 4)), false, 'no header');
  const skippable = Buffer.from([0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9]);
  const outcome = (b: Uint8Array): string[] =>
    Object.values(loadZstd(b, 1 << 20, undefined)).slice(0, 2).map((r) => ('image' in r ? `image ${r.image.length}` : `${r.errno} ${r.libkmod?.[0] ?? ''}`.trim()));
  assert.deepEqual(outcome(sized), ['image 5000', 'image 5000']);
  assert.deepEqual(outcome(Buffer.concat([sized, skippable])), ['image 5000', 'image 5000'], 'a skippable frame after it');
  assert.deepEqual(outcome(streamed), ['image 5000', 'EINVAL zstd: Failed to determine decompression size']);
  assert.deepEqual(outcome(Buffer.concat([sized, sized])), ['image 10000', 'EINVAL zstd: Destination buffer is too small'], 'two data frames');
  assert.deepEqual(outcome(sized.subarray(0, sized.length - 2)), ['image 5000', "EINVAL zstd: Restored data doesn't match checksum"], 'cut in the checksum');
  assert.deepEqual(outcome(sized.subarray(0, 8)), ['image 0', 'EINVAL zstd: Src size is incorrect'], 'cut in the first block');
  assert.deepEqual(outcome(Buffer.concat([sized, Buffer.from('garbage\n')])), ['EINVAL', 'EINVAL zstd: Src size is incorrect'], 'trailing bytes');
  const flipped = Buffer.from(sized);
  flipped[flipped.length - 1]! ^= 1;
  assert.deepEqual(outcome(flipped), ['EINVAL', "EINVAL zstd: Restored data doesn't match checksum"], 'checksum (fzstd does not check it: xxh64.ts does)');
});

describe('finding the installed kmod', () => {
  const work = mkdtempSync(join(tmpdir(), 'dtx-kmodfind-'));
  const script = (dir: string, body: string): string => {
    mkdirSync(dir, { recursive: true });
    const f = join(dir, 'depmod');
    writeFileSync(f, `#!/bin/sh\n${body}\n`);
    chmodSync(f, 0o755);
    return f;
  };
  it('asks the root\'s own depmod first, passes over depmod-tx\'s front end, remembers the answer', () => {
    const root = join(work, 'r1');
    script(join(root, 'sbin'), `# ${FRONT_END_MARK}\nexec depmod-tx depmod "$@"`);
    script(join(root, 'usr', 'sbin'), 'echo "kmod version 31"; echo "+XZ"');
    assert.deepEqual(depmodCandidates(root, '/x').slice(0, 2), [join(root, 'sbin/depmod.kmod'), join(root, 'usr/sbin/depmod.kmod')]);
    const c = installedKmod(root);
    assert.equal(c.source, 'installed');
    assert.equal(c.behaviour.version, '31');
    assert.equal(c.depmod, join(root, 'usr', 'sbin', 'depmod'));
  });
  it('an unknown version falls back to the newest format with a warning, never an error', () => {
    const root = join(work, 'r2');
    script(join(root, 'sbin'), 'echo "kmod version 99"');
    const c = installedKmod(root);
    assert.equal(c.source, 'fallback');
    assert.equal(c.behaviour.major, 34);
    assert.match(c.warning ?? '', /kmod 99, not one of kmod 28 to 34/);
  });
  it('cleans up', () => rmSync(work, { recursive: true, force: true }));
});

/** A tree that exercises every version difference: weakdeps, a module named twice in modules.order, builtin aliases, exclude. */
function versionTree(root: string): string[] {
  const mods: FixtureTreeModule[] = [
    { path: 'kernel/drivers/core.ko', module: { modinfo: [['alias', 'pci:v00001234d*'], ['softdep', 'pre: helper']], exports: [{ name: 'core_fn', crc: 0x11 }] } },
    { path: 'kernel/drivers/user.ko', module: { modinfo: [['alias', 'usb:v0001p*'], ['weakdep', 'helper extra']], imports: [{ name: 'core_fn', crc: 0x11 }] } },
    { path: 'kernel/drivers/helper.ko.xz', module: { modinfo: [['weakdep', 'core'], ['alias', 'devname:helper'], ['alias', 'char-major-10-200']] } },
    { path: 'kernel/drivers/late.ko', module: { modinfo: [['alias', 'of:N*T*Clate']], imports: [{ name: 'core_fn', crc: 0x11 }] } },
    { path: 'extra/skipme/gone.ko', module: { modinfo: [['alias', 'gone']] } },
  ];
  writeFixtureTree(root, KVER, mods, {
    order: ['kernel/drivers/late.ko', 'kernel/drivers/core.ko', 'kernel/drivers/user.ko', 'kernel/drivers/late.ko', 'kernel/drivers/helper.ko'],
    builtin: ['kernel/fs/ext4/ext4.ko', 'kernel/crypto/crc32c_generic.ko'],
    builtinModinfo: [
      ['ext4', 'alias', 'fs-ext4'],
      ['ext4', 'license', 'GPL'],
      ['crc32c_generic', 'alias', 'crypto-crc32c'],
      ['crc32c_generic', 'alias', 'crc32c-generic'],
    ],
    depmodConf: { 'etc/depmod.d/x.conf': 'exclude skipme\n' },
  });
  return depmodConfigArgs(root, { 'etc/depmod.d/x.conf': '' });
}

function oracleCases(): DepmodOracle[] {
  return skip ? [] : [kmod30(), kmod34(), ...localKmodBuilds()];
}

for (const oracle of oracleCases()) {
  test(`fixture tree in kmod ${oracle.version}'s format: --kmod-version and the depmod found on PATH both equal ${oracle.name}`, () => {
    const work = mkdtempSync(join(tmpdir(), 'dtx-kmodver-'));
    try {
      const root = join(work, 'r');
      const cfg = versionTree(root);
      const theirs = oracleFiles(root, KVER, cfg, { oracle });
      const out = join(work, 'o');
      mkdirSync(out);
      const byOption = cli(['rebuild', '-b', root, ...cfg, '--kmod-version', oracle.version, '-o', out, KVER]);
      assert.equal(byOption.status, 0, byOption.stderr);
      assert.deepEqual(diffFileSets(outputFiles(out), theirs), [], '--kmod-version');
      // Found by itself: this oracle is the only depmod on PATH.
      const env = { PATH: `${oracle.binDir}:/usr/bin:/bin` };
      const byPath = cli(['update', '-b', root, ...cfg, KVER], { env });
      assert.equal(byPath.status, 0, byPath.stderr);
      assert.deepEqual(diffFileSets(outputFiles(join(root, 'lib', 'modules', KVER)), theirs), [], 'found on PATH');
      assert.equal(theirs.has('modules.weakdep'), kmodBehaviour(oracle.version)!.writesWeakdep);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

test('a kmod upgrade inside a journaled transaction rewrites the database in the new kmod\'s format; a scan alone does too', { skip }, () => {
  const work = mkdtempSync(join(tmpdir(), 'dtx-kmodup-'));
  try {
    const root = join(work, 'r');
    // commit reads depmod.d inside the root (no -C); the oracles get the same directory as -C.
    const cfg = versionTree(root);
    const moddir = join(root, 'lib', 'modules', KVER);
    const old = kmod30();
    const next = kmod34();
    const first = cli(['commit', '-b', root, '--scan'], { env: { PATH: `${old.binDir}:/usr/bin:/bin` } });
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(diffFileSets(outputFiles(moddir), oracleFiles(root, KVER, cfg, { oracle: old })), [], 'kmod 30 format first');
    // One transaction: kmod upgraded to 34, and a KMP installed (its file recorded by the hooks).
    writeFileSync(join(moddir, 'extra', 'kmp.ko'), buildModuleElf({ modinfo: [['alias', 'kmp'], ['weakdep', 'core']], imports: [{ name: 'core_fn', crc: 0x11 }] }));
    const env = { PATH: `${next.binDir}:/usr/bin:/bin` };
    assert.equal(cli(['record', '-b', root, '--op', 'add', `/lib/modules/${KVER}/extra/kmp.ko`], { env }).status, 0);
    const second = cli(['commit', '-b', root], { env });
    assert.equal(second.status, 0, second.stderr);
    assert.deepEqual(diffFileSets(outputFiles(moddir), oracleFiles(root, KVER, cfg, { oracle: next })), [], `kmod 34 format after the upgrade:\n${second.stdout}${second.stderr}`);
    const weakdep = readFileSync(join(moddir, 'modules.weakdep'));
    // Back to kmod 30 (a downgrade) with nothing journaled: the dpkg trigger's scan rewrites it.
    const third = cli(['commit', '-b', root, '--scan'], { env: { PATH: `${old.binDir}:/usr/bin:/bin` } });
    assert.equal(third.status, 0, third.stderr);
    // kmod 30 does not know modules.weakdep: like its depmod, depmod-tx leaves kmod 34's file alone.
    const now = outputFiles(moddir);
    assert.deepEqual(now.get('modules.weakdep'), weakdep);
    now.delete('modules.weakdep');
    assert.deepEqual(diffFileSets(now, oracleFiles(root, KVER, cfg, { oracle: old })), [], 'kmod 30 format again');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
