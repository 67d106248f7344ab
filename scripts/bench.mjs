// npm run bench: depmod-tx against Debian's depmod on real Debian kernel trees (issues 3 and 4).
//
//   node scripts/bench.mjs [--runs N] [--quick] [--drop-caches] [--out FILE] [--keep] [--node PATH]
//
// Full rebuild (`depmod -a` vs `depmod-tx rebuild`, no depmod-tx cache) per compression, then the
// incremental scenarios (`depmod-tx update` after a 10-module add, after a ~770-module add of
// kernel/drivers/net + kernel/sound, and a no-op) against `depmod -a` on the same tree. Runs of the
// two tools alternate so that load from other processes on the machine hits both alike; each figure
// is the median wall time of N runs, process start included. Peak RSS comes from /usr/bin/time
// (GNU time, %M) when it is installed. Every scenario's output is compared byte for byte with
// depmod's once, so a fast wrong answer cannot pass.
//
// Page cache: by default both tools run warm (every tree is read once before timing). With
// --drop-caches the page cache is dropped before every timed command (needs root; slows down every
// other process on the machine while it runs).
//
// --node PATH runs depmod-tx on another Node.js (e.g. .cache/node22/package/bin/node, fetched by the
// native-zstd test: a runtime with zlib zstd decompresses .ko.zst in-process).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv) {
  const o = { runs: 5, quick: false, dropCaches: false, out: join(repo, 'bench-results.md'), keep: false, node: process.execPath };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--runs') o.runs = Number(argv[++i]);
    else if (a === '--quick') o.quick = true;
    else if (a === '--drop-caches') o.dropCaches = true;
    else if (a === '--out') o.out = argv[++i];
    else if (a === '--keep') o.keep = true;
    else if (a === '--node') o.node = argv[++i];
    else {
      console.error(`unknown option ${a}\nusage: node scripts/bench.mjs [--runs N] [--quick] [--drop-caches] [--out FILE] [--keep] [--node PATH]`);
      process.exit(2);
    }
  }
  if (o.quick) o.runs = 1;
  if (!Number.isInteger(o.runs) || o.runs < 1) throw new Error('--runs wants a positive integer');
  return o;
}

const opts = parseArgs(process.argv.slice(2));

// test/support/kernels.ts is TypeScript: load it through tsx's loader (a dev dependency).
const { register } = await import('tsx/esm/api');
register();
const kernels = await import(join(repo, 'test', 'support', 'kernels.ts'));
const skip = kernels.realKernelSkipReason();
if (skip) {
  console.error(`bench: ${skip}`);
  process.exit(1);
}

console.error('bench: npm run build');
execFileSync('npm', ['run', '-s', 'build'], { cwd: repo, stdio: 'inherit' });
const CLI = join(repo, 'bin', 'depmod-tx.mjs');
const haveTime = existsSync('/usr/bin/time');
const work = join(kernels.kernelCache, `.bench-${process.pid}`);
mkdirSync(work, { recursive: true });
const rssFile = join(work, 'rss');

function dropCaches() {
  if (!opts.dropCaches) return;
  spawnSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

/** Runs one command; wall time in ms (process start included) and peak RSS in MB. */
function timed(cmd, args) {
  dropCaches();
  const argv = haveTime ? ['/usr/bin/time', ['-f', '%M', '-o', rssFile, cmd, ...args]] : [cmd, args];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv[1], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  let rss;
  if (haveTime) {
    const kb = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop());
    if (Number.isFinite(kb)) rss = kb / 1024;
  }
  return { ms, rss };
}

const depmod = (root, kver) => timed('depmod', ['-b', root, '-a', kver]);
const tx = (sub, root, kver, paths = []) => timed(opts.node, [CLI, sub, '-b', root, kver, ...paths]);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function sameOutputs(a, b) {
  const diff = [];
  for (const f of kernels.DEPMOD_OUTPUTS) {
    const pa = join(a, f);
    const pb = join(b, f);
    if (!existsSync(pa) && !existsSync(pb)) continue;
    if (!existsSync(pa) || !existsSync(pb) || !readFileSync(pa).equals(readFileSync(pb))) diff.push(f);
  }
  return diff;
}

