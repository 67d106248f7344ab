import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { merge } from '../../src/merge/merge.ts';
import { commit } from '../../src/txn/commit.ts';
import { readJournal } from '../../src/txn/journal.ts';
import { updateMerge } from '../../src/txn/merge-adapter.ts';
import { recordEvents } from '../../src/txn/record.ts';
import { cloneRoot, DEPMOD_OUTPUTS, oracleDepmod, realKernel, realKernelSkipReason } from '../support/kernels.ts';

const CHILD = fileURLToPath(new URL('./child-commit-real.ts', import.meta.url));

test('commit killed before its renames, then commit again: byte-identical to Debian depmod on the changed tree', { skip: realKernelSkipReason() ?? false }, async (t) => {
  const k = realKernel('cloud-amd64');
  const work = mkdtempSync(join(tmpdir(), 'depmod-tx-realcommit-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const root = join(work, 'root');
  cloneRoot(k.root, root);
  const moddir = join(root, 'lib/modules', k.kver);
  await merge({ root, kver: k.kver, symvers: 'auto', workers: 2 }); // the state before the transaction

  // The transaction: a package removes two modules and moves one to updates/ (remove + add).
  const netDir = join(moddir, 'kernel/drivers/net');
  const nets = readdirSync(netDir).filter((f) => f.includes('.ko')).sort();
  assert.ok(nets.length >= 3);
  const [gone1, gone2, moved] = nets as [string, string, string];
  unlinkSync(join(netDir, gone1));
  unlinkSync(join(netDir, gone2));
  mkdirSync(join(moddir, 'updates'), { recursive: true });
  renameSync(join(netDir, moved), join(moddir, 'updates', moved));
  const rel = (p: string) => `/lib/modules/${k.kver}/${p}`;
  await recordEvents({ root, op: 'remove', package: 'pkg', txn: 'tx', paths: [rel(`kernel/drivers/net/${gone1}`), rel(`kernel/drivers/net/${gone2}`), rel(`kernel/drivers/net/${moved}`)] });
  await recordEvents({ root, op: 'add', package: 'pkg', txn: 'tx', paths: [rel(`updates/${moved}`)] });

  const child = spawnSync(process.execPath, ['--import', 'tsx', CHILD, root], { encoding: 'utf8', env: { ...process.env, DEPMOD_TX_CRASH_AT: 'before-rename:modules.dep' } });
  assert.equal(child.signal, 'SIGKILL', `child should die at the crash point: ${child.stderr}`);
  assert.equal((await readJournal(root)).events.length, 4, 'journal intact after the crash');

  const s = await commit({ root, merge: updateMerge({ workers: 2 }), lockTimeoutMs: 10_000 });
  assert.equal(s.kernels[0]?.status, 'merged', JSON.stringify(s));
  assert.equal(s.kernels[0]?.changed, true);
  assert.equal((await readJournal(root)).events.length, 0);

  const oracle = join(work, 'oracle');
  cloneRoot(root, oracle);
  oracleDepmod(oracle, k.kver);
  for (const f of DEPMOD_OUTPUTS) {
    const ours = readFileSync(join(moddir, f));
    const theirs = readFileSync(join(oracle, 'lib/modules', k.kver, f));
    assert.ok(ours.equals(theirs), `${f} differs from depmod's`);
  }
  // Nothing pending: a further commit does nothing.
  assert.deepEqual((await commit({ root, merge: updateMerge() })).kernels, []);
});
