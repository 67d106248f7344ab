// Damaged modules whose fate depends on the kmod (issue 26):
//  - a file kmod 34 reads otherwise than kmod 30 (an unterminated __ksymtab_strings: kmod 34 fails
//    kmod_module_get_symbols, prints "failed to load symbols" and keeps the module's .modinfo and
//    imports; kmod 30 reads its exports). The module cache holds the reading of the kmod it wrote
//    for: when the installed kmod changes generation, exactly such files are read again, and each
//    database equals that kmod's depmod -a;
//  - a file on which kmod's depmod dies (a libkmod assertion): depmod-tx writes nothing either,
//    exit 65 naming the file, the database left as it was.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { kmodBehaviour } from '../../src/depmod/kmod-version.ts';
import { KmodAbortError } from '../../src/errors.ts';
import { merge } from '../../src/merge/merge.ts';
import { buildModuleElf } from '../support/fixture-elf.ts';
import { writeFixtureTree } from '../support/fixture-tree.ts';
import { kmod30, kmod34, runOracle, type DepmodOracle } from '../support/kmod-oracles.ts';
import { realKernelSkipReason } from '../support/kernels.ts';
import { diffFileSets, outputFiles } from './oracle-dir.ts';

const skip = realKernelSkipReason();
const KVER = '6.1.0-26-test';

/** Byte offset and size of the section called `name` (ELF64 LE fixture). */
function sectionRange(b: Uint8Array, name: string): { offset: number; size: number; header: number } {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const shoff = Number(v.getBigUint64(40, true));
  const shnum = v.getUint16(60, true);
  const names = Number(v.getBigUint64(shoff + v.getUint16(62, true) * 64 + 24, true));
  for (let i = 1; i < shnum; i++) {
    const h = shoff + i * 64;
    const at = names + v.getUint32(h, true);
    if (Buffer.from(b.subarray(at, b.indexOf(0, at))).toString('latin1') === name) {
      return { offset: Number(v.getBigUint64(h + 24, true)), size: Number(v.getBigUint64(h + 32, true)), header: h };
    }
  }
  throw new Error(`no ${name}`);
}

/** kmod's depmod -a on a copy of the tree as it is (files of an earlier kmod left in place, as they would be): its files. */
function oracleFiles(root: string, oracle: DepmodOracle): { files: Map<string, Uint8Array>; stderr: string } {
  const copy = mkdtempSync(join(tmpdir(), 'dtx-kmodgen-oracle-'));
  try {
    cpSync(root, copy, { recursive: true });
    const moddir = join(copy, 'lib', 'modules', KVER);
    const r = runOracle(oracle, ['-b', copy, '-a', KVER]);
    assert.equal(r.status, 0, r.stderr);
    return { files: outputFiles(moddir), stderr: r.stderr.replaceAll(copy, root) };
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

test('a file kmod 34 reads otherwise is read again when the kmod changes generation; each database is that kmod\'s', { skip }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'dtx-kmodgen-'));
  try {
    const moddir = writeFixtureTree(root, KVER, [
      { path: 'kernel/lib/base.ko', module: { exports: [{ name: 'base_fn', crc: 0x11 }] } },
      { path: 'kernel/drivers/user.ko', module: { modinfo: [['alias', 'pci:v1*']], imports: [{ name: 'base_fn', crc: 0x11 }, { name: 'div_fn' }] } },
    ], { order: ['kernel/lib/base.ko', 'kernel/drivers/user.ko'] });
    // Unversioned exports come from __ksymtab_strings; its last string loses its NUL.
    const div = buildModuleElf({ modinfo: [['alias', 'usb:v2*'], ['softdep', 'pre: base']], exports: [{ name: 'div_fn' }], imports: [{ name: 'base_fn' }] });
    const ks = sectionRange(div, '__ksymtab_strings');
    div[ks.offset + ks.size - 1] = 0x78;
    writeFileSync(join(moddir, 'kernel/drivers/div.ko'), div);

    const run = (version: string) => merge({ root, kver: KVER, config: [], kmod: kmodBehaviour(version)! });
    for (const [step, oracle, parsed] of [['kmod 30, no cache', kmod30(), 3], ['kmod 34: only div.ko again', kmod34(), 1], ['kmod 30 again', kmod30(), 1], ['kmod 30, nothing to do', kmod30(), 0]] as const) {
      const r = await run(oracle.version);
      const theirs = oracleFiles(root, oracle);
      assert.deepEqual(diffFileSets(outputFiles(moddir), theirs.files), [], `${step}: files`);
      assert.equal(r.parsed, parsed, `${step}: parsed`);
      const failed = r.warnings.filter((w) => w.startsWith('ERROR: failed to load symbols from '));
      assert.deepEqual(failed.map((w) => `depmod: ${w}`), theirs.stderr.split('\n').filter((l) => l.startsWith('depmod: ERROR: failed to load symbols')), step);
      assert.equal(failed.length, oracle.name === 'kmod34' ? 1 : 0, step);
      assert.deepEqual(r.unreadable.map((u) => u.module), oracle.name === 'kmod34' ? ['div'] : [], step);
    }
    // kmod 34 keeps what the other two calls read: div's alias and softdep, and its dependency.
    await run(kmod34().version);
    assert.match(readFileSync(join(moddir, 'modules.alias'), 'latin1'), /alias usb:v2\* div/);
    assert.match(readFileSync(join(moddir, 'modules.dep'), 'latin1'), /^kernel\/drivers\/div\.ko: kernel\/lib\/base\.ko$/m);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a file kmod\'s depmod dies on: nothing written, KmodAbortError naming it (exit 65), the old database kept', { skip }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'dtx-kmodabort-'));
  try {
    const moddir = writeFixtureTree(root, KVER, [{ path: 'kernel/lib/base.ko', module: { exports: [{ name: 'base_fn', crc: 0x11 }] } }]);
    await merge({ root, kver: KVER, config: [] });
    const before = outputFiles(moddir);
    const bad = buildModuleElf({ modinfo: [['alias', 'x']] });
    new DataView(bad.buffer, bad.byteOffset).setUint16(62, 0, true); // e_shstrndx: no section
    writeFileSync(join(moddir, 'kernel/lib/bad.ko'), bad);
    for (const oracle of [kmod30(), kmod34()]) {
      const copy = mkdtempSync(join(tmpdir(), 'dtx-kmodabort-oracle-'));
      cpSync(root, copy, { recursive: true });
      const r = runOracle(oracle, ['-b', copy, '-a', KVER]);
      rmSync(copy, { recursive: true, force: true });
      assert.equal(r.signal, 'SIGABRT', `${oracle.name} dies on it: ${r.stderr}`);
      await assert.rejects(merge({ root, kver: KVER, config: [], kmod: kmodBehaviour(oracle.version)! }), (e: unknown) => {
        assert.ok(e instanceof KmodAbortError, String(e));
        assert.equal(e.file, 'kernel/lib/bad.ko');
        assert.equal(e.kind, 'format');
        assert.match(e.message, /kmod's depmod aborts on this module \(libkmod assertion `idx != SHN_UNDEF' fails/);
        return true;
      });
      assert.deepEqual(diffFileSets(outputFiles(moddir), before), [], 'the database as it was');
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