/** Every module file under dir, relative to moddir, sorted. */
function moduleFiles(moddir, under = '') {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ko(\.(xz|zst|gz))?$/.test(e.name)) out.push(relative(moddir, p));
    }
  };
  if (existsSync(join(moddir, under))) walk(join(moddir, under));
  return out.sort();
}

/** Reads every file of a tree once so that the first timed run is not the only cold one. */
function warm(root) {
  spawnSync('sh', ['-c', `find '${root}' -type f -print0 | xargs -0 cat > /dev/null`]);
}

const rows = [];
function row(scenario, d, t, target) {
  const dm = d.length ? median(d.map((x) => x.ms)) : undefined;
  const tm = median(t.map((x) => x.ms));
  const rss = t.some((x) => x.rss !== undefined) ? Math.max(...t.map((x) => x.rss ?? 0)) : undefined;
  const drss = d.length && d.some((x) => x.rss !== undefined) ? Math.max(...d.map((x) => x.rss ?? 0)) : undefined;
  const ratio = dm !== undefined ? tm / dm : undefined;
  const checks = [];
  if (target.ratio !== undefined) checks.push(ratio !== undefined && ratio <= target.ratio);
  if (target.ms !== undefined) checks.push(tm <= target.ms);
  if (target.rssMb !== undefined) checks.push(rss !== undefined && rss < target.rssMb);
  if (target.identical === false) checks.push(false);
  const want = [
    target.ratio !== undefined ? `≤ ${target.ratio}×` : undefined,
    target.ms !== undefined ? `≤ ${target.ms} ms` : undefined,
    target.rssMb !== undefined ? `RSS < ${target.rssMb} MB` : undefined,
  ].filter(Boolean).join(', ');
  const r = {
    scenario,
    depmod: dm,
    tx: tm,
    ratio,
    rss,
    drss,
    target: want || '—',
    result: target.identical === false ? 'FAIL (output differs)' : checks.length === 0 ? '—' : checks.every(Boolean) ? 'pass' : 'FAIL',
  };
  rows.push(r);
  console.error(`bench: ${scenario}: depmod ${dm?.toFixed(0) ?? '-'} ms, depmod-tx ${tm.toFixed(0)} ms${ratio !== undefined ? `, ratio ${ratio.toFixed(3)}` : ''}${rss !== undefined ? `, RSS ${rss.toFixed(0)} MB` : ''} → ${r.result}`);
}

const flavour = opts.quick ? 'cloud-amd64' : 'amd64';
const base = kernels.realKernel(flavour);
const kver = base.kver;
const comps = opts.quick ? ['none', 'xz'] : ['none', 'xz', 'zst'];
const trees = Object.fromEntries(comps.map((c) => [c, kernels.recompressedKernel(base, c)]));
const clone = (k, name) => {
  const root = join(work, name);
  kernels.cloneRoot(k.root, root);
  return { root, moddir: join(root, relative(k.root, k.moddir)) };
};
const clearCache = (root) => rmSync(join(root, 'var', 'cache', 'depmod-tx'), { recursive: true, force: true });

