// Paths and state (issue 7): what a journal line, a trigger list or an argument names cannot make
// depmod-tx act outside ROOT/(usr/)lib/modules/KVER and its state directories; symlinked module
// directories behave as with depmod; state files are never world-writable, even under umask 000;
// a tampered cache is detected and rebuilt, never trusted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheFile } from '../../src/cache/store.ts';
import { merge } from '../../src/merge/merge.ts';
import { journalDir, readJournal } from '../../src/txn/journal.ts';
import { buildModuleElf } from '../support/fixture-elf.ts';
import { depmodConfigArgs, writeFixtureTree } from '../support/fixture-tree.ts';
import { oracleDepmod, repoRoot } from '../support/kernels.ts';
import { diffFileSets, oracleFiles, outputFiles } from '../merge/oracle-dir.ts';
import { BIN, cli, syntheticModules } from './crash-support.ts';

const K = '6.1.0-paths';

async function tree(name: string, n = 20): Promise<{ work: string; root: string; moddir: string }> {
  const work = mkdtempSync(join(tmpdir(), `dtx-${name}-`));
  const root = join(work, 'root');
  const moddir = writeFixtureTree(root, K, syntheticModules(n, 's', 2));
  await merge({ root, kver: K, workers: 1 });
  return { work, root, moddir };
}

function listing(dir: string): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const st = statSync(p, { throwIfNoEntry: false });
      out.push(`${p}:${st?.size}:${st?.mtimeMs}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort().join('\n');
}

test('kernel versions with /, .. or control characters are refused with exit 64, by every command', async (t) => {
  const { work, root } = await tree('kver');
  t.after(() => rmSync(work, { recursive: true, force: true }));
  for (const bad of ['../../etc', 'a/b', '..', `6.1${'\x1b'}[31m`, 'x\ny']) {
    const cmds = [['rebuild', '-b', root, bad], ['update', '-b', root, bad], ['commit', '-b', root, '--kernel', bad]];
    // In a recorded path `a/b` is just kernel `a`; the others are refused there too.
    if (bad !== 'a/b') cmds.push(['record', '-b', root, '--op', 'add', `/lib/modules/${bad}/kernel/x.ko`]);
    for (const args of cmds) {
      const r = cli(args);
      assert.equal(r.status, 64, `${JSON.stringify(args)}: ${r.stderr}`);
    }
  }
  assert.deepEqual(await readJournal(root), { events: [], warnings: [] });
});

test('record and journal lines naming paths outside the module directory are refused; nothing outside the root is written', async (t) => {
  const { work, root, moddir } = await tree('escape');
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const outside = join(work, 'outside');
  mkdirSync(outside);
  // A well-formed module: depmod lists what an updates/ symlink leads to, so must we (a damaged one
  // is a separate matter, see the report: depmod-tx fails the kernel where depmod warns).
  writeFileSync(join(outside, 'evil.ko'), buildModuleElf({ modinfo: [['alias', 'evil:*']] }));
  const before = listing(outside);
  // updates/ is a symlink leaving the root: a package could have planted it.
  symlinkSync(outside, join(moddir, 'updates'));
  const sys = `/lib/modules/${K}`;
  const paths = [`${sys}/../../../outside/evil.ko`, `${sys}/updates/evil.ko`, `/lib/modules/${K}/kernel/../../../../etc/passwd.ko`, 'relative/lib/modules/x.ko'];
  const r = cli(['record', '-b', root, '--op', 'add', '-'], { input: paths.join('\n') + '\n' });
  assert.equal(r.status, 64, r.stderr);
  assert.equal(r.stderr.match(/^depmod-tx: refused/gm)?.length, paths.length, r.stderr);
  assert.deepEqual((await readJournal(root)).events, []);

  // Journal lines written by hand (or before a symlink was swapped in) get the same treatment at commit.
  mkdirSync(journalDir(root), { recursive: true });
  const line = (p: string) => `${JSON.stringify({ op: 'add', path: p, package: 'x', time: '', id: createHash('sha1').update(p).digest('hex').slice(0, 16) })}\n`;
  appendFileSync(join(journalDir(root), 'hand.jsonl'), paths.map(line).join('') + line(`${sys}/kernel/drivers/s/s_1.ko`));
  const c = cli(['commit', '-b', root, '--json']);
  assert.equal(c.status, 0, `${c.stdout}\n${c.stderr}`);
  assert.match(c.stderr, /outside the module directory/);
  assert.equal(listing(outside), before, 'nothing outside the root touched');
  assert.deepEqual((await readJournal(root)).events, []);
  // depmod itself follows the updates/ symlink; the database still equals its output.
  assert.deepEqual(diffFileSets(outputFiles(moddir), oracleFiles(root, K, depmodConfigArgs(root, undefined))), []);
});

test('a module directory that is a symlink inside the root works as with depmod; one leaving the root is refused', async (t) => {
  const { work, root, moddir } = await tree('symlink');
  t.after(() => rmSync(work, { recursive: true, force: true }));
  // Inside: ROOT/lib/modules/K → ../../opt/kmods/K
  mkdirSync(join(root, 'opt', 'kmods'), { recursive: true });
  const real = join(root, 'opt', 'kmods', K);
  renameSync(moddir, real);
  symlinkSync(`../../opt/kmods/${K}`, moddir);
  unlinkSync(join(real, 'kernel/drivers/s/s_19.ko'));
  const rec = cli(['record', '-b', root, '--op', 'remove', `/lib/modules/${K}/kernel/drivers/s/s_19.ko`]);
  assert.equal(rec.status, 0, rec.stderr);
  const c = cli(['commit', '-b', root]);
  assert.equal(c.status, 0, c.stderr);
  const copy = join(work, 'oracle');
  spawnSync('cp', ['-a', root, copy]);
  oracleDepmod(copy, K, depmodConfigArgs(copy, undefined));
  assert.deepEqual(diffFileSets(outputFiles(real), outputFiles(join(copy, 'opt', 'kmods', K))), [], 'written through the symlink, as depmod does');

  // Outside: ROOT/lib/modules/K → WORK/elsewhere/K (absolute, not under ROOT).
  const elsewhere = join(work, 'elsewhere');
  mkdirSync(elsewhere);
  renameSync(real, join(elsewhere, K));
  unlinkSync(moddir);
  symlinkSync(join(elsewhere, K), moddir);
  const before = listing(elsewhere);
  const bad = cli(['record', '-b', root, '--op', 'remove', `/lib/modules/${K}/kernel/drivers/s/s_18.ko`]);
  assert.equal(bad.status, 64);
  assert.match(bad.stderr, /outside the root/);
  appendFileSync(join(journalDir(root), 'hand.jsonl'), `${JSON.stringify({ op: 'remove', path: `/lib/modules/${K}/kernel/drivers/s/s_18.ko`, id: 'ffff' })}\n`);
  const c2 = cli(['commit', '-b', root]);
  assert.match(c2.stderr, /outside the root/);
  assert.equal(listing(elsewhere), before, 'nothing written through a symlink leaving the root');
});

test('state files and directories are not world-writable, even under umask 000', async (t) => {
  const { work, root } = await tree('modes');
  t.after(() => rmSync(work, { recursive: true, force: true }));
  rmSync(join(root, 'var'), { recursive: true, force: true }); // created afresh under umask 000
  const sh = (args: string[]) => spawnSync('sh', ['-c', 'umask 000; exec "$@"', 'sh', process.execPath, '--import', 'tsx', BIN, ...args], { cwd: repoRoot, encoding: 'utf8' });
  unlinkSync(join(root, 'lib/modules', K, 'kernel/drivers/s/s_19.ko'));
  assert.equal(sh(['update', '-b', root, K]).status, 0);
  assert.equal(sh(['record', '-b', root, '--op', 'remove', '--txn', 'tx', `/lib/modules/${K}/kernel/drivers/s/s_19.ko`]).status, 0);
  appendFileSync(join(journalDir(root), 'tx.jsonl'), 'garbage\n'); // so journal/rejected/ is created too
  const c = sh(['commit', '-b', root]);
  assert.equal(c.status, 0, c.stderr);
  const seen: string[] = [];
  const bad: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const mode = statSync(p).mode & 0o7777;
      seen.push(`${p.slice(root.length)} ${mode.toString(8)}`);
      if (mode & 0o002) bad.push(`${p} ${mode.toString(8)}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(join(root, 'var'));
  for (const f of readdirSync(join(root, 'lib/modules', K))) if (f.startsWith('modules.') && statSync(join(root, 'lib/modules', K, f)).mode & 0o002) bad.push(f);
  for (const want of ['/var/cache/depmod-tx', `/var/cache/depmod-tx/${K}.cache`, `/var/cache/depmod-tx/${K}.lock`, '/var/lib/depmod-tx/journal.lock', '/var/lib/depmod-tx/status.json', '/var/lib/depmod-tx/journal/rejected/tx.jsonl']) {
    assert.ok(seen.some((s) => s.startsWith(`${want} `)), `${want} exists (saw ${seen.join(', ')})`);
  }
  assert.deepEqual(bad, []);
});

