// npm run demo: depmod-tx at work on a built-in example. A fixture root with two kernels gets a
// saved transaction log (a KMP installed for both kernels, one module of the first removed)
// replayed through the bundled CLI; the per-kernel summary is printed and, where Debian's depmod
// is installed, every output file is compared with `depmod -a` on the same tree.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFixtureTree, type FixtureTreeModule } from '../test/support/fixture-tree.ts';

const repo = resolve(import.meta.dirname, '..');
const root = join(repo, '.cache', 'demo-root');
const cli = join(repo, 'bin', 'depmod-tx.mjs');
const kernels = ['6.1.0-demo-amd64', '6.12.0-demo-amd64'];

function step(s: string): void {
  console.log(`\n== ${s}`);
}

function run(args: string[]): void {
  console.log(`$ depmod-tx ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`depmod-tx ${args[0]} exited ${r.status}`);
}

step('build the bundled CLI');
execFileSync('npm', ['run', '-s', 'build'], { cwd: repo, stdio: 'inherit' });

step(`fixture root ${root}: two kernels with a small base tree each`);
rmSync(root, { recursive: true, force: true });
mkdirSync(join(root, 'etc', 'depmod.d'), { recursive: true });
const base: FixtureTreeModule[] = [
  { path: 'kernel/lib/core-lib.ko', module: { modinfo: [['license', 'GPL']], exports: [{ name: 'core_hello', crc: 0x1111 }] } },
  { path: 'kernel/drivers/net/demo-net.ko', module: { modinfo: [['alias', 'pci:v00008086d00001234sv*sd*bc*sc*i*'], ['license', 'GPL']], imports: [{ name: 'core_hello', crc: 0x1111 }], exports: [{ name: 'net_hello', crc: 0x2222 }] } },
  { path: 'kernel/drivers/char/demo-char.ko', module: { modinfo: [['alias', 'char-major-10-200'], ['alias', 'devname:demo'], ['license', 'GPL']] } },
  { path: 'kernel/drivers/old/legacy.ko', module: { modinfo: [['softdep', 'pre: core_lib'], ['license', 'GPL']] } },
];
for (const kver of kernels) {
  writeFixtureTree(root, kver, base, { order: base.map((m) => m.path) });
  // The kernel's symbol versions, where linux-headers puts them: KABI is checked against these.
  const headers = join(root, 'usr', 'src', `linux-headers-${kver}`);
  mkdirSync(headers, { recursive: true });
  writeFileSync(join(headers, 'Module.symvers'), '0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n');
  run(['rebuild', '--root', root, '--config', join(root, 'etc', 'depmod.d'), kver]);
}

step('a package transaction: a KMP adds modules to both kernels, a kernel-extra update removes one');
const kmp: FixtureTreeModule[] = [
  { path: 'updates/dkms/vendor-wifi.ko', module: { modinfo: [['alias', 'usb:v0BDAp8179d*dc*dsc*dp*ic*isc*ip*in*'], ['license', 'GPL']], imports: [{ name: 'net_hello', crc: 0x2222 }, { name: 'core_hello', crc: 0x1111 }] } },
  { path: 'updates/dkms/vendor-helper.ko', module: { modinfo: [['license', 'GPL']], imports: [{ name: 'core_hello', crc: 0x9999 }] } },
];
const log: string[] = [];
for (const kver of kernels) {
  writeFixtureTree(root, kver, kmp, { order: base.map((m) => m.path) });
  for (const m of kmp) log.push(JSON.stringify({ op: 'add', path: `/lib/modules/${kver}/${m.path}`, package: 'vendor-wifi-kmp' }));
}
rmSync(join(root, 'lib', 'modules', kernels[0]!, 'kernel/drivers/old/legacy.ko'));
log.push(JSON.stringify({ op: 'remove', path: `/lib/modules/${kernels[0]}/kernel/drivers/old/legacy.ko`, package: 'linux-image-extra' }));
const logFile = join(root, 'saved-transaction.jsonl');
writeFileSync(logFile, `${log.join('\n')}\n`);
console.log(readFileSync(logFile, 'utf8').trimEnd());

step('replay the saved transaction log: one merge per kernel (vendor-helper was built against another core_lib: a KABI warning)');
run(['replay', '--root', root, logFile]);
run(['status', '--root', root]);

step('replaying the same log again changes nothing; the known KABI mismatch is still reported');
run(['replay', '--root', root, logFile]);
run(['status', '--root', root]);

const depmod = ['/usr/sbin/depmod', '/sbin/depmod'].find((p) => spawnSync(p, ['--version']).status === 0);
step(depmod ? 'compare with Debian depmod -a on a copy of each tree' : 'Debian depmod not installed: comparison skipped');
if (depmod) {
  for (const kver of kernels) {
    const copy = join(repo, '.cache', 'demo-oracle');
    rmSync(copy, { recursive: true, force: true });
    execFileSync('cp', ['-a', root, copy]);
    execFileSync(depmod, ['-b', copy, '-C', join(copy, 'etc', 'depmod.d'), '-a', kver]);
    const dir = (r: string) => join(r, 'lib', 'modules', kver);
    const files = readdirSync(dir(copy)).filter((f) => f.startsWith('modules.') && !['modules.order', 'modules.builtin', 'modules.builtin.modinfo'].includes(f));
    const differ = files.filter((f) => Buffer.compare(readFileSync(join(dir(copy), f)), readFileSync(join(dir(root), f))) !== 0);
    console.log(`${kver}: ${files.length} files, ${differ.length ? `DIFFERENT: ${differ.join(', ')}` : 'all byte-identical to depmod -a'}`);
    if (differ.length) process.exitCode = 1;
  }
}
