// Issue 11 point 1, "a no-op merge erases known KABI findings": the demo's scenario through the
// built CLI. A module built against another core.ko arrives in a replayed transaction; replaying
// the same log again, `update` of the unchanged tree, `status` and `check` must all still report
// its CRC mismatch, and `--strict` must fail on the no-op as it did when the module arrived.
// Expectations about the mismatch itself come from Debian's depmod -e -E on the same tree.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BASE_ORDER, runCli, withCliRoot } from '../support/cli.ts';
import { writeFixtureTree, type FixtureTreeModule } from '../support/fixture-tree.ts';
import { realKernelSkipReason } from '../support/kernels.ts';

const skip = realKernelSkipReason();
const stale: FixtureTreeModule[] = [{ path: 'updates/dkms/stale.ko', module: { imports: [{ name: 'core_fn', crc: 0x11 }, { name: 'printk', crc: 0x1234 }] } }];
const MISMATCH = /updates\/dkms\/stale\.ko disagrees about version of symbol core_fn/;

/** Writes the kernel's Module.symvers where linux-headers puts it (update discovers it there). */
function installHeaders(root: string, kver: string): string {
  const dir = join(root, 'usr', 'src', `linux-headers-${kver}`);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'Module.symvers');
  writeFileSync(file, '0x00001234\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n0x00000010\tcore_fn\tkernel/lib/core\tEXPORT_SYMBOL\t\n');
  return file;
}

/** depmod -e -E's warnings for the tree: the oracle for what must be reported. */
function oracleWarnings(root: string, kver: string, symvers: string, cfg: string): string[] {
  const r = spawnSync('depmod', ['-b', root, '-C', cfg, '-e', '-E', symvers, '-n', '-a', kver], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stderr.split('\n').filter((l) => l.includes('disagrees about version') || l.includes('needs unknown symbol'));
}

test('known KABI findings survive merges that change nothing: replay twice, status, update --strict no-op, check agree', { skip }, () => {
  withCliRoot(({ root, kvers, cfg }) => {
    const k = kvers[0]!;
    const symvers = installHeaders(root, k);
    assert.equal(runCli(['rebuild', '--root', root, k]).code, 0);
    writeFixtureTree(root, k, stale, { order: BASE_ORDER });
    const expected = oracleWarnings(root, k, symvers, cfg);
    assert.equal(expected.length, 1, `depmod -e finds one problem: ${expected.join('\n')}`);
    assert.match(expected[0]!, MISMATCH);

    const log = join(root, 'saved.jsonl');
    writeFileSync(log, `${JSON.stringify({ op: 'add', path: `/lib/modules/${k}/updates/dkms/stale.ko`, package: 'stale-kmp' })}\n`);
    const first = runCli(['replay', '--root', root, log]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, MISMATCH);
    assert.match(first.stdout, new RegExp(`${k}: changed .*KABI: 0 unknown symbol\\(s\\), 1 CRC mismatch\\(es\\)`));

    const second = runCli(['replay', '--root', root, log]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, new RegExp(`${k}: unchanged, .*KABI: 0 unknown symbol\\(s\\), 1 CRC mismatch\\(es\\)`), second.stdout);
    assert.match(second.stderr, MISMATCH, 'the second merge repeats the finding');

    const st = runCli(['status', '--root', root]);
    assert.match(st.stdout, new RegExp(`last: ${k} at .*: merged, KABI: 0 unknown symbol\\(s\\), 1 CRC mismatch\\(es\\)`), st.stdout);
    assert.deepEqual(JSON.parse(runCli(['status', '--root', root, '--json']).stdout).last[k].kabi, { against: 'symvers', unknown: 0, mismatched: 1 });

    // The no-op path proper: no hint, nothing changed.
    const noop = runCli(['update', '--root', root, '--strict', '--json', k]);
    assert.equal(noop.code, 3, `--strict on a no-op fails like the merge that brought the module: ${noop.stderr}`);
    const j = JSON.parse(noop.stdout);
    assert.equal(j.noop, true);
    assert.equal(j.kabiAgainst, 'symvers');
    assert.equal(j.symvers, symvers);
    assert.deepEqual(j.kabi.map((f: Record<string, unknown>) => [f.kind, f.module, f.symbol, f.expected, f.found, f.provider]), [['crc-mismatch', 'stale', 'core_fn', '0x00000011', '0x00000010', 'core']]);
    assert.deepEqual(j.kabi.map((f: { message: string }) => `depmod: WARNING: ${f.message}`), expected, 'the same wording as depmod -e');
    assert.equal(runCli(['update', '--root', root, k]).code, 0, 'without --strict a finding is a warning');

    const check = runCli(['check', '--root', root, k, join(root, 'lib', 'modules', k, 'updates', 'dkms', 'stale.ko')]);
    assert.equal(check.code, 3);
    assert.match(check.stdout, MISMATCH);

    // Fixed module: the known finding goes away with it.
    writeFixtureTree(root, k, [{ path: 'updates/dkms/stale.ko', module: { imports: [{ name: 'core_fn', crc: 0x10 }, { name: 'printk', crc: 0x1234 }] } }], { order: BASE_ORDER });
    const fixed = runCli(['update', '--root', root, '--strict', '--json', k, 'updates/dkms/stale.ko']);
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.deepEqual(JSON.parse(fixed.stdout).kabi, []);
    assert.deepEqual(JSON.parse(runCli(['update', '--root', root, '--strict', '--json', k]).stdout).noop, true);
  });
});

test('findings are recomputed when what they were checked against changes: linux-headers installed after the module', { skip }, () => {
  withCliRoot(({ root, kvers }) => {
    const k = kvers[0]!;
    writeFixtureTree(root, k, stale, { order: BASE_ORDER });
    assert.equal(runCli(['rebuild', '--root', root, k]).code, 0);
    const before = JSON.parse(runCli(['update', '--root', root, '--json', k]).stdout);
    assert.equal(before.kabiAgainst, 'modules', 'no symvers yet: only module CRCs compared');
    assert.equal(before.kabi.length, 1);
    const noop = JSON.parse(runCli(['update', '--root', root, '--json', k]).stdout);
    assert.equal(noop.noop, true);
    assert.equal(noop.kabiAgainst, 'modules');

    installHeaders(root, k);
    const after = JSON.parse(runCli(['update', '--root', root, '--json', k]).stdout);
    assert.equal(after.noop, false, 'a new Module.symvers is not the state the findings were computed for');
    assert.equal(after.kabiAgainst, 'symvers');
    assert.equal(after.kabi.length, 1);
    assert.equal(JSON.parse(runCli(['update', '--root', root, '--json', k]).stdout).noop, true);
  });
});
