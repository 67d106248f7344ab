// The CI fuzz campaign (issue 7): a fixed seed, >= 20,000 mutated inputs over the seven parsers that
// read outside input; only typed errors, no hang, bounded memory. Saved crashers are replayed first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { CI_BUDGET, execute, makeTargets, mutate, newWorkDir, rng, runCampaign, savedCrashers, TARGETS } from '../../scripts/fuzz.ts';
import { FormatError } from '../../src/errors.ts';

const work = newWorkDir();
const targets = makeTargets(work);
test.after(() => rmSync(work, { recursive: true, force: true }));

test('every target has seeds, and the seeds parse without crashing', async () => {
  for (const t of targets) {
    assert.ok(t.seeds.length > 0, `${t.name}: no seeds (dpkg-deb missing?)`);
    for (const s of t.seeds) assert.equal((await execute(t, s)).crash, undefined, t.name);
  }
});

test('the oracle itself: an untyped exception, a hang and a typed error are told apart', async () => {
  const base = targets[0]!;
  const boom = await execute({ ...base, run: () => { throw new RangeError('offset out of bounds'); } }, new Uint8Array(1));
  assert.equal(boom.crash?.kind, 'exception');
  const typed = await execute({ ...base, run: () => { throw new FormatError('x', 'bad'); } }, new Uint8Array(1));
  assert.equal(typed.crash, undefined);
  assert.equal(typed.typed, true);
  const slow = await execute({ ...base, run: () => { const t0 = Date.now(); while (Date.now() - t0 < 2100); return 'ok'; } }, new Uint8Array(1));
  assert.equal(slow.crash?.kind, 'hang');
});

test('mutation is deterministic for a seed and changes the input', () => {
  const t = targets.find((x) => x.name === 'elf')!;
  const a = mutate(t.seeds[0]!, t, t.seeds, rng(7));
  const b = mutate(t.seeds[0]!, t, t.seeds, rng(7));
  assert.deepEqual(a, b);
  let differ = 0;
  const r = rng(8);
  for (let i = 0; i < 50; i++) if (Buffer.compare(Buffer.from(mutate(t.seeds[0]!, t, t.seeds, r)), Buffer.from(t.seeds[0]!)) !== 0) differ++;
  assert.ok(differ >= 45, `only ${differ}/50 mutants differ`);
});

/**
 * Crashers whose bug is known and not yet fixed in src: replayed and reported as TODO (they do not
 * fail the suite) so the regression test is in place the moment the fix lands. Remove the entry then.
 */
const KNOWN_OPEN: Partial<Record<string, string>> = {};

for (const target of new Set(savedCrashers().map((c) => c.target))) {
  test(`saved ${target} crashers replay without crashing`, { todo: KNOWN_OPEN[target] ?? false }, async () => {
    const t = targets.find((x) => x.name === target)!;
    for (const c of savedCrashers().filter((x) => x.target === target)) {
      const res = await execute(t, new Uint8Array(readFileSync(c.file)));
      assert.equal(res.crash, undefined, `${c.file}: ${res.crash?.message}`);
    }
  });
}

test('the watchdog terminates a parser stuck in a synchronous endless loop and keeps its input', { timeout: 60_000 }, async () => {
  const r = await runCampaign({ seed: 1, targets: ['selftest-hang', 'symvers'], budget: { ...CI_BUDGET, symvers: 50 }, stallMs: 1500, selfTest: true });
  assert.deepEqual(r.crashers.map((c) => [c.target, c.kind, [...c.input]]), [['selftest-hang', 'hang', [1]]]);
  assert.equal(r.stats.get('symvers')?.executed, 50, 'the campaign goes on after a hang');
});

test('fixed-seed campaign in a watched worker: >= 20,000 inputs, only typed errors, no hang, bounded memory', { timeout: 180_000 }, async (t) => {
  const heap0 = process.memoryUsage().rss;
  const r = await runCampaign({ seed: 20261125 });
  let total = 0;
  for (const name of TARGETS) {
    const st = r.stats.get(name);
    assert.ok(st !== undefined, `${name} ran`);
    total += st.executed;
    t.diagnostic(`${name}: ${st.executed} inputs, ${st.typedErrors} typed errors, ${st.ok} ok, ${st.signatures} signatures, ${Math.round(st.ms)} ms`);
    // A campaign that never gets past the first check would prove nothing.
    assert.ok(st.signatures >= 5, `${name}: only ${st.signatures} distinct outcomes`);
  }
  const grown = process.memoryUsage().rss - heap0;
  assert.ok(grown < 512 * 1024 * 1024, `process grew by ${grown >> 20} MiB over the campaign`);
  assert.ok(total >= 20_000, `${total} inputs`);
  assert.deepEqual(r.crashers.map((c) => `${c.target} ${c.kind}: ${c.message.split('\n')[0]}`), [], 'run `npm run fuzz` to save them under test/fixtures/crashers');
});
