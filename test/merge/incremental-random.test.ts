// Incremental merges on seeded random trees: after every step of a random sequence (add, remove,
// replace in place, move to updates/, a depmod.d change, a modules.order change), `update` with the
// touched paths as hints must leave exactly the files depmod -a writes for the tree as it now is, in
// kmod 30's format (Debian 12) and kmod 34's (Debian 13): at least 200 steps each. Steps follow each
// other quickly, so directory and file timestamps of consecutive steps often fall into the same tick.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { merge, type MergeResult } from '../../src/merge/merge.ts';
import { buildModuleElf, type FixtureModule } from '../support/fixture-elf.ts';
import { compressForPath, depmodConfigArgs, writeFixtureTree } from '../support/fixture-tree.ts';
import { mulberry32, randomTree } from '../support/random-tree.ts';
import type { FixtureTreeModule } from '../support/fixture-tree.ts';
import { realKernelSkipReason } from '../support/kernels.ts';
import { kmod30, kmod34, type DepmodOracle } from '../support/kmod-oracles.ts';
import { kmodBehaviour } from '../../src/depmod/kmod-version.ts';
import { diffFileSets, outputFiles } from './oracle-dir.ts';
import { oracleFilesByLinks } from './oracle-dir.ts';

const skip = realKernelSkipReason(); // needs Debian's depmod
const SEQUENCES = Number(process.env.DEPMOD_TX_INCR_SEQUENCES ?? 34);
const STEPS = 6;

type StepKind = 'add' | 'remove' | 'replace' | 'move-to-updates' | 'depmod.d' | 'modules.order';

/** Same module, different content: new export CRCs, one import fewer, one alias more. Never adds a dependency, so never a cycle. */
function mutated(m: FixtureModule, rnd: () => number): FixtureModule {
  const exports = (m.exports ?? []).map((e) => (e.crc !== undefined ? { ...e, crc: (e.crc ^ Math.floor(rnd() * 0xffff + 1)) >>> 0 } : e));
  const imports = (m.imports ?? []).slice(0, Math.max(0, (m.imports ?? []).length - 1));
  const modinfo: Array<[string, string]> = [...(m.modinfo ?? []), ['alias', `replaced-${Math.floor(rnd() * 1000)}`]];
  return { ...m, exports, imports, modinfo };
}