test('a tampered cache is detected and rebuilt, never trusted; the control with a re-signed cache shows the test can tell', async (t) => {
  for (const fixChecksum of [false, true]) {
    const { work, root, moddir } = await tree(`tamper-${fixChecksum}`);
    t.after(() => rmSync(work, { recursive: true, force: true }));
    // Rewrite one alias of s_3 in the cache: a trusted cache would put the bogus alias in modules.alias.
    const file = cacheFile(root, K);
    const bytes = readFileSync(file);
    const needle = Buffer.from('platform:s-device-number-3-variant-0');
    const at = bytes.indexOf(needle);
    assert.ok(at > 0, 'alias string found in the cache');
    bytes.write('X', at + needle.length - 1, 'latin1');
    if (fixChecksum) {
      // The body's CRC-32 covers the bytes from the 8-aligned end of the header's checksum to the
      // 16-byte trailer, whose bytes 8..12 hold it (src/cache/container.ts).
      const bodyStart = (40 + bytes.readUInt32LE(12) + 4 + 7) & ~7;
      bytes.writeUInt32LE(crc32(bytes.subarray(bodyStart, bytes.length - 16)), bytes.length - 8);
    }
    writeFileSync(file, bytes);
    // A merge that writes every file from the cached facts (an update only renders what changed).
    assert.equal(cli(['update', '-b', root, '--full-scan', K]).status, 0);
    const alias = readFileSync(join(moddir, 'modules.alias'), 'utf8');
    if (!fixChecksum) {
      assert.doesNotMatch(alias, /variant-X/);
      assert.deepEqual(diffFileSets(outputFiles(moddir), oracleFiles(root, K, depmodConfigArgs(root, undefined))), []);
      assert.equal(readFileSync(file).indexOf(Buffer.from('variant-X')), -1, 'cache rewritten from the tree');
    } else {
      // Integrity, not authenticity: a cache re-signed by someone who can write root's state directory
      // is trusted. That is why the directory is root's and 0755 (previous test).
      assert.match(alias, /s-device-number-3-variant-X/);
    }
  }
});
