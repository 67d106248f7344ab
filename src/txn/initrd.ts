// After a commit changed a kernel's module database, that kernel's initrd is stale: the kernel
// package's own initrd build (its %posttrans / postinst) ran earlier in the same transaction,
// against the old database. This asks the distribution's tool to rebuild it.
//
// Policy (/etc/depmod-tx.conf, src/txn/settings.ts: `initrd = regenerate | flag | off`, default regenerate):
//   regenerate  run update-initramfs -u -k KVER (Debian/Ubuntu) or dracut -f --kver KVER
//   flag        SUSE: touch /run/regenerate-initrd/KVER; regenerate-initrd-posttrans builds it later
//   off         do nothing
// Never on ostree systems (/run/ostree-booted: the image is built elsewhere), never for a kernel
// without an initrd, and never into a --root other than / (tools would act on the host).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSettings } from './settings.ts';

export type InitrdPolicy = 'regenerate' | 'flag' | 'off';

export interface InitrdAction {
  kver: string;
  action: 'regenerated' | 'flagged' | 'skipped' | 'failed';
  detail: string;
}

export interface InitrdEnv {
  root: string;
  /** Runs a command; resolves with its exit code. Injected so tests can observe calls. */
  exec: (cmd: string, args: string[]) => Promise<{ code: number; stderr: string }>;
  /** Finds a program on PATH (or in sbin directories). */
  which: (cmd: string) => string | undefined;
}

/** `initrd = ...` from ROOT/etc/depmod-tx.conf (src/txn/settings.ts); unknown values fall back to the default with a warning. */
export function readInitrdPolicy(root: string, warn: (msg: string) => void = () => {}): InitrdPolicy {
  return readSettings(root, warn).initrd;
}

/** Common initrd file names: Debian (initrd.img-KVER), Fedora/dracut (initramfs-KVER.img), SUSE (initrd-KVER). */
export function initrdPath(root: string, kver: string): string | undefined {
  return [`initrd.img-${kver}`, `initramfs-${kver}.img`, `initrd-${kver}`].map((f) => join(root, 'boot', f)).find((p) => existsSync(p));
}

export async function refreshInitrd(kver: string, policy: InitrdPolicy, env: InitrdEnv): Promise<InitrdAction> {
  const skip = (detail: string): InitrdAction => ({ kver, action: 'skipped', detail });
  if (policy === 'off') return skip('initrd = off');
  if (existsSync(join(env.root, 'run', 'ostree-booted'))) return skip('ostree system: the initrd is part of the deployed image');
  if (initrdPath(env.root, kver) === undefined) return skip('kernel has no initrd');
  if (policy === 'flag') {
    const dir = join(env.root, 'run', 'regenerate-initrd');
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    writeFileSync(join(dir, kver), '');
    return { kver, action: 'flagged', detail: `${join(dir, kver)} (regenerate-initrd-posttrans builds it)` };
  }
  if (env.root !== '/' && env.root !== '') return skip(`--root ${env.root}: not running initrd tools on the host; rebuild it inside the root`);
  const tool = env.which('update-initramfs')
    ? { cmd: 'update-initramfs', args: ['-u', '-k', kver] }
    : env.which('dracut')
      ? { cmd: 'dracut', args: ['-f', '--kver', kver] }
      : undefined;
  if (!tool) return skip('no update-initramfs or dracut found');
  const r = await env.exec(tool.cmd, tool.args);
  return r.code === 0
    ? { kver, action: 'regenerated', detail: `${tool.cmd} ${tool.args.join(' ')}` }
    : { kver, action: 'failed', detail: `${tool.cmd} ${tool.args.join(' ')} exited ${r.code}: ${r.stderr.trim().split('\n').pop() ?? ''}` };
}
