// Issue 11 point 2, "exit codes disagree with the README": every row of the table (EXIT_CODES,
// which --help, the man page and README show) produced by the built CLI from a real situation,
// and nothing left behind by a command refused before any work.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { renderExitCodesMarkdown } from '../../src/cli/docs.ts';
import { EXIT_CODES } from '../../src/cli/exit-codes.ts';
import { BASE_ORDER, runCli, withCliRoot, type CliRoot } from '../support/cli.ts';
import { writeFixtureTree } from '../support/fixture-tree.ts';
import { realKernelSkipReason, repoRoot } from '../support/kernels.ts';

const skip = realKernelSkipReason();

/** Holds ROOT's lock of `kver` from another process (flock(1), as depmod-tx itself does) while `body` runs. */
function whileLocked(root: string, kver: string, body: () => void): void {
  const file = join(root, 'var', 'cache', 'depmod-tx', `${kver}.lock`);
  spawnSync('mkdir', ['-p', join(root, 'var', 'cache', 'depmod-tx')]);
  // Its own process group, so the sleep that inherits the lock goes with it.
  const holder = spawn('flock', ['-x', file, 'sleep', '60'], { stdio: 'ignore', detached: true });
  try {
    const until = Date.now() + 10_000;
    while (spawnSync('flock', ['-n', file, 'true']).status === 0) {
      if (Date.now() > until) throw new Error('lock holder did not take the lock');
      spawnSync('sleep', ['0.05']);
    }
    body();
  } finally {
    process.kill(-holder.pid!, 'SIGTERM');
  }
}

type Scenario = (r: CliRoot) => { code: number | null; stderr: string; note: string };

const scenarios: Record<number, Scenario> = {
  0: ({ root }) => ({ ...runCli(['status', '--root', root]), note: 'status of a root with nothing pending' }),
  3: ({ root, kvers }) => {
    writeFixtureTree(root, kvers[0]!, [{ path: 'updates/stale.ko', module: { imports: [{ name: 'core_fn', crc: 0x11 }] } }], { order: BASE_ORDER });
    return { ...runCli(['update', '--root', root, '--strict', kvers[0]!]), note: 'update --strict with a CRC mismatch' };
  },
  4: ({ root, kvers }) => {
    writeFileSync(join(root, 'lib', 'modules', kvers[0]!, 'kernel', 'drivers', 'cut.ko'), 'junk\n');
    return { ...runCli(['update', '--root', root, '--strict', kvers[0]!]), note: 'update --strict with a module file kmod cannot load' };
  },
  64: ({ root }) => ({ ...runCli(['status', '--root', root, '--bogus']), note: 'unknown option' }),
  65: ({ root }) => {
    const script = join(root, 'postinst');
    writeFileSync(script, '#!/bin/sh\nset -e\ndepmod -a 6.1.0-9-amd64\n');
    return { ...runCli(['replay', '--root', root, script]), note: 'replay of a file that is no journal, path list or package manager log' };
  },
  66: ({ root }) => ({ ...runCli(['update', '--root', root, '9.9.9-missing']), note: 'update of a kernel whose module directory does not exist' }),
  70: ({ root, kvers }) => ({ ...runCli(['rebuild', '--root', root, kvers[0]!], { env: { DEPMOD_TX_FAULT_AT: 'after-outputs' } }), note: 'an untyped error (a bug) inside a merge' }),
  74: ({ root, kvers }) => {
    const file = join(root, 'not-a-dir');
    writeFileSync(file, '');
    return { ...runCli(['rebuild', '--root', root, '--outdir', join(file, 'out'), kvers[0]!]), note: '--outdir that cannot be created' };
  },
  75: ({ root, kvers }) => {
    let r: ReturnType<typeof runCli> | undefined;
    whileLocked(root, kvers[0]!, () => {
      r = runCli(['update', '--root', root, '--lock-timeout', '0.3', kvers[0]!]);
    });
    return { ...r!, note: 'kernel lock held by another process past --lock-timeout' };
  },
  78: ({ root, kvers }) => ({ ...runCli(['rebuild', '--root', root, '-C', join(root, 'etc', 'depmod.d.typo'), kvers[0]!]), note: '--config path that does not exist' }),
};

test('every exit code of the table has a scenario that produces it', { skip }, () => {
  assert.deepEqual(Object.keys(scenarios).map(Number).sort((a, b) => a - b), EXIT_CODES.map((e) => e.code));
  for (const { code } of EXIT_CODES) {
    withCliRoot((r) => {
      const got = scenarios[code]!(r);
      assert.equal(got.code, code, `${got.note}: expected exit ${code}, got ${got.code}\n${got.stderr}`);
      if (code !== 0) assert.match(got.stderr, /^depmod-tx: /m, `${got.note}: says why`);
    });
  }
});

test('missing inputs exit 66 with a message naming them, and leave nothing behind under --root', { skip }, () => {
  withCliRoot(({ root, kvers }) => {
    const k = kvers[0]!;
    const upd = runCli(['update', '--root', root, '9.9.9-missing']);
    assert.equal(upd.code, 66);
    assert.match(upd.stderr, new RegExp(`${root}/lib/modules/9\\.9\\.9-missing: module directory not found`));
    assert.ok(!existsSync(join(root, 'var')), 'no lock file, no state directory created for a missing kernel');

    const ko = join(root, 'missing.ko');
    const check = runCli(['check', '--root', root, k, ko]);
    assert.equal(check.code, 66, check.stderr);
    assert.match(check.stderr, new RegExp(`${ko}: cannot read module: ENOENT`));
    const replay = runCli(['replay', '--root', root, join(root, 'missing-file')]);
    assert.equal(replay.code, 66, replay.stderr);
    assert.match(replay.stderr, /missing-file: cannot read log to replay: ENOENT/);
    assert.equal(runCli(['inspect', ko]).code, 66);
    const sym = runCli(['update', '--root', root, '--symvers', join(root, 'Module.symvers'), k]);
    assert.equal(sym.code, 66, sym.stderr);
    assert.match(sym.stderr, /Module\.symvers: Module\.symvers not found/);
    assert.equal(runCli(['apt-hook', '--root', root, '--input', join(root, 'no-such-input')]).code, 66);
    assert.ok(!existsSync(join(root, 'var', 'cache')), 'refused before any lock was taken');
  });
});

test('README, --help and the man page show the same exit-code table', () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  assert.ok(readme.includes(`${renderExitCodesMarkdown()}\n`), 'README "Exit codes" is the table of src/cli/exit-codes.ts (node --import tsx scripts/docs.ts --readme)');
  const help = runCli(['--help']).stdout;
  const man = readFileSync(join(repoRoot, 'dist', 'depmod-tx.1'), 'utf8');
  for (const { code } of EXIT_CODES) {
    assert.match(help, new RegExp(`^  ${code} +\\S`, 'm'), `--help lists exit ${code}`);
    assert.match(man, new RegExp(`^\\.B ${code}$`, 'm'), `man page lists exit ${code}`);
  }
});
