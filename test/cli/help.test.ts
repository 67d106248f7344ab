// Issue 11 point 5 and the man page / completion: what the built CLI says about itself is the table
// in src/cli/spec.ts, whole. --help wraps at word boundaries at any width (yargs 17's ESM entry cut
// words: "for p|ackage"), every option of every command has its description, no command offers an
// option it ignores, --version prints the package's version, and README, depmod-tx(1) and the bash
// completion list every command and option --help lists.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { renderOptionsMarkdown } from '../../src/cli/docs.ts';
import { COMMANDS, GLOBAL_OPTIONS, type OptionSpec } from '../../src/cli/spec.ts';
import { DIST, runCli } from '../support/cli.ts';
import { kmod30 } from '../support/kmod-oracles.ts';
import { repoRoot } from '../support/kernels.ts';

const WIDTHS = [80, 120];
const help = (args: string[], width: number): string => {
  const r = runCli([...args, '--help'], { env: { COLUMNS: String(width) } });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
};

/** A text as --help may lay it out: the same words in order, separated by spaces, line breaks and indentation only. */
function laidOut(text: string): RegExp {
  const words = text.split(/\s+/).filter((w) => w !== '');
  return new RegExp(words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('\\s+'));
}

/** `--name` tokens of option lines in a --help text. */
function helpOptions(text: string): string[] {
  return [...text.matchAll(/^ {2}(?:-\w, | {4})--([\w-]+)/gm)].map((m) => m[1]!);
}

test('--help at widths 80 and 120 keeps every word whole: each summary and description appears as written', () => {
  for (const width of WIDTHS) {
    const top = help([], width);
    for (const line of top.split('\n')) assert.ok(line.length <= width, `width ${width}: ${JSON.stringify(line)}`);
    assert.match(top, laidOut('Incremental kernel module database (depmod) for package transactions.'));
    for (const c of COMMANDS) assert.match(top, laidOut(c.summary), `width ${width}: summary of ${c.name}`);
    for (const o of GLOBAL_OPTIONS) assert.match(top, laidOut(o.describe), `width ${width}: --${o.name}`);
    for (const c of COMMANDS.filter((x) => !x.ownArguments)) {
      const h = help([c.name], width);
      for (const line of h.split('\n')) assert.ok(line.length <= width, `width ${width}, ${c.name}: ${JSON.stringify(line)}`);
      for (const p of c.positionals) assert.match(h, laidOut(p.describe), `width ${width}: ${c.name} ${p.name}`);
      for (const o of c.options) assert.match(h, laidOut(o.describe), `width ${width}: ${c.name} --${o.name}\n${h}`);
    }
  }
});

test('every command lists exactly its options, each described; update has no --check; --version', () => {
  for (const c of COMMANDS.filter((x) => !x.ownArguments)) {
    const h = help([c.name], 100);
    const want = [...GLOBAL_OPTIONS, ...c.options].map((o: OptionSpec) => o.name).sort();
    assert.deepEqual(helpOptions(h).sort(), want, c.name);
    for (const m of h.matchAll(/^ {2}(?:-\w, | {4})--([\w-]+) +(.*)$/gm)) assert.doesNotMatch(m[2]!, /^\[/, `${c.name} --${m[1]} has a description`);
  }
  assert.ok(!helpOptions(help(['update'], 100)).includes('check'), 'update always checks KABI: no --check');
  const refused = runCli(['update', '6.1.0-1-test', '--check']);
  assert.equal(refused.code, 64);
  assert.match(refused.stderr, /Unknown argument: check/);
  const v = runCli(['--version']);
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version);
  const workers = runCli(['rebuild', '--workers', 'many', '6.1.0-1-test']);
  assert.equal(workers.code, 64, 'a number option given a word is a usage error');
  // depmod-tx depmod is depmod: its --help is kmod depmod's own.
  const kmodHelp = spawnSync(kmod30().command[0], [...kmod30().command.slice(1), '--help'], { encoding: 'utf8' });
  const ours = runCli(['depmod', '--help'], { env: { PATH: `${kmod30().binDir}:${process.env.PATH ?? ''}`, DEPMOD_TX_LOG: '/dev/null' } });
  assert.equal(ours.code, kmodHelp.status);
  assert.equal(ours.stdout, kmodHelp.stdout);
});