async function runSequence(seed: number, base: string, oracle: DepmodOracle): Promise<{ steps: number; patched: number }> {
  const kmod = kmodBehaviour(oracle.name === 'kmod34' ? '34' : '30')!;
  let patched = 0;
  const rnd = mulberry32(seed * 7919 + 1);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const t = randomTree(seed, { minModules: 6, maxModules: 24, ...(seed % 3 === 0 ? { compression: 'mixed' as const } : {}) });
  const root = join(base, `s${seed}`);
  // Some modules start in the stash so that "add" has something to bring in.
  const present: FixtureTreeModule[] = [];
  const stash: FixtureTreeModule[] = [];
  for (const m of t.modules) (rnd() < 0.3 ? stash : present).push(m);
  const moddir = writeFixtureTree(root, t.kver, present, { order: t.order, depmodConf: t.depmodConf, bits: t.bits, endian: t.endian });
  const cfgArgs = depmodConfigArgs(root, t.depmodConf);
  const config = cfgArgs.filter((a) => a !== '-C');
  let order = [...(t.order ?? [])];
  const elf = { bits: t.bits, endian: t.endian };
  const bytesOf = (m: FixtureTreeModule): Uint8Array => compressForPath(m.path, buildModuleElf(m.module, { ...elf, ...m.elf }));

  const history: string[] = ['initial full merge'];
  const check = (r: MergeResult, what: string): void => {
    const problems = diffFileSets(outputFiles(moddir), oracleFilesByLinks(root, t.kver, cfgArgs, oracle));
    assert.deepEqual(problems, [], `seed ${seed}: after ${what} (steps: ${history.join('; ')}); result ${JSON.stringify({ parsed: r.parsed, fullReason: r.fullReason, noop: r.noop })}`);
  };
  check(await merge({ root, kver: t.kver, config, kmod }), 'the first merge');

  for (let step = 0; step < STEPS; step++) {
    const kinds: StepKind[] = ['remove', 'replace', 'move-to-updates', 'depmod.d', 'modules.order'];
    if (stash.length > 0) kinds.push('add', 'add');
    const kind = present.length === 0 ? 'add' : pick(kinds);
    const touched: string[] = [];
    let expectParsed: number | undefined;
    if (kind === 'add') {
      const m = stash.splice(Math.floor(rnd() * stash.length), 1)[0]!;
      mkdirSync(dirname(join(moddir, m.path)), { recursive: true });
      writeFileSync(join(moddir, m.path), bytesOf(m));
      present.push(m);
      touched.push(m.path);
      history.push(`add ${m.path}`);
    } else if (kind === 'remove') {
      const m = present.splice(Math.floor(rnd() * present.length), 1)[0]!;
      unlinkSync(join(moddir, m.path));
      stash.push(m);
      touched.push(m.path);
      history.push(`remove ${m.path}`);
    } else if (kind === 'replace') {
      const i = Math.floor(rnd() * present.length);
      const m = present[i]!;
      const next = { ...m, module: mutated(m.module, rnd) };
      // writeFileSync truncates and rewrites the same inode: an in-place replacement.
      writeFileSync(join(moddir, m.path), bytesOf(next));
      present[i] = next;
      touched.push(m.path);
      history.push(`replace ${m.path}`);
    } else if (kind === 'depmod.d') {
      // A new search order or exclude: which files are modules, and which of two same-named ones wins.
      const dir = config[0]!;
      const line = pick(['search updates extra built-in', 'search built-in updates', 'exclude sound', 'search extra updates built-in\nexclude usb', '']);
      writeFileSync(join(dir, `zz-step${step}.conf`), `${line}\n`);
      history.push(`depmod.d: ${JSON.stringify(line)}`);
    } else if (kind === 'modules.order') {
      // A kernel subpackage's modules.order: lines dropped, moved and added (present or not).
      order = order.filter(() => rnd() < 0.8);
      for (const m of present) if (rnd() < 0.3) order.splice(Math.floor(rnd() * (order.length + 1)), 0, m.path.replace(/\.(xz|zst|gz)$/, ''));
      writeFileSync(join(moddir, 'modules.order'), order.map((l) => `${l}\n`).join(''));
      history.push(`modules.order: ${order.length} lines`);
    } else {
      const i = Math.floor(rnd() * present.length);
      const m = present[i]!;
      const file = m.path.slice(m.path.lastIndexOf('/') + 1);
      let to = `updates/moved${step}/${file}`;
      if (existsSync(join(moddir, to))) to = `updates/moved${step}b/${file}`;
      mkdirSync(dirname(join(moddir, to)), { recursive: true });
      renameSync(join(moddir, m.path), join(moddir, to));
      present[i] = { ...m, path: to };
      touched.push(m.path, to);
      history.push(`move ${m.path} -> ${to}`);
      expectParsed = undefined;
    }
    const r = await merge({ root, kver: t.kver, config, kmod, hints: touched.map((p) => join(moddir, p)) });
    check(r, `step ${step} (${kind})`);
    if (r.plan?.mode === 'patch') patched++;
    assert.equal(r.fullReason, undefined, `seed ${seed} step ${step}: the cache should have been used`);
    // Only the touched files can need parsing (a removed or shadowed one needs none); a new search
    // order can make a file that lost to a same-named one win, which is then parsed for the first time.
    if (kind !== 'depmod.d') assert.ok(r.parsed <= touched.length, `seed ${seed} step ${step}: parsed ${r.parsed} > ${touched.length} touched`);
    if (expectParsed !== undefined) assert.equal(r.parsed, expectParsed);
  }
  rmSync(root, { recursive: true, force: true });
  return { steps: STEPS, patched };
}

for (const oracle of skip ? [] : [kmod30(), kmod34()]) {
  test(`incremental merge = ${oracle.name}'s depmod -a after every step (${SEQUENCES} random sequences × ${STEPS} steps)`, { skip }, async () => {
    const base = mkdtempSync(join(tmpdir(), 'dtx-incr-rand-'));
    const t0 = performance.now();
    let steps = 0;
    let patched = 0;
    try {
      for (let seed = 1; seed <= SEQUENCES; seed++) {
        const r = await runSequence(seed, base, oracle);
        steps += r.steps;
        patched += r.patched;
      }
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
    assert.ok(steps >= 200, `${steps} steps`);
    // The delta path must be what most steps take, or this test would not be testing it.
    assert.ok(patched >= steps / 3, `only ${patched} of ${steps} steps were patches`);
    console.log(`incremental random (${oracle.name}): ${steps} steps, ${patched} patched, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });
}
