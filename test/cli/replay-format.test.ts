// Issue 11 point 6: `replay` of a file it does not read (tried then: /var/log/dpkg.log and apt's
// history.log, which replay now reads: test/txn/logs, test/e2e) printed one "refused: not an
// absolute path" line per input line and exited 64. It must say once what the file is not and what
// replay takes, exit 65 (malformed input file), and record nothing, not even from the good files
// named with it. Tried here: a maintainer script and syslog lines, 200 lines each.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BASE_ORDER, runCli, withCliRoot } from '../support/cli.ts';
import { writeFixtureTree } from '../support/fixture-tree.ts';
import { realKernelSkipReason } from '../support/kernels.ts';

const skip = realKernelSkipReason();

const script = `#!/bin/sh\nset -e\n${Array.from({ length: 198 }, (_, i) => `depmod -a 6.1.0-${i}-amd64\n`).join('')}`;
const syslog = Array.from({ length: 200 }, (_, i) => `Nov 30 10:00:${String(i % 60).padStart(2, '0')} host kernel: [${i}.000000] usb 1-1: new device\n`).join('');

test('replay of a file it does not read: one line saying what the file is not and what replay takes, exit 65, nothing recorded', { skip }, () => {
  withCliRoot(({ root, kvers }) => {
    const journalDir = join(root, 'var', 'lib', 'depmod-tx', 'journal');
    for (const [name, text] of [['postinst', script], ['syslog', syslog]] as const) {
      const file = join(root, name);
      writeFileSync(file, text);
      const r = runCli(['replay', '--root', root, file]);
      assert.equal(r.code, 65, r.stderr);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `one line, not one per input line:\n${r.stderr.slice(0, 2000)}`);
      assert.match(lines[0]!, new RegExp(`^depmod-tx: ${file}: not a file replay reads: line \\d+ \\(".+"\\) starts none of: a depmod-tx journal \\(JSON lines\\), a list of absolute paths, .*pacman`));
      assert.equal(r.stdout, '');
    }
    // A good path list named together with a bad file: refused as a whole, before recording.
    writeFixtureTree(root, kvers[0]!, [{ path: 'updates/x.ko', module: {} }], { order: BASE_ORDER });
    const good = join(root, 'paths.txt');
    writeFileSync(good, `/lib/modules/${kvers[0]}/updates/x.ko\n`);
    assert.equal(runCli(['replay', '--root', root, good, join(root, 'syslog')]).code, 65);
    assert.ok(!existsSync(journalDir) || readdirSync(journalDir).length === 0, 'nothing journaled');
    assert.match(runCli(['status', '--root', root]).stdout, /^pending: nothing$/m);
    // The path list alone still replays.
    const ok = runCli(['replay', '--root', root, good]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^replayed 1 event\(s\)/m);
  });
});
