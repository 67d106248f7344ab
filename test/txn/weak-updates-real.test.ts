// weak-updates on real Debian kernels of three ABIs (cloud-amd64 6.1.0-50, -53, -54): between them
// some symbol CRCs changed and others did not (Module.symvers: 50 → 53 differ in 5,785 of 14,378
// shared symbols, 50 → 54 in 6,438), so of the same modules built for -50 some load on -53 and -54,
// some on -53 only, some on neither. A "KMP" is a set of -50's own modules placed in its updates/
// (SUSE) or extra/ (RHEL). After every step of the scripted sequence the links depmod-tx made equal
// those the tools' procedure accepts with kmod's own depmod as the judge (test/support/weak-oracle.ts),
// for both families' rules, and every installed kernel's database equals `depmod -a`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { runCli } from '../support/cli.ts';
import { realKernel, realKernelSkipReason, type RealKernel } from '../support/kernels.ts';
import { diffFileSets, outputFiles } from '../merge/oracle-dir.ts';
import { depmodOfKernel, linkLines, linksOnDisk, rhelOracle, suseOracle, type OracleKmp } from '../support/weak-oracle.ts';

const skip = realKernelSkipReason();

/** -50's modules, with whether they load on -53 / -54 (checked against each Module.symvers). */
const KMPS = {
  // 10 modules: all load on -53; on -54 twofish-x86_64, camellia-x86_64 and fcrypt do not.
  crypto: [
    'kernel/fs/nls/nls_cp437.ko', 'kernel/fs/nls/nls_cp737.ko', 'kernel/fs/nls/nls_cp775.ko', 'kernel/fs/nls/nls_cp850.ko',
    'kernel/crypto/sha512_generic.ko', 'kernel/arch/x86/crypto/sha512-ssse3.ko', 'kernel/crypto/twofish_common.ko',
    'kernel/arch/x86/crypto/twofish-x86_64.ko', 'kernel/arch/x86/crypto/camellia-x86_64.ko', 'kernel/crypto/fcrypt.ko',
  ],
  // ghash-generic loads on both, gf128mul (which it needs) on neither: a group where one member fails.
  ghash: ['kernel/crypto/ghash-generic.ko', 'kernel/crypto/gf128mul.ko'],
  // A KMP that needs another KMP: nhpoly1305-sse2/-avx2 need nhpoly1305 and libpoly1305.
  poly: ['kernel/lib/crypto/libpoly1305.ko', 'kernel/crypto/nhpoly1305.ko'],
  nhpoly: ['kernel/arch/x86/crypto/nhpoly1305-sse2.ko', 'kernel/arch/x86/crypto/nhpoly1305-avx2.ko'],
} as const;

type Family = 'suse' | 'rhel';

interface Scenario {
  root: string;
  conf: string;
  kernels: RealKernel[];
  installed: Set<string>;
  kmps: OracleKmp[];
  family: Family;
}

const SEARCH: Record<Family, string> = {
  suse: 'search updates extra weak-updates kgraft built-in\n',
  rhel: 'search updates extra built-in weak-updates\n',
};

function installKernel(s: Scenario, k: RealKernel): void {
  const moddir = join(s.root, 'lib', 'modules', k.kver);
  mkdirSync(dirname(moddir), { recursive: true });
  execFileSync('cp', ['-al', k.moddir, moddir]);
  mkdirSync(join(s.root, 'boot'), { recursive: true });
  copyFileSync(join(k.root, 'boot', `System.map-${k.kver}`), join(s.root, 'boot', `System.map-${k.kver}`));
  writeFileSync(join(s.root, 'boot', `symvers-${k.kver}.gz`), gzipSync(readFileSync(k.symvers)));
  s.installed.add(k.kver);
}

/** The kernel package gone, its KMPs' files left behind (they belong to the KMPs). */
function removeKernel(s: Scenario, k: RealKernel): void {
  const moddir = join(s.root, 'lib', 'modules', k.kver);
  for (const f of ['kernel', 'modules.order', 'modules.builtin', 'modules.builtin.modinfo']) rmSync(join(moddir, f), { recursive: true, force: true });
  for (const f of [`System.map-${k.kver}`, `symvers-${k.kver}.gz`]) rmSync(join(s.root, 'boot', f));
  s.installed.delete(k.kver);
}

