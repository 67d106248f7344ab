// The issue-24 goal row: `--add-kmp` of a 10-module KMP on a machine with 3 kernels, against the
// oracle procedure weak-modules2 runs for the same install (its full depmod runs), timed in the same
// run, on .ko.xz and plain .ko trees. Prints medians and the ratio; writes nothing outside a temp dir.
//
//   node --import tsx scripts/weak-bench.ts [--runs N] [--formats xz,none]
//
// Setup: the Debian cloud-amd64 kernels 6.1.0-50 (the KMP's build kernel), -53 and -54 in one root
// with SUSE's depmod.d search line, each with a depmod-tx module cache (an installed system). Each
// run copies the KMP's ten modules into -50's updates/, then times, alternating which goes first:
//   depmod-tx   the built CLI: `depmod-tx weak-updates --rules suse --add-kmp NVR` (file list on
//               stdin): decide from the caches, link, merge the three kernels once each.
//   oracle      weak-modules2 --add-kmp's depmod runs on a copy of the root: per kernel of the
//               flavour the "consistency" depmod -ae -E symvers of the real tree; for the build kernel
//               the real depmod; for each other kernel a symlinked copy of its tree with the KMP's
//               links, the trial depmod -ae -E symvers of it, then the real depmod -ae.
// and then undoes the install (untimed). Both are checked to leave the same links.
import { execFileSync, spawnSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { realKernel, realKernelSkipReason, recompressedKernel, repoRoot, type Compression, type RealKernel } from '../test/support/kernels.ts';
import { kmod30, runOracle } from '../test/support/kmod-oracles.ts';

const KMP = [
  'kernel/fs/nls/nls_cp437.ko', 'kernel/fs/nls/nls_cp737.ko', 'kernel/fs/nls/nls_cp775.ko', 'kernel/fs/nls/nls_cp850.ko',
  'kernel/crypto/sha512_generic.ko', 'kernel/arch/x86/crypto/sha512-ssse3.ko', 'kernel/crypto/twofish_common.ko',
  'kernel/arch/x86/crypto/twofish-x86_64.ko', 'kernel/arch/x86/crypto/camellia-x86_64.ko', 'kernel/crypto/fcrypt.ko',
];
const NVR = 'crypto-kmp-cloud-amd64-1.0-1';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] ?? dflt : dflt;
}
const runs = Number(arg('runs', '3'));
const formats = arg('formats', 'xz,none').split(',') as Compression[];

const skip = realKernelSkipReason();
if (skip !== undefined) {
  console.error(`weak-bench: ${skip}`);
  process.exit(1);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cli = join(repoRoot, 'bin', 'depmod-tx.mjs');
const depmod = kmod30();

function run(argv: string[], input?: string): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', input: input ?? '', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stdout}${r.stderr}`);
}

