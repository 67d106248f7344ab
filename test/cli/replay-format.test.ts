// Issue 11 point 6: `replay` of a file that is neither a depmod-tx journal nor a path list (tried:
// /var/log/dpkg.log, /var/log/apt/history.log) printed one "refused: not an absolute path" line per
// input line and exited 64. It must say once what the file is not and what replay takes, exit 65
// (malformed input file), and record nothing, not even from the good files named with it.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BASE_ORDER, runCli, withCliRoot } from '../support/cli.ts';
import { writeFixtureTree } from '../support/fixture-tree.ts';
import { realKernelSkipReason } from '../support/kernels.ts';

const skip = realKernelSkipReason();

// The shapes of the real files (dpkg(1) "LOG FILE FORMAT", apt's history.log): 200 lines each.
const dpkgLog = Array.from({ length: 100 }, (_, i) => `2026-11-30 10:00:${String(i % 60).padStart(2, '0')} status half-configured linux-image-6.1.0-${i}-amd64:amd64 6.1.99-1\n2026-11-30 10:00:${String(i % 60).padStart(2, '0')} install kmod:amd64 <none> 30+20221128-1\n`).join('');
const historyLog = Array.from({ length: 40 }, (_, i) => `\nStart-Date: 2026-11-30  10:0${i % 10}:00\nCommandline: apt-get install linux-image-amd64\nInstall: linux-image-6.1.0-${i}-amd64:amd64 (6.1.99-1, automatic)\nEnd-Date: 2026-11-30  10:0${i % 10}:09\n`).join('');

test('replay of a dpkg.log or apt history.log: one line saying what the file is not and what replay takes, exit 65, nothing recorded', { skip }, () => {
  withCliRoot(({ root, kvers }) => {
    const journalDir = join(root, 'var', 'lib', 'depmod-tx', 'journal');
    for (const [name, text] of [['dpkg.log', dpkgLog], ['history.log', historyLog]] as const) {
      const file = join(root, name);
      writeFileSync(file, text);
      const r = runCli(['replay', '--root', root, file]);
      assert.equal(r.code, 65, r.stderr);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `one line, not one per input line:\n${r.stderr.slice(0, 2000)}`);
      assert.match(lines[0]!, new RegExp(`^depmod-tx: ${file}: not a depmod-tx journal nor a list of module paths \\(line \\d+: ".+"\\); replay takes JSON lines as depmod-tx record writes them, or absolute module paths one per line; nothing was recorded$`.replaceAll('depmod-tx record', '`depmod-tx record`')));
      assert.equal(r.stdout, '');
    }
    // A good path list named together with a bad file: refused as a whole, before recording.
    writeFixtureTree(root, kvers[0]!, [{ path: 'updates/x.ko', module: {} }], { order: BASE_ORDER });
    const good = join(root, 'paths.txt');
    writeFileSync(good, `/lib/modules/${kvers[0]}/updates/x.ko\n`);
    assert.equal(runCli(['replay', '--root', root, good, join(root, 'dpkg.log')]).code, 65);
    assert.ok(!existsSync(journalDir) || readdirSync(journalDir).length === 0, 'nothing journaled');
    assert.match(runCli(['status', '--root', root]).stdout, /^pending: nothing$/m);
    // The path list alone still replays.
    const ok = runCli(['replay', '--root', root, good]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^replayed 1 event\(s\)/m);
  });
});