try {
  for (const c of comps) warm(trees[c].moddir);

  // 1. Full rebuild, no depmod-tx cache.
  for (const c of comps) {
    const d = clone(trees[c], `rebuild-${c}-depmod`);
    const t = clone(trees[c], `rebuild-${c}-tx`);
    const dr = [];
    const tr = [];
    for (let i = 0; i < opts.runs; i++) {
      // Alternate which tool goes first, so neither always follows the other's page-cache footprint.
      const first = i % 2 === 0;
      if (first) dr.push(depmod(d.root, kver));
      clearCache(t.root);
      tr.push(tx('rebuild', t.root, kver));
      if (!first) dr.push(depmod(d.root, kver));
    }
    const diff = sameOutputs(d.moddir, t.moddir);
    const n = moduleFiles(t.moddir).length;
    row(`rebuild, ${n} modules, ${c === 'none' ? '.ko' : `.ko.${c}`}`, dr, tr, {
      ratio: c === 'zst' ? 1.2 : 1.0,
      rssMb: 400,
      identical: diff.length === 0 ? undefined : false,
    });
    if (diff.length) console.error(`bench: rebuild ${c}: differs from depmod in ${diff.join(', ')}`);
  }

  // 2. Incremental: a package adds modules to a tree whose cache is current.
  const addScenarios = [
    { comp: 'xz', name: '10-module add', pick: (all) => spread(all, 10), target: { ratio: 0.04, ms: 200 } },
    { comp: 'none', name: '10-module add', pick: (all) => spread(all, 10), target: { ratio: 0.2 } },
    {
      comp: 'xz',
      name: 'net+sound add',
      pick: (all) => all.filter((p) => p.startsWith('kernel/drivers/net/') || p.startsWith('kernel/sound/')),
      target: { ratio: 0.25 },
    },
  ];
  let noop;
  for (const s of addScenarios) {
    if (!comps.includes(s.comp)) continue;
    const d = clone(trees[s.comp], `add-${s.comp}-depmod`);
    const t = clone(trees[s.comp], `add-${s.comp}-tx`);
    const picked = s.pick(moduleFiles(t.moddir));
    const aside = join(t.root, 'bench-aside');
    const moveOut = () => {
      for (const p of picked) {
        mkdirSync(dirname(join(aside, p)), { recursive: true });
        renameSync(join(t.moddir, p), join(aside, p));
      }
    };
    const moveIn = () => {
      for (const p of picked) renameSync(join(aside, p), join(t.moddir, p));
    };
    moveOut();
    tx('rebuild', t.root, kver);
    const dr = [];
    const tr = [];
    const nr = [];
    for (let i = 0; i < opts.runs; i++) {
      moveIn();
      // Absolute paths inside the root, as a package manager's file list names them under --root.
      tr.push(tx('update', t.root, kver, picked.map((p) => join(t.moddir, p))));
      dr.push(depmod(d.root, kver));
      if (i === 0) {
        const diff = sameOutputs(d.moddir, t.moddir);
        if (diff.length) {
          s.target = { ...s.target, identical: false };
          console.error(`bench: ${s.name} ${s.comp}: differs from depmod in ${diff.join(', ')}`);
        }
      }
      if (s.comp === 'xz' && picked.length === 10) nr.push(tx('update', t.root, kver));
      moveOut();
      tx('update', t.root, kver);
    }
    row(`update: ${s.name} (${picked.length} modules), ${s.comp === 'none' ? '.ko' : `.ko.${s.comp}`}`, dr, tr, s.target);
    if (nr.length) noop = { dr, nr };
  }
  if (noop) row('update: no-op, .ko.xz', noop.dr, noop.nr, { ms: 150 });
} finally {
  if (!opts.keep) rmSync(work, { recursive: true, force: true });
}

/** n module paths spread evenly over the sorted list (different directories, like a real package). */
function spread(all, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(all[Math.floor(((i + 0.5) * all.length) / n)]);
  return out;
}

const fmt = (x, unit = ' ms') => (x === undefined ? '—' : `${x.toFixed(0)}${unit}`);
const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const lines = [
  `# depmod-tx bench (${kver}, ${opts.runs} run${opts.runs > 1 ? 's' : ''} each, median wall time incl. process start)`,
  '',
  `depmod-tx on Node ${execFileSync(opts.node, ['--version'], { encoding: 'utf8' }).trim()}, ${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores, load average at end ${load}, page cache ${opts.dropCaches ? 'dropped before each command' : 'warm'}.`,
  '',
  '| scenario | depmod -a | depmod-tx | ratio | peak RSS depmod / depmod-tx | target | result |',
  '| --- | ---: | ---: | ---: | ---: | --- | --- |',
  ...rows.map(
    (r) =>
      `| ${r.scenario} | ${fmt(r.depmod)} | ${fmt(r.tx)} | ${r.ratio === undefined ? '—' : r.ratio.toFixed(3)} | ${fmt(r.drss, ' MB')} / ${fmt(r.rss, ' MB')} | ${r.target} | ${r.result} |`,
  ),
  '',
];
const md = lines.join('\n');
process.stdout.write(md);
writeFileSync(opts.out, md);
console.error(`bench: written to ${opts.out}`);
process.exitCode = rows.every((r) => r.result !== 'FAIL' && !r.result.startsWith('FAIL')) ? 0 : 1;
