// The bench's arithmetic and bookkeeping (scripts/bench-stats.ts): a wrong median, fit or rotation
// would print plausible figures that mean nothing, so each is pinned on values worked out by hand.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as bench from '../../scripts/bench-stats.ts';

/** GNU time is what the bench reads; .ci/run installs it, so in CI its absence is an error. */
function noGnuTime(): string | false {
  if (existsSync('/usr/bin/time')) return false;
  if (process.env.CI === 'true') throw new Error('CI=true but /usr/bin/time is missing (.ci/run installs the time package)');
  return 'no /usr/bin/time (apt-get install time)';
}

const stats = (wallMs: number, cpuMs: number, rssMb = 50): bench.Stats => ({ runs: 1, wallMs, cpuMs, rssMb, minWallMs: wallMs, maxWallMs: wallMs });

describe('bench options', () => {
  it('defaults: 5 runs, both kmod formats, every scenario', () => {
    const o = bench.parseBenchArgs([], '/r/bench-results.md');
    assert.ok(typeof o !== 'string');
    assert.equal(o.runs, 5);
    assert.deepEqual(o.formats, ['30', '34']);
    assert.deepEqual(o.only, []);
    assert.equal(o.out, '/r/bench-results.md');
  });

  it('--quick means one run unless --runs says otherwise, in either order', () => {
    const q = bench.parseBenchArgs(['--quick'], 'x');
    assert.ok(typeof q !== 'string');
    assert.equal(q.runs, 1);
    for (const argv of [['--quick', '--runs', '3'], ['--runs', '3', '--quick']]) {
      const o = bench.parseBenchArgs(argv, 'x');
      assert.ok(typeof o !== 'string');
      assert.equal(o.runs, 3);
      assert.equal(o.quick, true);
    }
  });

  it('--only splits on commas and repeats; --node repeats; --formats narrows', () => {
    const o = bench.parseBenchArgs(['--only', 'add10,noop', '--only', 'cold-xz', '--node', '/a/node', '--node', '/b/node', '--formats', '34', '--all-nodes', '--keep'], 'x');
    assert.ok(typeof o !== 'string');
    assert.deepEqual(o.only, ['add10', 'noop', 'cold-xz']);
    assert.deepEqual(o.nodes, ['/a/node', '/b/node']);
    assert.deepEqual(o.formats, ['34']);
    assert.equal(o.allNodes, true);
    assert.equal(o.keep, true);
  });

  it('refuses what it cannot use, naming it', () => {
    assert.match(bench.parseBenchArgs(['--runs', '0'], 'x') as string, /--runs wants a positive integer, not 0/);
    assert.match(bench.parseBenchArgs(['--runs', '2.5'], 'x') as string, /--runs/);
    assert.match(bench.parseBenchArgs(['--runs'], 'x') as string, /not nothing/);
    assert.match(bench.parseBenchArgs(['--out', '--keep'], 'x') as string, /--out wants a file name/);
    assert.match(bench.parseBenchArgs(['--formats', '31'], 'x') as string, /--formats wants 30, 34 or 30,34, not 31/);
    assert.match(bench.parseBenchArgs(['--fast'], 'x') as string, /unknown option --fast/);
  });

  it('selects scenarios by any substring; the JSON file sits beside the Markdown one', () => {
    assert.equal(bench.selected('add10-xz', []), true);
    assert.equal(bench.selected('add10-xz', ['noop', 'xz']), true);
    assert.equal(bench.selected('cold-ko-amd64', ['noop', 'xz']), false);
    assert.equal(bench.jsonPathFor('/r/bench-results.md'), '/r/bench-results.json');
    assert.equal(bench.jsonPathFor('/tmp/out'), '/tmp/out.json');
  });
});

describe('run order', () => {
  it('rotates by one per run: over n runs each tool is first once and runs once per run', () => {
    assert.deepEqual(bench.rotation(3, 0), [0, 1, 2]);
    assert.deepEqual(bench.rotation(3, 1), [1, 2, 0]);
    assert.deepEqual(bench.rotation(3, 2), [2, 0, 1]);
    assert.deepEqual(bench.rotation(3, 3), [0, 1, 2]);
    const firsts = new Set(Array.from({ length: 5 }, (_, run) => bench.rotation(5, run)[0]));
    assert.equal(firsts.size, 5);
    for (let run = 0; run < 5; run++) assert.deepEqual([...bench.rotation(5, run)].sort(), [0, 1, 2, 3, 4]);
  });

  it('spreads picks over the sorted list, never twice the same, refusing more than there are', () => {
    const all = Array.from({ length: 100 }, (_, i) => i);
    assert.deepEqual(bench.spread(all, 4), [12, 37, 62, 87]);
    assert.deepEqual(bench.spread(all, 1), [50]);
    assert.equal(new Set(bench.spread(all, 100)).size, 100);
    assert.throws(() => bench.spread(all, 101), /cannot pick 101 of 100/);
  });
});

