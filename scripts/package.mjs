// npm run package: builds dist-pkg/depmod-tx_VERSION_all.deb (dpkg-deb --build of a staged tree)
// and dist-pkg/depmod-tx-VERSION-1.noarch.rpm (rpmbuild of rpm/depmod-tx.spec over the same tree).
//
// Both packages carry one staged payload, so what rpm and dpkg install is the same bytes:
//   /usr/bin/depmod-tx                       sh wrapper: node + the bundle next to it
//   /usr/lib/depmod-tx/depmod-tx.mjs         esbuild bundle (scripts/build.mjs), parse-worker.mjs beside it
//   /usr/lib/depmod-tx/hooks/depmod-tx-hook  the entry point rpm, dpkg and apt call
//   /usr/share/man/man1/depmod-tx.1.gz       man page, and /usr/share/bash-completion/completions/
//                                            depmod-tx: both rendered by the build from the CLI's table
// Nothing in it is native code, hence Architecture: all / BuildArch: noarch (pacman: any): .xz
// modules go through xz(1), a dependency of every package, which is faster than the lzma-native
// addon for single files and batches alike (measured, docs/packagers.md "Architectures"); the addon
// is not shipped.
//
// Options: --out DIR (default dist-pkg), --only deb|rpm|pacman, --no-build (package dist/ as it is;
// by default the bundle is built into OUT/dist, so packaging never rewrites the dist/ that tests
// and other builds read at the same time).
// Needs dpkg-deb (dpkg) and rpmbuild (Debian: apt-get install rpm); --only pacman (not built by
// default) builds pacman/PKGBUILD with makepkg (Debian: apt-get install makepkg libarchive-tools).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
const version = pkg.version;

function arg(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const out = resolve(arg('--out') ?? join(repo, 'dist-pkg'));
const only = arg('--only');
const noBuild = process.argv.includes('--no-build');

// Reproducible file times: the last commit's time, as SOURCE_DATE_EPOCH tools expect.
const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? (() => {
  try {
    return execFileSync('git', ['-C', repo, 'log', '-1', '--format=%ct'], { encoding: 'utf8' }).trim();
  } catch {
    return '0';
  }
})()) || 0;

const dist = noBuild ? join(repo, 'dist') : join(out, 'dist');
if (!noBuild) execFileSync(process.execPath, [join(repo, 'scripts', 'build.mjs'), '--outdir', dist], { cwd: repo, stdio: 'inherit' });
for (const f of ['depmod-tx.mjs', 'parse-worker.mjs', 'depmod-tx.1', 'depmod-tx.bash-completion']) {
  if (!existsSync(join(dist, f))) throw new Error(`${dist}/${f} is missing: run npm run build`);
}