test("README's options are the code's: the generated table, the common options, the command synopses", () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  assert.ok(readme.includes(`<!-- generated:options -->\n${renderOptionsMarkdown()}\n<!-- /generated:options -->`), 'README options table is current (node --import tsx scripts/docs.ts --readme)');
  const common = /^Common options: ([\s\S]*?)\n\S*`man depmod-tx`/m.exec(readme)?.[1];
  assert.ok(common !== undefined, 'README has a "Common options:" paragraph');
  // "`-b, --root DIR` (every command but `inspect`; ...)": each claim checked against the table.
  const claims = [...common.matchAll(/`(?:-\w, )?--([\w-]+)[^`]*`(?:\s\(every command but ((?:`[\w-]+`(?: and )?)+))?/g)];
  assert.ok(claims.length >= 4, common);
  for (const [, name, except] of claims) {
    if (GLOBAL_OPTIONS.some((o) => o.name === name)) continue;
    const having = COMMANDS.filter((c) => c.options.some((o) => o.name === name)).map((c) => c.name);
    if (except === undefined) continue;
    const but = [...except.matchAll(/`([\w-]+)`/g)].map((m) => m[1]);
    assert.deepEqual(having, COMMANDS.map((c) => c.name).filter((n) => !but.includes(n)), `--${name}: every command but ${except}`);
  }
  const synopses = readme.slice(readme.indexOf('## Commands'), readme.indexOf('Common options'));
  for (const m of synopses.matchAll(/^ {4}depmod-tx ([\w-]+)(.*)$/gm)) {
    const c = COMMANDS.find((x) => x.name === m[1]);
    assert.ok(c, `README names command ${m[1]}`);
    for (const o of m[2]!.matchAll(/--([\w-]+)/g)) assert.ok(c.options.some((x) => x.name === o[1]), `README: ${c.name} --${o[1]} exists`);
  }
  assert.deepEqual([...synopses.matchAll(/^ {4}depmod-tx ([\w-]+)/gm)].map((m) => m[1]), COMMANDS.map((c) => c.name), 'README lists every command');
});

test('the man page lists every command and option --help lists, under that command', () => {
  const man = readFileSync(join(DIST, 'depmod-tx.1'), 'utf8');
  const sections = man.split(/^\.SS /m).slice(1);
  const top = help([], 100);
  const listed = [...top.matchAll(/^ {2}depmod-tx ([\w-]+)/gm)].map((m) => m[1]!);
  assert.deepEqual(listed, COMMANDS.map((c) => c.name));
  for (const name of listed) {
    const sec = sections.find((s) => s.startsWith(`"depmod\\-tx ${name.replaceAll('-', '\\-')} `) || s.startsWith(`"depmod\\-tx ${name.replaceAll('-', '\\-')}"`));
    assert.ok(sec, `man page has a section for ${name}`);
    for (const o of helpOptions(help([name], 100))) {
      if (GLOBAL_OPTIONS.some((g) => g.name === o)) continue;
      assert.ok(sec.includes(`\\fB\\-\\-${o.replaceAll('-', '\\-')}\\fR`), `man page: ${name} --${o}`);
    }
  }
  for (const g of GLOBAL_OPTIONS) assert.ok(man.includes(`\\fB\\-\\-${g.name}\\fR`), `man page: --${g.name}`);
  const r = spawnSync('man', ['-l', '--warnings', join(DIST, 'depmod-tx.1')], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '80', MANPAGER: 'cat', LC_ALL: 'C.UTF-8' } });
  if (r.error !== undefined && process.env.CI === 'true') throw new Error(`CI=true but man(1) cannot run (.ci/run installs man-db): ${r.error.message}`);
  if (r.error === undefined) {
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', 'groff has no warnings');
    assert.match(r.stdout, /EXIT STATUS/);
  }
});

test('bash completion completes commands, every option --help lists, option values and kernel versions', () => {
  const script = join(DIST, 'depmod-tx.bash-completion');
  const root = mkdtempSync(join(tmpdir(), 'dtx-compl-'));
  try {
    for (const k of ['6.1.0-9-amd64', '6.12.0-1-amd64']) mkdirSync(join(root, 'lib', 'modules', k), { recursive: true });
    const complete = (words: string[]): string[] => {
      const r = spawnSync('bash', ['-c', `source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _depmod_tx; printf '%s\\n' "\${COMPREPLY[@]}"`, script, 'depmod-tx', ...words], { encoding: 'utf8', cwd: root });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n').filter((l) => l !== '').sort();
    };
    assert.deepEqual(complete(['up']), ['update']);
    assert.deepEqual(complete(['']), [...COMMANDS.map((c) => c.name), '--help', '--version', '-h'].sort());
    for (const c of COMMANDS) {
      const offered = complete([c.name, '--']);
      for (const o of helpOptions(help([c.name], 100))) assert.ok(offered.includes(`--${o}`), `completion: ${c.name} --${o}`);
    }
    assert.deepEqual(complete(['record', '--op', '']), ['add', 'remove']);
    assert.deepEqual(complete(['update', '--root', root, '6.1.']), ['6.1.0-9-amd64']);
    assert.deepEqual(complete(['check', '--root', root, '6.12']), ['6.12.0-1-amd64']);
    assert.deepEqual(complete(['rebuild', '--root', 'li']), ['lib'], 'a DIR value completes directories');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
