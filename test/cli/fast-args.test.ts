// fast-args.ts reads the package managers' and hooks' calls without yargs: for those it must give
// each command what yargs gives it (defaults and aliases included), and leave everything else to yargs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fastParse } from '../../src/cli/fast-args.ts';
import { COMMANDS } from '../../src/cli/spec.ts';

const command = (name: string) => COMMANDS.find((c) => c.name === name)!;
/** What yargs would hand the command: the defaults, then the given values (under their aliases too). */
const withDefaults = (name: string, given: Record<string, unknown>): Record<string, unknown> => {
  const a: Record<string, unknown> = {};
  for (const o of command(name).options) {
    const v = given[o.name] ?? o.default;
    if (v === undefined) continue;
    a[o.name] = v;
    if (o.alias !== undefined) a[o.alias] = v;
  }
  for (const p of command(name).positionals) if (given[p.name] !== undefined) a[p.name] = given[p.name];
  return a;
};

test("the hooks' calls: the options given, every default, the operands", () => {
  const cases: Array<[string, string[], Record<string, unknown>]> = [
    ['commit', ['--root', '/r', '--source', 'dpkg', '--scan'], { root: '/r', source: 'dpkg', scan: true }],
    ['commit', ['-b', '/r'], { root: '/r' }],
    ['apt-hook', ['--root=/'], { root: '/' }],
    ['record', ['--root', '/', '--op', 'add', '--package', 'p', '-'], { root: '/', op: 'add', package: 'p', paths: ['-'] }],
    ['zypp-plugin', ['--root', '/', '--reply-fd', '3'], { root: '/', 'reply-fd': 3 }],
    ['commit', ['--kernel', 'a', '--kernel', 'b'], { kernel: ['a', 'b'] }],
    ['update', ['6.1.0-1-amd64', '/lib/modules/6.1.0-1-amd64/x.ko'], { kver: '6.1.0-1-amd64', paths: ['/lib/modules/6.1.0-1-amd64/x.ko'] }],
  ];
  for (const [name, argv, given] of cases) {
    const r = fastParse([name, ...argv], COMMANDS);
    assert.ok(r !== undefined, `${name} ${argv.join(' ')}`);
    assert.equal(r.command.name, name);
    assert.deepEqual(r.args, withDefaults(name, given), `${name} ${argv.join(' ')}`);
  }
});

test('anything else is left to yargs', () => {
  for (const [name, argv] of [
    ['commit', ['--help']],
    ['commit', ['--version']],
    ['commit', ['--no-scan']],
    ['commit', ['--scan=true']],
    ['commit', ['--bogus']],
    ['commit', ['extra']],
    ['record', ['--op', 'rename']],
    ['record', ['--package', 'p']],
    ['zypp-plugin', ['--reply-fd', 'three']],
    ['update', []],
    ['rebuild', ['--root']],
    ['depmod', ['-a']],
    ['depmod', []],
    ['no-such-command', []],
  ] as const) {
    assert.equal(fastParse([name, ...argv], COMMANDS), undefined, `${name} ${argv.join(' ')}`);
  }
});