/** A KMP made of the build kernel's own modules: updates/NAME/ (SUSE) or extra/NAME/ (RHEL). Returns its files as rpm lists them. */
function installKmp(s: Scenario, k: RealKernel, name: keyof typeof KMPS): string[] {
  const dir = s.family === 'suse' ? 'updates' : 'extra';
  const rels = KMPS[name].map((m) => `${dir}/${name}/${m.slice(m.lastIndexOf('/') + 1)}`);
  KMPS[name].forEach((m, i) => {
    const to = join(s.root, 'lib', 'modules', k.kver, rels[i]!);
    mkdirSync(dirname(to), { recursive: true });
    linkSync(join(k.moddir, m), to);
  });
  s.kmps.push({ nvr: `${name}-kmp-cloud-amd64-1.0-1`, kver: k.kver, rels });
  return rels.map((r) => `/lib/modules/${k.kver}/${r}`);
}

function removeKmp(s: Scenario, name: string): string[] {
  const p = s.kmps.find((x) => x.nvr.startsWith(`${name}-kmp-`))!;
  for (const r of p.rels) rmSync(join(s.root, 'lib', 'modules', p.kver, r));
  s.kmps = s.kmps.filter((x) => x !== p);
  return p.rels.map((r) => `/lib/modules/${p.kver}/${r}`);
}