describe('which modules a scenario changes', () => {
  // a needs b and c (modules.dep lists the whole chain), b needs c; d stands alone.
  const DEP = 'kernel/a.ko.xz: kernel/b.ko.xz kernel/c.ko.xz\nkernel/b.ko.xz: kernel/c.ko.xz\nkernel/c.ko.xz:\nkernel/d.ko.xz:\n';

  it('reads modules.dep: each module and what it needs, none for an empty list', () => {
    const dep = bench.parseModulesDep(DEP);
    assert.deepEqual([...dep.keys()], ['kernel/a.ko.xz', 'kernel/b.ko.xz', 'kernel/c.ko.xz', 'kernel/d.ko.xz']);
    assert.deepEqual(dep.get('kernel/a.ko.xz'), ['kernel/b.ko.xz', 'kernel/c.ko.xz']);
    assert.deepEqual(dep.get('kernel/c.ko.xz'), []);
    assert.throws(() => bench.parseModulesDep('kernel/a.ko\n'), /without a colon: "kernel\/a.ko"/);
  });

  it('leaves are the modules nothing needs; a set with its users leaves no module without what it needs', () => {
    const dep = bench.parseModulesDep(DEP);
    assert.deepEqual(bench.leafModules(dep), ['kernel/a.ko.xz', 'kernel/d.ko.xz']);
    assert.deepEqual(bench.withUsers(dep, ['kernel/c.ko.xz']), ['kernel/a.ko.xz', 'kernel/b.ko.xz', 'kernel/c.ko.xz']);
    assert.deepEqual(bench.withUsers(dep, ['kernel/b.ko.xz']), ['kernel/a.ko.xz', 'kernel/b.ko.xz']);
    assert.deepEqual(bench.withUsers(dep, ['kernel/d.ko.xz', 'kernel/a.ko.xz']), ['kernel/a.ko.xz', 'kernel/d.ko.xz']);
    // What is left after removing the set needs nothing from it.
    const removed = new Set(bench.withUsers(dep, ['kernel/c.ko.xz']));
    for (const [m, needs] of dep) if (!removed.has(m)) assert.ok(needs.every((n) => !removed.has(n)), m);
  });
});

describe('goals of issues 22 and 25', () => {
  it('10 modules: 0.6× PR 253 on Node 20 and 22, 1.0× on nodejs 18; many modules 0.5×; nothing changed 1.3× node', () => {
    assert.equal(bench.GOALS.tenVsPr253(18), 1.0);
    assert.equal(bench.GOALS.tenVsPr253(20), 0.6);
    assert.equal(bench.GOALS.tenVsPr253(22), 0.6);
    assert.equal(bench.GOALS.manyVsPr253, 0.5);
    assert.equal(bench.GOALS.noopVsNode, 1.3);
    assert.equal(bench.GOALS.fixedPartMs, 50);
  });

  it('peak RSS: 100 MB up to 100 changed modules, 150 MB beyond and for a cold build; cold .ko.xz 0.6× kmod, else 1.0×', () => {
    assert.equal(bench.GOALS.updateRssMb(0), 100);
    assert.equal(bench.GOALS.updateRssMb(100), 100);
    assert.equal(bench.GOALS.updateRssMb(101), 150);
    assert.equal(bench.GOALS.coldRssMb, 150);
    assert.equal(bench.GOALS.coldVsKmod(true), 0.6);
    assert.equal(bench.GOALS.coldVsKmod(false), 1.0);
  });
});

