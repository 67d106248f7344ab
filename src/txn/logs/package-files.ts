// The files an installed package owns now, from the root's own package database: dpkg's
// info/PKG.list files, `rpm -q` with a file-list query format, `pacman -Ql`. A package the database
// does not know is reported missing (removed since, or never installed in this root).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { IoError } from '../../errors.ts';
import { dpkgInfoDir, readDpkgList } from '../collect-dpkg-list.ts';
import type { PackageDb } from './client-log.ts';

export interface InstalledFiles {
  /** Package name → its paths in the system namespace ("/lib/modules/..."). */
  files: Map<string, string[]>;
  missing: string[];
}

export interface PackageRef {
  package: string;
  arch: string | null;
}

export async function installedFiles(root: string, db: PackageDb, packages: readonly PackageRef[]): Promise<InstalledFiles> {
  if (packages.length === 0) return { files: new Map(), missing: [] };
  const files = db === 'dpkg' ? dpkgFiles(root, packages) : db === 'rpm' ? await rpmFiles(root, packages) : await pacmanFiles(root, packages);
  return { files, missing: packages.map((p) => p.package).filter((p) => !files.has(p)) };
}

function dpkgFiles(root: string, packages: readonly PackageRef[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of packages) {
    const list = readDpkgList(dpkgInfoDir(root), p.package, p.arch ?? undefined);
    if (list !== undefined) out.set(p.package, list.paths);
  }
  return out;
}

/**
 * The root's rpm database directory when rpm's built-in default would miss it: libzypp keeps its
 * own (/var/lib/rpm, or /usr/lib/sysimage/rpm on newer systems) whatever the host rpm's macros say.
 */
function rpmDbPath(root: string): string | undefined {
  if (root === '/') return undefined;
  return ['/usr/lib/sysimage/rpm', '/var/lib/rpm'].find((d) => ['rpmdb.sqlite', 'Packages', 'Packages.db'].some((f) => existsSync(join(root, d, f))));
}

async function query(cmd: string, args: string[], what: string): Promise<string> {
  const r = await execa(cmd, args, { reject: false, stripFinalNewline: false, env: { LC_ALL: 'C' } });
  if (r.failed && r.exitCode === undefined) throw new IoError(what, `cannot run ${cmd}: ${r.shortMessage ?? r.message}`);
  return String(r.stdout);
}

async function rpmFiles(root: string, packages: readonly PackageRef[]): Promise<Map<string, string[]>> {
  const dbpath = rpmDbPath(root);
  const args = [...(root !== '/' ? ['--root', root] : []), ...(dbpath ? ['--dbpath', dbpath] : []), '-q', '--qf', '[%{=NAME}\\t%{FILENAMES}\\n]', ...new Set(packages.map((p) => p.package))];
  // One line per file, "NAME<TAB>PATH"; "package X is not installed" for the others (exit code = their count).
  return collect(await query('rpm', args, join(root, dbpath ?? 'rpm database')), (l) => {
    const tab = l.indexOf('\t');
    return tab > 0 ? [l.slice(0, tab), l.slice(tab + 1)] : undefined;
  });
}

async function pacmanFiles(root: string, packages: readonly PackageRef[]): Promise<Map<string, string[]>> {
  const args = [...(root !== '/' ? ['--root', root] : []), '-Ql', ...new Set(packages.map((p) => p.package))];
  // "NAME PATH" per file, the path with the root in front; unknown packages go to stderr (exit 1).
  const prefix = root === '/' ? '' : root.replace(/\/+$/, '');
  return collect(await query('pacman', args, join(root, 'var/lib/pacman')), (l) => {
    const sp = l.indexOf(' ');
    const path = l.slice(sp + 1);
    if (sp <= 0 || !path.startsWith(`${prefix}/`)) return undefined;
    return [l.slice(0, sp), path.slice(prefix.length)];
  });
}

function collect(text: string, split: (line: string) => [string, string] | undefined): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const l of text.split('\n')) {
    const kv = split(l);
    if (kv === undefined) continue;
    let list = out.get(kv[0]);
    if (list === undefined) out.set(kv[0], (list = []));
    list.push(kv[1]);
  }
  return out;
}
