// Issue 11 points 3, 4 and 8: paths and files as the built CLI handles them. A missing --outdir is
// created (depmod -o creates its output directory too) instead of failing after the parse on a
// temporary file; a relative --root is the same root as its absolute spelling (one cache, no-op
// path taken); the modules.* files are 0644 whatever the umask. Outputs compared with depmod -a.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { test } from 'node:test';
import { BUILT_BIN, runCli, withCliRoot } from '../support/cli.ts';
import { realKernelSkipReason } from '../support/kernels.ts';
import { diffFileSets, oracleFiles, outputFiles } from '../merge/oracle-dir.ts';

const skip = realKernelSkipReason();

test('--outdir that does not exist is created, and holds what depmod -a writes', { skip }, () => {
  withCliRoot(({ root, kvers, cfg }) => {
    const k = kvers[0]!;
    const out = join(root, 'out', 'deeper', 'still');
    const r = runCli(['rebuild', '--root', root, '--outdir', out, k]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /ENOENT|\.tmp/);
    assert.deepEqual(diffFileSets(outputFiles(out), oracleFiles(root, k, ['-C', cfg])), []);
    assert.deepEqual(readdirSync(join(root, 'lib', 'modules', k)).filter((f) => f.startsWith('modules.') && f !== 'modules.order'), [], 'the module directory stays untouched');
    const u = runCli(['update', '--root', root, '--outdir', join(root, 'out2'), k]);
    assert.equal(u.code, 0, u.stderr);
    assert.deepEqual(diffFileSets(outputFiles(join(root, 'out2')), oracleFiles(root, k, ['-C', cfg])), []);
  });
});

test('a relative --root is the root it names: the cache written with the absolute path serves it, and back', { skip }, () => {
  withCliRoot(({ root, kvers }) => {
    const k = kvers[0]!;
    const cwd = dirname(root);
    const rel = relative(cwd, root);
    assert.ok(!rel.startsWith('/'));
    assert.equal(runCli(['rebuild', '--root', root, k]).code, 0);
    // The first update checks KABI, which a plain rebuild did not: it recomputes once.
    assert.equal(runCli(['update', '--root', root, k]).code, 0);
    const viaRel = runCli(['update', '--root', rel, '--json', k], { cwd });
    assert.equal(viaRel.code, 0, viaRel.stderr);
    const j = JSON.parse(viaRel.stdout);
    assert.equal(j.noop, true, `relative root took the no-op path (fullReason: ${j.fullReason})`);
    assert.equal(j.fullReason, null);
    assert.equal(j.moddir, join(root, 'lib', 'modules', k), 'reported paths are absolute');
    // And a merge through the relative root leaves a cache the absolute spelling trusts.
    assert.equal(runCli(['update', '--root', rel, '--full-scan', k], { cwd }).code, 0);
    const back = JSON.parse(runCli(['update', '--root', root, '--json', k]).stdout);
    assert.equal(back.noop, true, `absolute after relative: ${back.fullReason}`);
    // Other path options too: a relative --outdir lands under the working directory.
    assert.equal(runCli(['rebuild', '--root', '.', '--outdir', 'rel-out', k], { cwd: root }).code, 0);
    assert.ok(statSync(join(root, 'rel-out', 'modules.dep')).isFile());
  });
});

test('under umask 077 the modules.* files are still 0644 (modinfo and modprobe run as users read them)', { skip }, () => {
  withCliRoot(({ root, kvers }) => {
    const k = kvers[0]!;
    const moddir = join(root, 'lib', 'modules', k);
    const sh = (args: string[]) => spawnSync('sh', ['-c', 'umask 077 && exec "$@"', 'sh', process.execPath, BUILT_BIN, ...args], { encoding: 'utf8' });
    const r = sh(['rebuild', '--root', root, k]);
    assert.equal(r.status, 0, r.stderr);
    const modes = (dir: string) => Object.fromEntries(readdirSync(dir).filter((f) => f.startsWith('modules.') && f !== 'modules.order').map((f) => [f, (statSync(join(dir, f)).mode & 0o777).toString(8)]));
    const expectAll644 = (dir: string, what: string) => {
      const m = modes(dir);
      assert.ok(Object.keys(m).length >= 9, what);
      assert.deepEqual(Object.entries(m).filter(([, v]) => v !== '644'), [], `${what}: ${JSON.stringify(m)}`);
    };
    expectAll644(moddir, 'rebuild');
    // An update rewrites only what changed: those files too.
    spawnSync('rm', [join(moddir, 'kernel', 'drivers', 'a.ko')]);
    const u = sh(['update', '--root', root, k]);
    assert.equal(u.status, 0, u.stderr);
    expectAll644(moddir, 'update');
    assert.equal((statSync(join(root, 'var', 'cache', 'depmod-tx', `${k}.cache`)).mode & 0o777).toString(8), '644', 'the cache too');
    const out = join(root, 'out');
    assert.equal(sh(['rebuild', '--root', root, '--outdir', out, k]).status, 0);
    expectAll644(out, '--outdir');
  });
});