describe('figures', () => {
  it('median of odd and even counts, unsorted input left alone', () => {
    const xs = [5, 1, 3];
    assert.equal(bench.median(xs), 3);
    assert.deepEqual(xs, [5, 1, 3]);
    assert.equal(bench.median([4, 1, 3, 2]), 2.5);
    assert.throws(() => bench.median([]), /median of nothing/);
  });

  it('summarize: medians of wall and CPU, the highest RSS', () => {
    const s = bench.summarize([
      { wallMs: 300, cpuMs: 10, rssMb: 70 },
      { wallMs: 100, cpuMs: 30, rssMb: 90 },
      { wallMs: 200, cpuMs: 20, rssMb: 80 },
    ]);
    assert.deepEqual(s, { runs: 3, wallMs: 200, cpuMs: 20, rssMb: 90, minWallMs: 100, maxWallMs: 300 });
  });

  it('reads GNU time -f "%e %U %S %M", also after its non-zero-status line', () => {
    assert.deepEqual(bench.parseGnuTime('0.52 0.41 0.07 73216\n'), { userMs: 410, sysMs: 70, maxRssKb: 73216 });
    assert.deepEqual(bench.parseGnuTime('Command exited with non-zero status 1\n1.00 0.50 0.25 1024\n'), { userMs: 500, sysMs: 250, maxRssKb: 1024 });
    assert.throws(() => bench.parseGnuTime('0.52 0.41\n'), /not "%e %U %S %M"/);
  });

  it('reads what the installed GNU time writes', { skip: noGnuTime() }, () => {
    const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', process.execPath, '-e', 'let x = 0; for (let i = 0; i < 3e7; i++) x += i;'], { encoding: 'utf8' });
    assert.equal(r.status, 0);
    const t = bench.parseGnuTime(r.stderr);
    assert.ok(t.userMs > 0, `a busy loop uses user time: ${r.stderr}`);
    assert.ok(t.maxRssKb > 10_000, `node's peak RSS is above 10 MB: ${r.stderr}`);
  });

  it('fits a line exactly through collinear points, and by least squares otherwise', () => {
    const fit = (xy: Array<[number, number]>): { a: number; b: number; r2: number } => bench.fitLine(xy.map(([x, y]) => ({ x, y })));
    const near = (got: number, want: number): void => assert.ok(Math.abs(got - want) < 1e-9, `${got} is not ${want}`);
    const exact = fit([[0, 100], [10, 120], [1000, 2100]]);
    near(exact.a, 100);
    near(exact.b, 2);
    near(exact.r2, 1);
    // (0,1) (1,3) (2,2): mean x 1, mean y 2, sxy = 1, sxx = 2 → b = 0.5, a = 1.5; sse 1.5 of syy 2 → r² 0.25.
    const noisy = fit([[0, 1], [1, 3], [2, 2]]);
    near(noisy.b, 0.5);
    near(noisy.a, 1.5);
    near(noisy.r2, 0.25);
    assert.throws(() => fit([[1, 1]]), /two points/);
    assert.throws(() => fit([[1, 1], [1, 2]]), /two points/);
  });
});

describe('targets', () => {
  it('a ratio goal is on wall-time medians, passes at the limit, and says when its baseline is missing', () => {
    const at = bench.ratioTarget('vs PR 253', stats(60, 50), stats(100, 100), 0.6, 'PR 253');
    assert.equal(at.pass, true);
    assert.equal(at.got, '0.60× (cpu 0.50×)');
    assert.equal(bench.verdict(at), '0.60× (cpu 0.50×) ≤ 0.6×: pass');
    const over = bench.ratioTarget('vs PR 253', stats(61, 10), stats(100, 100), 0.6, 'PR 253');
    assert.equal(over.pass, false);
    assert.equal(bench.verdict(over), '0.61× (cpu 0.10×) ≤ 0.6×: FAIL');
    const missing = bench.ratioTarget('vs PR 253', stats(61, 10), undefined, 0.6, 'PR 253');
    assert.equal(missing.pass, undefined);
    assert.equal(bench.verdict(missing), 'PR 253 not present');
  });

  it('RSS, identity and the fixed part of the curve', () => {
    assert.equal(bench.rssTarget('peak RSS', stats(1, 1, 150), 150).pass, true);
    assert.equal(bench.verdict(bench.rssTarget('peak RSS', stats(1, 1, 151), 150), true), 'FAIL: 151 MB');
    assert.equal(bench.verdict(bench.identityTarget('identical', []), true), 'pass');
    const d = bench.identityTarget('identical', ['modules.dep', 'modules.alias.bin']);
    assert.equal(d.pass, false);
    assert.equal(bench.verdict(d, true), 'FAIL: modules.dep, modules.alias.bin differ');
    const fixed = bench.fixedPartTarget('fixed part', { a: 130, b: 0, r2: 1 }, stats(75, 60), 50);
    assert.equal(fixed.got, '55 ms');
    assert.equal(fixed.pass, false);
    assert.equal(bench.fixedPartTarget('fixed part', { a: 125, b: 0, r2: 1 }, stats(75, 60), 50).pass, true);
  });

  it('renders a Markdown table with right-aligned columns and escaped pipes', () => {
    assert.deepEqual(bench.markdownTable(['a', 'b'], [['x|y', '1']], new Set([1])), ['| a | b |', '| --- | ---: |', '| x\\|y | 1 |']);
  });
});
