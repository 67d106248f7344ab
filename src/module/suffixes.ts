// Module files: which paths are modules and what their module name is. Apart from decompress.ts
// so that code that only classifies paths (the no-op path of every merge, the journal) does not
// load zlib and the decoders.
//
// Suffixes (shared/util.c: kmod_exts, path_ends_with_kmod_ext): a file is a module when its name
// is longer than and ends with one of MODULE_SUFFIXES. The list is upstream kmod 30 built with
// zlib, xz and zstd. Debian 12's kmod 30 is built without zlib and does not see .ko.gz files at
// all; depmod-tx accepts them (a deliberate superset: Debian trees ship no .ko.gz).
// Module name (shared/util.c: path_to_modname, modname_normalize): the base name up to its first
// '.', with every '-' turned into '_'.

export const MODULE_SUFFIXES = ['.ko', '.ko.gz', '.ko.xz', '.ko.zst'] as const;
export type ModuleSuffix = (typeof MODULE_SUFFIXES)[number];

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** The module suffix a path ends with (longest match), or undefined when it is not a module file. */
export function moduleSuffix(path: string): ModuleSuffix | undefined {
  const base = baseName(path);
  for (const ext of MODULE_SUFFIXES) {
    // Only one suffix can match a given name ending, so the first hit is the answer.
    if (base.length > ext.length && base.endsWith(ext)) return ext;
  }
  return undefined;
}

export function isModulePath(path: string): boolean {
  return moduleSuffix(path) !== undefined;
}

/** depmod's module name for a path: `kernel/drivers/foo-bar.ko.xz` → `foo_bar`. */
export function modnameFromPath(path: string): string {
  const base = baseName(path);
  const dot = base.indexOf('.');
  const stem = dot < 0 ? base : base.slice(0, dot);
  return stem.replaceAll('-', '_');
}