const stage = join(out, 'stage');
const libdir = join(stage, 'usr', 'lib', 'depmod-tx');
rmSync(stage, { recursive: true, force: true });
mkdirSync(join(libdir, 'hooks'), { recursive: true });
mkdirSync(join(stage, 'usr', 'bin'), { recursive: true });
// The bundle: entry points plus the chunks esbuild splits out (commands load theirs on demand).
for (const f of readdirSync(dist, { recursive: true })) {
  const name = String(f);
  if (!name.endsWith('.mjs')) continue;
  mkdirSync(dirname(join(libdir, name)), { recursive: true });
  copyFileSync(join(dist, name), join(libdir, name));
}
// Every file of hooks/: the hook itself, the zypp commit plugin and the alpm hook (the rpm spec and
// the PKGBUILD install the last two where libzypp and pacman look for them).
for (const f of readdirSync(join(repo, 'hooks'))) {
  if (f === 'README.md') continue;
  copyFileSync(join(repo, 'hooks', f), join(libdir, 'hooks', f));
  chmodSync(join(libdir, 'hooks', f), statSync(join(repo, 'hooks', f)).mode & 0o111 ? 0o755 : 0o644);
}
// The wrapper finds the bundle from its own location, so it also works where the tree is not at /
// (dpkg --root with --force-script-chrootless runs scripts outside the root).
writeFileSync(
  join(stage, 'usr', 'bin', 'depmod-tx'),
  `#!/bin/sh
# depmod-tx ${version}: runs the bundled CLI with the system's Node.js (>= 18).
here=$(dirname "$(readlink -f "$0")")
# Called through a link named weak-modules2 or weak-modules, it is that tool (src/cli/bin.ts).
export DEPMOD_TX_CALLED_AS="\${0##*/}"
exec "\${DEPMOD_TX_NODE:-node}" "$here/../lib/depmod-tx/depmod-tx.mjs" "$@"
`,
  { mode: 0o755 },
);
chmodSync(join(stage, 'usr', 'bin', 'depmod-tx'), 0o755);
// SUSE's and RHEL's weak-updates tools, for scriptlets to call instead of theirs (docs/packagers.md).
for (const tool of ['weak-modules2', 'weak-modules']) symlinkSync('../../bin/depmod-tx', join(libdir, tool));
const mandir = join(stage, 'usr', 'share', 'man', 'man1');
mkdirSync(mandir, { recursive: true });
// gzip -9n, as Debian policy asks of man pages: no name or time in the header, so reproducible.
writeFileSync(join(mandir, 'depmod-tx.1.gz'), gzipSync(readFileSync(join(dist, 'depmod-tx.1')), { level: 9 }));
const completions = join(stage, 'usr', 'share', 'bash-completion', 'completions');
mkdirSync(completions, { recursive: true });
copyFileSync(join(dist, 'depmod-tx.bash-completion'), join(completions, 'depmod-tx'));
const docdir = join(stage, 'usr', 'share', 'doc', 'depmod-tx');
mkdirSync(docdir, { recursive: true });
copyFileSync(join(repo, 'docs', 'packagers.md'), join(docdir, 'packagers.md'));

function walk(dir, f) {
  f(dir);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, f);
    else f(p);
  }
}
function normalise(tree) {
  walk(tree, (p) => {
    const st = statSync(p);
    if (!st.isDirectory()) chmodSync(p, st.mode & 0o111 ? 0o755 : 0o644);
    else chmodSync(p, 0o755);
  });
  walk(tree, (p) => utimesSync(p, epoch, epoch));
}
normalise(stage);
mkdirSync(out, { recursive: true });

function sizeKiB(tree) {
  let n = 0;
  walk(tree, (p) => {
    n += Math.ceil(statSync(p).size / 1024);
  });
  return n;
}

