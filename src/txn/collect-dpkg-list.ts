// dpkg's record of what an installed package owns: ROOT/var/lib/dpkg/info/PKG.list, or
// PKG:ARCH.list for a Multi-Arch: same package (dpkg(1), "pkgname:arch" instance naming). One
// absolute path per line, directories included, starting with "/.". The apt hook reads it before
// dpkg runs, because during a removal or upgrade dpkg rewrites the list and the old paths are gone.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePathList } from './collect-rpm.ts';

export function dpkgInfoDir(root: string): string {
  return join(root, 'var', 'lib', 'dpkg', 'info');
}

/** Candidate list file names for a package, most specific first. Pure. */
export function dpkgListNames(pkg: string, arch?: string, multiArch?: string): string[] {
  const plain = `${pkg}.list`;
  if (arch === undefined || arch === '-' || arch === '') return [plain];
  const qualified = `${pkg}:${arch}.list`;
  return multiArch === 'same' ? [qualified, plain] : [plain, qualified];
}

/** The installed paths of a package, or undefined when dpkg has no list for it. */
export function readDpkgList(infoDir: string, pkg: string, arch?: string, multiArch?: string): { file: string; paths: string[] } | undefined {
  for (const name of dpkgListNames(pkg, arch, multiArch)) {
    const file = join(infoDir, name);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    return { file, paths: parsePathList(text) };
  }
  return undefined;
}
