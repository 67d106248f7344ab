// Which recorded paths are kernel modules, and of which kernel. A path is recorded as the package
// manager names it: absolute in the target system's namespace (`/lib/modules/KVER/kernel/x.ko.xz`,
// also `/usr/lib/modules/...` on merged-/usr systems), never prefixed with --root.
//
// Two layers: `classifyModulePath` is pure (string in, verdict out) and refuses anything that is
// lexically suspicious; `checkContainment` does the I/O half: it resolves symlinks under --root and
// refuses a path whose real location leaves its kernel's module directory (or a module directory
// that leaves the root). A path that is not a module under a module directory is ignored silently,
// as rpm and dpkg hand us every file of a package.
import { kverProblem } from '../io/tree.ts';
import { realpathSync, statSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { PathRefusedError } from '../errors.ts';
import { isModulePath } from '../module/suffixes.ts';

/** A recorded path that must not be acted on; the message starts with the path. */
export { PathRefusedError };

export interface ModulePath {
  kver: string;
  /** The kernel's module directory in the system namespace: `/lib/modules/KVER` or `/usr/lib/modules/KVER`. */
  moddir: string;
  /** Path relative to moddir, e.g. `kernel/drivers/net/foo.ko.xz`. */
  rel: string;
  /** The normalised absolute path (`moddir/rel`). */
  path: string;
}

/** Throws unless `kver` can safely name a directory, a cache file and a lock file (kernel-state.ts kverProblem). */
export function validateKver(kver: string, path = kver): void {
  const problem = kverProblem(kver);
  if (problem !== undefined) throw new PathRefusedError(path, problem);
}

/**
 * Pure verdict on one recorded path: a ModulePath, `undefined` for "not a module, ignore", or a
 * PathRefusedError thrown for an escape attempt or a bad kernel version. `..` is refused anywhere in
 * the path, not only under the module root: a package has no business naming one, and resolving
 * it lexically would let `/lib/modules/../../etc/x.ko` pass as something it is not.
 */
export function classifyModulePath(path: string): ModulePath | undefined {
  if (path.includes('\0')) throw new PathRefusedError(path, 'contains a NUL byte');
  if (!path.startsWith('/')) throw new PathRefusedError(path, 'not an absolute path');
  const segs: string[] = [];
  for (const s of path.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') throw new PathRefusedError(path, "contains a '..' segment");
    segs.push(s);
  }
  let base: number;
  if (segs[0] === 'lib' && segs[1] === 'modules') base = 2;
  else if (segs[0] === 'usr' && segs[1] === 'lib' && segs[2] === 'modules') base = 3;
  else return undefined;
  const kver = segs[base];
  // `/lib/modules/KVER` itself or a file directly in /lib/modules: not a module of any kernel.
  if (kver === undefined || segs.length < base + 2) return undefined;
  validateKver(kver, path);
  const rel = segs.slice(base + 1).join('/');
  if (!isModulePath(rel)) return undefined;
  const moddir = '/' + segs.slice(0, base + 1).join('/');
  return { kver, moddir, rel, path: `${moddir}/${rel}` };
}

function isWithin(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

/**
 * Resolves paths the way the checks below need: the real location of `p`, following every symlink
 * that exists, with the missing tail (a file not yet unpacked, or already removed) appended as is,
 * since what does not exist cannot be a symlink. One resolver serves one batch of paths (a hook's
 * .deb of a thousand modules, a commit's events): what it learnt about a directory is reused for
 * the batch, never across batches, so a link swapped in between record and commit is still seen.
 * realpath(3) itself (realpathSync.native) is one system call where Node's own walks every
 * component with lstat.
 */
function pathResolver(): (p: string) => string {
  const dirs = new Map<string, string>();
  const resolve = (p: string): string => {
    const known = dirs.get(p);
    if (known !== undefined) return known;
    let real: string | undefined;
    // Most paths of a hook's batch do not exist yet: asked without throwing (an error with its
    // stack per path costs more than the rest of the check).
    try {
      if (statSync(p, { throwIfNoEntry: false }) !== undefined) real = realpathSync.native(p);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    }
    if (real === undefined) {
      const up = dirname(p);
      if (up === p) return p;
      real = join(resolve(up), p.slice(up.length + (up.endsWith(sep) ? 0 : 1)));
    }
    dirs.set(p, real);
    return real;
  };
  return resolve;
}

/**
 * The I/O half of the check for a batch of paths under `root`: the module directory must resolve
 * inside the root and the module file inside the module directory. The returned function throws
 * PathRefusedError otherwise (ELOOP included).
 */
export function containmentChecker(root: string): (mp: ModulePath) => void {
  const resolve = pathResolver();
  let rootReal: string | undefined;
  return (mp) => {
    let moddirReal: string, fileReal: string;
    try {
      rootReal ??= realpathSync.native(root);
      moddirReal = resolve(join(root, mp.moddir));
      fileReal = resolve(join(root, mp.path));
    } catch (err) {
      throw new PathRefusedError(mp.path, `cannot resolve under ${root}: ${(err as Error).message}`);
    }
    if (!isWithin(moddirReal, rootReal)) throw new PathRefusedError(mp.path, `${mp.moddir} resolves to ${moddirReal}, outside the root ${rootReal}`);
    if (!isWithin(fileReal, moddirReal) || fileReal === moddirReal) {
      throw new PathRefusedError(mp.path, `resolves to ${fileReal}, outside the module directory ${moddirReal}`);
    }
  };
}

/** containmentChecker for one path. */
export function checkContainment(root: string, mp: ModulePath): void {
  containmentChecker(root)(mp);
}

/** Both halves: the verdict for `path` as seen under `root` (`check`: a batch's containmentChecker). */
export function classifyUnderRoot(root: string, path: string, check: (mp: ModulePath) => void = containmentChecker(root)): ModulePath | undefined {
  const mp = classifyModulePath(path);
  if (mp !== undefined) check(mp);
  return mp;
}