function buildDeb() {
  const tree = join(out, 'deb-root');
  rmSync(tree, { recursive: true, force: true });
  cpSync(stage, tree, { recursive: true, verbatimSymlinks: true });
  for (const f of readdirSync(join(repo, 'debian'))) {
    if (f === 'README.md') continue;
    if (f === '50depmod-tx') {
      mkdirSync(join(tree, 'etc', 'apt', 'apt.conf.d'), { recursive: true });
      copyFileSync(join(repo, 'debian', f), join(tree, 'etc', 'apt', 'apt.conf.d', f));
      continue;
    }
    mkdirSync(join(tree, 'DEBIAN'), { recursive: true });
    const text = readFileSync(join(repo, 'debian', f), 'utf8').replaceAll('@VERSION@', version).replaceAll('@INSTALLED_SIZE@', String(sizeKiB(stage)));
    writeFileSync(join(tree, 'DEBIAN', f), text, { mode: ['postinst', 'prerm', 'postrm'].includes(f) ? 0o755 : 0o644 });
  }
  normalise(tree);
  const deb = join(out, `depmod-tx_${version}_all.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', tree, deb], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch) } });
  rmSync(tree, { recursive: true, force: true });
  return deb;
}

/** The staged payload as one tar in DIR: the rpm's Source0 and the PKGBUILD's source. */
function stageTar(dir) {
  execFileSync('tar', ['--sort=name', `--mtime=@${epoch}`, '--owner=0', '--group=0', '--numeric-owner', '-cf', join(dir, `depmod-tx-${version}-stage.tar`), '-C', stage, '.']);
}

function buildRpm() {
  const top = join(out, 'rpmbuild');
  rmSync(top, { recursive: true, force: true });
  for (const d of ['SOURCES', 'SPECS', 'BUILD', 'RPMS', 'SRPMS', 'BUILDROOT']) mkdirSync(join(top, d), { recursive: true });
  stageTar(join(top, 'SOURCES'));
  // rpmbuild traces every %install line on stderr: shown only when it fails.
  const r = spawnSync(
    'rpmbuild',
    ['-bb', '--nodeps', '--target', 'noarch', '--define', `_topdir ${top}`, '--define', `dtx_version ${version}`, join(repo, 'rpm', 'depmod-tx.spec')],
    { encoding: 'utf8', env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch) } },
  );
  if (r.status !== 0) throw new Error(`rpmbuild failed (${r.error?.message ?? r.status}):\n${r.stdout}${r.stderr}`);
  const name = `depmod-tx-${version}-1.noarch.rpm`;
  const built = join(top, 'RPMS', 'noarch', name);
  const rpm = join(out, name);
  copyFileSync(built, rpm);
  rmSync(top, { recursive: true, force: true });
  return rpm;
}

/**
 * pacman/PKGBUILD through makepkg (pacman's own, Debian: makepkg + libarchive-tools). makepkg
 * refuses to run as root, so as root it runs as nobody (65534) in a temporary directory nobody owns.
 */
function buildPacman() {
  // Not under OUT: nobody must be able to reach it, and OUT may sit in a private directory.
  const top = mkdtempSync(join(tmpdir(), 'depmod-tx-makepkg-'));
  chmodSync(top, 0o755);
  stageTar(top);
  writeFileSync(join(top, 'PKGBUILD'), readFileSync(join(repo, 'pacman', 'PKGBUILD'), 'utf8').replaceAll('@VERSION@', version));
  copyFileSync(join(repo, 'pacman', 'depmod-tx.install'), join(top, 'depmod-tx.install'));
  const asRoot = process.getuid?.() === 0;
  if (asRoot) execFileSync('chown', ['-R', '65534:65534', top]);
  const env = { ...process.env, HOME: top, PKGDEST: top, SRCDEST: top, BUILDDIR: join(top, 'build'), PKGEXT: '.pkg.tar.zst', SOURCE_DATE_EPOCH: String(epoch) };
  const cmd = asRoot ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'makepkg'] : ['makepkg'];
  // --nodeps: nodejs and util-linux are Arch packages the build host need not have.
  const r = spawnSync(cmd[0], [...cmd.slice(1), '--nodeps', '--noconfirm', '--force'], { cwd: top, encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`makepkg failed (${r.error?.message ?? r.status}):\n${r.stdout}${r.stderr}`);
  const name = readdirSync(top).find((f) => f.startsWith(`depmod-tx-${version}-1-`) && f.endsWith('.pkg.tar.zst'));
  if (name === undefined) throw new Error(`makepkg made no depmod-tx-${version}-1-*.pkg.tar.zst:\n${r.stdout}${r.stderr}`);
  copyFileSync(join(top, name), join(out, name));
  rmSync(top, { recursive: true, force: true });
  return join(out, name);
}

const made = [];
if (only === 'pacman') made.push(buildPacman());
else {
  if (only !== 'rpm') made.push(buildDeb());
  if (only !== 'deb') made.push(buildRpm());
}
rmSync(stage, { recursive: true, force: true });
if (!noBuild) rmSync(dist, { recursive: true, force: true });
for (const m of made) console.log(m);
