// Issue 11 point 7, "a removed kernel": after its package is removed, a kernel's module directory
// may stay behind holding only the modules.* database (files no package owns). The trigger that
// follows must not write a near-empty database into it, must drop the kernel's cache, and status
// must say the kernel was removed, also once the directory is gone entirely (purge).
import assert from 'node:assert/strict';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BASE_ORDER, BASE_TREE, runCli, withCliRoot } from '../support/cli.ts';
import { realKernelSkipReason } from '../support/kernels.ts';
import { outputFiles } from '../merge/oracle-dir.ts';

const skip = realKernelSkipReason();

/** What dpkg -r of the kernel package leaves: every file it shipped removed (modules, modules.order). */
function removeKernelPackage(moddir: string): void {
  for (const f of [...BASE_TREE.map((m) => m.path), 'modules.order']) rmSync(join(moddir, f));
  rmSync(join(moddir, 'kernel'), { recursive: true });
}

function stamps(moddir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(moddir).map((f) => [f, `${statSync(join(moddir, f)).mtimeMs}:${statSync(join(moddir, f)).size}`]));
}

test('kernel removed with its events journaled: no database written, cache dropped, status says removed (and after purge)', { skip }, () => {
  withCliRoot(({ root, kvers }) => {
    const [k, other] = [kvers[0]!, kvers[1]!];
    for (const kv of kvers) assert.equal(runCli(['update', '--root', root, kv]).code, 0);
    const moddir = join(root, 'lib', 'modules', k);
    const db = outputFiles(moddir);
    removeKernelPackage(moddir);
    const before = stamps(moddir);
    const rec = runCli(['record', '--root', root, '--op', 'remove', '--package', `linux-image-${k}`, '-'], { input: BASE_ORDER.map((p) => `/lib/modules/${k}/${p}\n`).join('') });
    assert.equal(rec.code, 0, rec.stderr);
    const c = runCli(['commit', '--root', root]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, new RegExp(`^${k}: kernel removed \\(no modules left\\), no database written; dropped 2 event\\(s\\) and the cache$`, 'm'));
    assert.deepEqual(stamps(moddir), before, 'nothing written into the leftover directory');
    assert.deepEqual([...outputFiles(moddir).keys()], [...db.keys()]);
    assert.ok(!readdirSync(join(root, 'var', 'cache', 'depmod-tx')).includes(`${k}.cache`), 'cache dropped');
    assert.ok(readdirSync(join(root, 'var', 'cache', 'depmod-tx')).includes(`${other}.cache`), "the other kernel's cache stays");

    const st = runCli(['status', '--root', root]);
    assert.match(st.stdout, new RegExp(`^last: ${k} at \\S+: kernel removed`, 'm'), st.stdout);
    assert.equal(JSON.parse(runCli(['status', '--root', root, '--json']).stdout).last[k].status, 'removed');
    rmSync(moddir, { recursive: true });
    assert.match(runCli(['status', '--root', root]).stdout, new RegExp(`^last: ${k} at \\S+: kernel removed`, 'm'));
    assert.equal(runCli(['update', '--root', root, k]).code, 66, 'nothing to update once purged');
  });
});

test('kernel removed by plain dpkg -r (no journal, commit --scan): no database written; purged later: status says removed', { skip }, () => {
  withCliRoot(({ root, kvers }) => {
    const [k, other] = [kvers[0]!, kvers[1]!];
    for (const kv of kvers) assert.equal(runCli(['update', '--root', root, kv]).code, 0);
    const moddir = join(root, 'lib', 'modules', k);
    removeKernelPackage(moddir);
    const before = stamps(moddir);
    const c = runCli(['commit', '--root', root, '--scan', '--json']);
    assert.equal(c.code, 0, c.stderr);
    const kernels = JSON.parse(c.stdout).kernels as Array<{ kver: string; status: string }>;
    assert.deepEqual(kernels.find((x) => x.kver === k)?.status, 'removed', c.stdout);
    assert.deepEqual(stamps(moddir), before);
    assert.match(runCli(['status', '--root', root]).stdout, new RegExp(`^last: ${k} at \\S+: kernel removed`, 'm'));

    // Purged without any commit in between: the other kernel was merged last, this one's directory vanishes.
    const o = join(root, 'lib', 'modules', other);
    assert.equal(runCli(['commit', '--root', root, '--scan']).code, 0);
    assert.doesNotMatch(runCli(['status', '--root', root]).stdout, new RegExp(`last: ${other} at \\S+: kernel removed`));
    rmSync(o, { recursive: true });
    const st = runCli(['status', '--root', root, '--json']);
    assert.equal(JSON.parse(st.stdout).last[other]?.status, 'removed', st.stdout);
  });
});
