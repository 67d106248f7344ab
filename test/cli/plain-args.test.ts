// plain-args.ts reads the hooks' calls without yargs: for those it must give each command what
// yargs gives it (defaults included), and leave everything else to yargs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { plainArgs } from '../../src/cli/plain-args.ts';
import { COMMANDS } from '../../src/cli/spec.ts';

const command = (name: string) => COMMANDS.find((c) => c.name === name)!;

test("the hooks' calls: the options given, every default, the operands", () => {
  assert.deepEqual(plainArgs(command('commit'), ['--root', '/r', '--source', 'dpkg', '--scan']), {
    root: '/r', source: 'dpkg', scan: true, json: false, verbose: false, 'lock-timeout': 300,
  });
  assert.deepEqual(plainArgs(command('apt-hook'), ['--root=/']), { root: '/', verbose: false });
  assert.deepEqual(plainArgs(command('record'), ['--root', '/', '--op', 'add', '--package', 'p', '-']), {
    root: '/', op: 'add', package: 'p', json: false, verbose: false, paths: ['-'],
  });
  assert.deepEqual(plainArgs(command('zypp-plugin'), ['--root', '/', '--reply-fd', '3']), { root: '/', 'reply-fd': 3 });
  assert.deepEqual(plainArgs(command('commit'), ['--kernel', 'a', '--kernel', 'b']), {
    root: '/', kernel: ['a', 'b'], scan: false, json: false, verbose: false, 'lock-timeout': 300,
  });
  assert.deepEqual(plainArgs(command('update'), ['6.1.0-1-amd64', '/lib/modules/6.1.0-1-amd64/x.ko']), {
    ...Object.fromEntries(command('update').options.filter((o) => o.default !== undefined).map((o) => [o.name, o.default])),
    kver: '6.1.0-1-amd64', paths: ['/lib/modules/6.1.0-1-amd64/x.ko'],
  });
});

test('anything else is left to yargs', () => {
  for (const [name, argv] of [
    ['commit', ['-b', '/r']],
    ['commit', ['--help']],
    ['commit', ['--no-scan']],
    ['commit', ['--scan=true']],
    ['commit', ['--bogus']],
    ['commit', ['extra']],
    ['record', ['--op', 'rename']],
    ['record', ['--package', 'p']],
    ['update', []],
    ['rebuild', ['--root']],
    ['depmod', ['-a']],
  ] as const) {
    assert.equal(plainArgs(command(name), argv), undefined, `${name} ${argv.join(' ')}`);
  }
});