function weak(s: Scenario, args: string[], stdin?: string[]): unknown {
  const r = runCli(['weak-updates', '--root', s.root, '--rules', s.family, '--json', ...args], { input: stdin ? `${stdin.join('\n')}\n` : '', timeoutMs: 600_000 });
  assert.equal(r.code, 0, `weak-updates ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout);
}

function check(s: Scenario, step: string, foreign: ReadonlySet<string> = new Set(), log: (m: string) => void = () => {}): void {
  const kernels = s.kernels.map((k) => ({ kver: k.kver, symvers: k.symvers }));
  const expected = s.family === 'suse' ? suseOracle(s.root, s.conf, kernels, s.kmps, foreign) : rhelOracle(s.root, kernels, foreign);
  const got = linksOnDisk(s.root, s.kernels.map((k) => k.kver), foreign);
  assert.deepEqual(linkLines(got), linkLines(expected), `${s.family}: ${step}: links equal the oracle procedure's`);
  log(`${step}: ${[...got].map(([k, m]) => `${k} ${m.size} link(s)`).join(', ')}`);
  for (const kver of s.installed) {
    assert.deepEqual(diffFileSets(outputFiles(join(s.root, 'lib', 'modules', kver)), depmodOfKernel(s.root, kver, s.conf)), [], `${s.family}: ${step}: ${kver} database equals depmod -a`);
  }
}

function scenario(family: Family): void {
  test(`weak-updates, ${family} rules, real cloud kernels: install KMP, newer kernel, build kernel removed, KMP removed, KMP needing a KMP`, { skip, timeout: 1_800_000 }, (t) => {
    const [a, b, c] = [realKernel('cloud-amd64', 50), realKernel('cloud-amd64', 53), realKernel('cloud-amd64', 54)];
    const root = mkdtempSync(join(tmpdir(), `dtx-weak-${family}-`));
    try {
      const conf = join(root, 'etc', 'depmod.d');
      mkdirSync(conf, { recursive: true });
      writeFileSync(join(conf, '00-system.conf'), SEARCH[family]);
      const s: Scenario = { root, conf, kernels: [a, b, c], installed: new Set(), kmps: [], family };
      installKernel(s, a);
      installKernel(s, b);
      for (const k of [a, b]) assert.equal(runCli(['update', '--root', root, k.kver]).code, 0);
      // A link someone else made is left alone, whatever the rules say about it.
      const foreignLink = join(root, 'lib', 'modules', b.kver, 'weak-updates', 'admin', 'nls_cp437.ko');
      mkdirSync(dirname(foreignLink), { recursive: true });
      symlinkSync(join(a.moddir, 'kernel/fs/nls/nls_cp437.ko'), foreignLink);
      assert.equal(runCli(['update', '--root', root, b.kver]).code, 0);
      const foreign = new Set([`${b.kver}/weak-updates/admin/nls_cp437.ko`]);

      // 1. KMPs for -50: crypto (10 modules) and ghash (a member that fails).
      const crypto = installKmp(s, a, 'crypto');
      const ghash = installKmp(s, a, 'ghash');
      let first: unknown;
      if (family === 'suse') {
        first = weak(s, ['--add-kmp', 'crypto-kmp-cloud-amd64-1.0-1'], crypto);
        weak(s, ['--add-kmp', 'ghash-kmp-cloud-amd64-1.0-1'], ghash);
      } else first = weak(s, ['--add-modules'], [...crypto, ...ghash]);
      assert.equal(readlinkSync(foreignLink), join(a.moddir, 'kernel/fs/nls/nls_cp437.ko'), 'the link depmod-tx did not make is as it was');
      if (family === 'suse') {
        // weak-modules2's rule: a file of that name already in weak-updates/ keeps the whole KMP out.
        const onB = (first as { kernels: Array<{ kver: string; rejected: Array<{ unit: string; reason: string }> }> }).kernels.find((k) => k.kver === b.kver)!;
        assert.ok(onB.rejected.some((r) => r.unit === 'crypto-kmp-cloud-amd64-1.0-1' && r.reason === 'file-name'), JSON.stringify(onB.rejected));
      }
      check(s, 'KMPs installed for -50 (a link someone else made in -53)', foreign, (m) => t.diagnostic(m));
      rmSync(foreignLink);
      weak(s, ['--add-kernel', b.kver]);
      check(s, 'the other link gone, -53 recomputed', new Set(), (m) => t.diagnostic(m));
      assert.ok(linksOnDisk(root, [b.kver]).get(b.kver)!.size > 0, `${family}: something is linked into -53`);

      // 2. A newer kernel, -54: some of the KMP's modules load on it, others do not.
      installKernel(s, c);
      weak(s, ['--add-kernel', c.kver]);
      check(s, 'newer kernel -54 installed', new Set(), (m) => t.diagnostic(m));
      // The ABIs were picked for this: on -54 some of the crypto KMP's modules load and others do not.
      const onB = linksOnDisk(root, [b.kver]).get(b.kver)!.size;
      const onC = linksOnDisk(root, [c.kver]).get(c.kver)!.size;
      if (family === 'suse') assert.deepEqual([onB, onC], [10, 0], 'SUSE: the whole KMP on -53, none of it on -54 (all or nothing)');
      else assert.deepEqual([onB, onC], [10, 6], 'RHEL: all ten on -53; on -54 the nls and sha512 modules, not twofish (its group), camellia, fcrypt');

      // 3. The build kernel removed: its KMPs' files stay, and so do the links to them.
      removeKernel(s, a);
      weak(s, ['--remove-kernel', a.kver]);
      check(s, 'build kernel -50 removed', new Set(), (m) => t.diagnostic(m));

      // 4. The crypto KMP removed: no link may dangle.
      const gone = removeKmp(s, 'crypto');
      if (family === 'suse') weak(s, ['--remove-kmp', 'crypto-kmp-cloud-amd64-1.0-1'], gone);
      else weak(s, ['--remove-modules'], gone);
      check(s, 'crypto KMP removed', new Set(), (m) => t.diagnostic(m));

      // 5. A KMP that needs another KMP (both built for -50, whose kernel is gone).
      const nh = installKmp(s, a, 'nhpoly');
      const poly = installKmp(s, a, 'poly');
      if (family === 'suse') {
        weak(s, ['--add-kmp', 'nhpoly-kmp-cloud-amd64-1.0-1'], nh);
        weak(s, ['--add-kmp', 'poly-kmp-cloud-amd64-1.0-1'], poly);
      } else weak(s, ['--add-modules'], [...nh, ...poly]);
      check(s, 'KMP needing a KMP installed', new Set(), (m) => t.diagnostic(m));
    } finally {
      if (!process.env.DTX_TEST_KEEP) rmSync(root, { recursive: true, force: true });
    }
  });
}

scenario('suse');
scenario('rhel');
