// The file-system side of reading a kernel's module tree: where the tree is, directory listings
// in the order the kernel returns them, and the small text inputs depmod reads.
import { existsSync, lstatSync, opendirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, UsageError } from '../errors.ts';
import { isModulePath } from '../module/suffixes.ts';

export interface DirEntry {
  name: string;
  type: 'file' | 'dir' | 'link' | 'other';
}

/**
 * Lists a directory in readdir(3) order. kmod's depmod walks the tree in this raw order and it
 * decides modules.dep's line order for modules outside modules.order. Node's fs.readdir sorts
 * names (libuv scandir), so the opendir iterator is used instead: it hands out entries as
 * readdir returns them.
 */
export function listDirInReaddirOrder(dir: string): DirEntry[] {
  const d = opendirSync(dir, { bufferSize: 256 });
  const out: DirEntry[] = [];
  try {
    for (let e = d.readSync(); e !== null; e = d.readSync()) {
      const type = e.isFile() ? 'file' : e.isDirectory() ? 'dir' : e.isSymbolicLink() ? 'link' : 'other';
      out.push({ name: e.name, type });
    }
  } finally {
    d.closeSync();
  }
  return out;
}

/** listDirInReaddirOrder, or undefined when the directory cannot be opened (kmod skips it then). */
export function listDirIfPossible(dir: string): DirEntry[] | undefined {
  try {
    return listDirInReaddirOrder(dir);
  } catch {
    return undefined;
  }
}

/** What a path is after following symlinks (depmod's fstatat for DT_LNK/DT_UNKNOWN entries). */
export function statTypeFollowingLinks(path: string): 'file' | 'dir' | 'other' | undefined {
  try {
    const st = statSync(path);
    return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other';
  } catch {
    return undefined;
  }
}

/** Why `kver` cannot name a kernel (a directory, a cache file, a lock file), or undefined. The one rule. */
export function kverProblem(kver: string): string | undefined {
  if (kver.length === 0) return 'empty kernel version';
  if (kver.includes('/')) return `kernel version ${JSON.stringify(kver)} contains '/'`;
  if (kver === '.' || kver === '..' || kver.includes('..')) return `kernel version ${JSON.stringify(kver)} contains '..'`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(kver)) return `kernel version ${JSON.stringify(kver)} contains control characters`;
  return undefined;
}

/** A kernel version names one directory: refuse anything that could walk elsewhere. */
export function assertSafeKernelVersion(kver: string): void {
  const problem = kverProblem(kver);
  if (problem !== undefined) throw new UsageError(`invalid kernel version ${JSON.stringify(kver)}: ${problem}`);
}

export interface ModuleTree {
  root: string;
  kver: string;
  /** Absolute module directory: ROOT/lib/modules/KVER, or ROOT/usr/lib/modules/KVER when only that exists. */
  moddir: string;
}

export function locateModuleTree(root: string, kver: string): ModuleTree {
  assertSafeKernelVersion(kver);
  const candidates = [join(root, 'lib', 'modules', kver), join(root, 'usr', 'lib', 'modules', kver)];
  for (const moddir of candidates) {
    try {
      if (statSync(moddir).isDirectory()) return { root, kver, moddir };
    } catch {
      /* try the next location */
    }
  }
  throw new InputError(candidates[0]!, 'module directory not found (nor under usr/lib/modules)', 'ENOENT');
}

/**
 * Whether a kernel's module directory no longer holds a kernel: its package was removed, and dpkg
 * or rpm left the directory because files they do not own remain (the modules.* database written
 * after install, other leftovers). True when it has neither of the files a kernel package ships
 * (modules.order, modules.builtin) and no module file anywhere below it. Symbolic links (build,
 * source) are not followed. A real tree answers false after two stat calls.
 */
export function moduleTreeGone(moddir: string): boolean {
  if (existsSync(join(moddir, 'modules.order')) || existsSync(join(moddir, 'modules.builtin'))) return false;
  const stack = [moddir];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    for (const e of listDirIfPossible(dir) ?? []) {
      if (e.type === 'dir') stack.push(join(dir, e.name));
      else if (e.type === 'file' && isModulePath(e.name)) return false;
    }
  }
  return true;
}

/** A kernel whose module directory is missing under root, or holds no kernel any more (moduleTreeGone). */
export function kernelRemoved(root: string, kver: string): boolean {
  let tree: ModuleTree;
  try {
    tree = locateModuleTree(root, kver);
  } catch (err) {
    if (err instanceof InputError) return true;
    throw err;
  }
  return moduleTreeGone(tree.moddir);
}

/** Bytes of a file, or undefined when it does not exist. Other errors propagate. */
export function readIfExists(path: string): Uint8Array | undefined {
  try {
    return readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export function isDirectory(path: string): boolean {
  try {
    return lstatSync(path).isDirectory() || (existsSync(path) && statSync(path).isDirectory());
  } catch {
    return false;
  }
}