function weakLinks(root: string, kver: string): string[] {
  const r = spawnSync('find', [join(root, 'lib/modules', kver, 'weak-updates'), '-type', 'l', '-printf', '%P\n'], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').filter((l) => l !== '').sort();
}

function bench(comp: Compression): { ours: number; oracle: number; links: string } {
  const ks = [50, 53, 54].map((n) => recompressedKernel(realKernel('cloud-amd64', n), comp));
  const [a, ...others] = ks as [RealKernel, RealKernel, RealKernel];
  const suffix = comp === 'none' ? '' : `.${comp}`;
  const dir = mkdtempSync(join(tmpdir(), 'dtx-weak-bench-'));
  try {
    const root = join(dir, 'root');
    mkdirSync(join(root, 'etc/depmod.d'), { recursive: true });
    writeFileSync(join(root, 'etc/depmod.d/00-system.conf'), 'search updates extra weak-updates kgraft built-in\n');
    mkdirSync(join(root, 'boot'), { recursive: true });
    const symvers = new Map<string, string>();
    for (const k of ks) {
      mkdirSync(join(root, 'lib/modules'), { recursive: true });
      execFileSync('cp', ['-al', k.moddir, join(root, 'lib/modules', k.kver)]);
      writeFileSync(join(root, 'boot', `System.map-${k.kver}`), readFileSync(join(k.root, 'boot', `System.map-${k.kver}`)));
      writeFileSync(join(root, 'boot', `symvers-${k.kver}.gz`), gzipSync(readFileSync(k.symvers)));
      symvers.set(k.kver, k.symvers);
      run([process.execPath, cli, 'update', '--root', root, k.kver]);
    }
    const rels = KMP.map((m) => `updates/crypto/${m.slice(m.lastIndexOf('/') + 1)}${suffix}`);
    const install = (): void => {
      KMP.forEach((m, i) => {
        const to = join(root, 'lib/modules', a.kver, rels[i]!);
        mkdirSync(dirname(to), { recursive: true });
        linkSync(join(a.moddir, `${m}${suffix}`), to);
      });
    };
    const paths = rels.map((r) => `/lib/modules/${a.kver}/${r}`).join('\n');
    const ours = (): number => {
      const t0 = performance.now();
      run([process.execPath, cli, 'weak-updates', '--root', root, '--rules', 'suse', '--no-initramfs', '--add-kmp', NVR], `${paths}\n`);
      return performance.now() - t0;
    };
    const undo = (): void => {
      for (const r of rels) rmSync(join(root, 'lib/modules', a.kver, r));
      run([process.execPath, cli, 'weak-updates', '--root', root, '--rules', 'suse', '--no-initramfs', '--remove-kmp', NVR], `${paths}\n`);
    };
    const oracle = (): { ms: number; links: Map<string, string[]> } => {
      // A copy of the root as it is before the call (KMP files in place, no link yet): kmod writes into it.
      const work = join(dir, 'oracle');
      rmSync(work, { recursive: true, force: true });
      execFileSync('cp', ['-as', root, work]);
      for (const k of ks) for (const f of readdirSync(join(work, 'lib/modules', k.kver))) if (f.startsWith('modules.') && !['modules.order', 'modules.builtin', 'modules.builtin.modinfo'].includes(f)) rmSync(join(work, 'lib/modules', k.kver, f));
      const conf = ['-C', join(root, 'etc/depmod.d')];
      const links = new Map<string, string[]>();
      const t0 = performance.now();
      for (const k of ks) {
        // has_unresolved_symbols "$krel" "/": the consistency check, a full depmod of the real tree.
        runOracle(depmod, ['-b', work, ...conf, '-ae', '-E', symvers.get(k.kver)!, k.kver]);
        if (k === a) {
          runOracle(depmod, ['-b', work, ...conf, '-ae', k.kver]);
          continue;
        }
        const trial = join(dir, `trial-${k.kver}`);
        const tm = join(trial, 'lib/modules', k.kver);
        mkdirSync(join(tm, 'weak-updates'), { recursive: true });
        for (const e of readdirSync(join(work, 'lib/modules', k.kver))) if (!e.startsWith('modules.') && e !== 'weak-updates') execFileSync('cp', ['-as', join(work, 'lib/modules', k.kver, e), join(tm, e)]);
        for (const r of rels) {
          mkdirSync(dirname(join(tm, 'weak-updates', r)), { recursive: true });
          symlinkSync(join(work, 'lib/modules', a.kver, r), join(tm, 'weak-updates', r));
        }
        const out = runOracle(depmod, ['-b', trial, ...conf, '-ae', '-E', symvers.get(k.kver)!, k.kver]);
        const ok = !/ (needs unknown|disagrees about version of) symbol /.test(out.stderr);
        rmSync(trial, { recursive: true, force: true });
        if (ok) {
          for (const r of rels) {
            mkdirSync(dirname(join(work, 'lib/modules', k.kver, 'weak-updates', r)), { recursive: true });
            symlinkSync(join(work, 'lib/modules', a.kver, r), join(work, 'lib/modules', k.kver, 'weak-updates', r));
          }
          links.set(k.kver, rels.map((r) => `weak-updates/${r}`).sort());
        } else links.set(k.kver, []);
        runOracle(depmod, ['-b', work, ...conf, '-ae', k.kver]);
      }
      const ms = performance.now() - t0;
      rmSync(work, { recursive: true, force: true });
      return { ms, links };
    };
    const ourTimes: number[] = [];
    const oracleTimes: number[] = [];
    let agreed = '';
    for (let i = 0; i < runs; i++) {
      install();
      let o: ReturnType<typeof oracle>;
      if (i % 2 === 0) {
        o = oracle();
        ourTimes.push(ours());
      } else {
        ourTimes.push(ours());
        // The oracle works on the state before the call: undo ours first, install again.
        undo();
        install();
        o = oracle();
        run([process.execPath, cli, 'weak-updates', '--root', root, '--rules', 'suse', '--no-initramfs', '--add-kmp', NVR], `${paths}\n`);
      }
      oracleTimes.push(o.ms);
      for (const k of others) {
        const got = weakLinks(root, k.kver).join(' ');
        const want = (o.links.get(k.kver) ?? []).map((l) => l.slice('weak-updates/'.length)).join(' ');
        if (got !== want) throw new Error(`${comp}: ${k.kver}: depmod-tx linked [${got}], the oracle procedure [${want}]`);
      }
      agreed = others.map((k) => `${k.kver}: ${weakLinks(root, k.kver).length} links`).join(', ');
      undo();
    }
    return { ours: median(ourTimes), oracle: median(oracleTimes), links: agreed };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`| trees | depmod-tx --add-kmp (ms) | oracle procedure (ms) | ratio | target | links (same in both) |`);
console.log(`| --- | ---: | ---: | ---: | --- | --- |`);
for (const comp of formats) {
  const r = bench(comp);
  const target = comp === 'none' ? 0.5 : 0.1;
  const ratio = r.ours / r.oracle;
  console.log(`| cloud-amd64 ×3, ${comp === 'none' ? '.ko' : `.ko.${comp}`} | ${r.ours.toFixed(0)} | ${r.oracle.toFixed(0)} | ${ratio.toFixed(3)} | ≤ ${target} ${ratio <= target ? 'pass' : 'FAIL'} | ${r.links} |`);
}
