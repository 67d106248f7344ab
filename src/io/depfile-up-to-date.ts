// `depmod -A` ("quick"): whether a module directory's database is current by kmod's own rule
// (tools/depmod.c: depfile_up_to_date, depfile_up_to_date_dir, the same in kmod 28 to 34): the
// database is current when modules.dep exists and no module file below the directory (build and
// source skipped at every level, links followed) has an mtime, in whole seconds, after
// modules.dep's. The walk goes in readdir order and stops at the first newer module; what it could
// not read is reported in depmod's words and skipped. Any doubt about modules.dep itself makes
// depmod rebuild, after saying why.
import { statSync } from 'node:fs';
import { depmodError, type DepmodMessage } from '../depmod/diagnostic.ts';
import { isModulePath } from '../module/decompress.ts';
import { listDirInReaddirOrder } from './tree.ts';

export interface UpToDate {
  /** True: depmod -A does nothing. */
  current: boolean;
  /** What depmod printed on the way (ERROR lines). */
  messages: DepmodMessage[];
}

function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  // strerror() of the errors a stat or opendir here can meet.
  const text: Record<string, string> = {
    ENOENT: 'No such file or directory',
    EACCES: 'Permission denied',
    ENOTDIR: 'Not a directory',
    ELOOP: 'Too many levels of symbolic links',
    EIO: 'Input/output error',
  };
  return (code !== undefined && text[code]) || (err as Error).message;
}

const seconds = (ms: number): number => Math.floor(ms / 1000);

export function depfileUpToDate(moddir: string): UpToDate {
  const messages: DepmodMessage[] = [];
  let dep: number;
  try {
    listDirInReaddirOrder(moddir);
  } catch (err) {
    messages.push(depmodError(`could not open directory ${moddir}: ${errnoText(err)}`));
    return { current: false, messages };
  }
  try {
    dep = seconds(statSync(`${moddir}/modules.dep`).mtimeMs);
  } catch (err) {
    messages.push(depmodError(`could not fstatat(${moddir}, modules.dep): ${errnoText(err)}`));
    return { current: false, messages };
  }
  // depfile_up_to_date_dir: a subdirectory's answer replaces the running one and the first outdated
  // module stops the walk. kmod names the directory by its descriptor number in the two messages
  // about unreadable entries; depmod-tx names its path.
  const walk = (dir: string): boolean => {
    let current = true;
    for (const e of listDirInReaddirOrder(dir)) {
      if (e.name === 'build' || e.name === 'source') continue;
      const path = `${dir}/${e.name}`;
      let st;
      try {
        st = statSync(path);
      } catch (err) {
        messages.push(depmodError(`fstatat(${dir}, ${e.name}): ${errnoText(err)}`));
        continue;
      }
      if (st.isDirectory()) {
        try {
          current = walk(path);
        } catch (err) {
          messages.push(depmodError(`openat(${dir}, ${e.name}, O_RDONLY): ${errnoText(err)}`));
          continue;
        }
      } else if (st.isFile()) {
        if (!isModulePath(e.name)) continue;
        current = seconds(st.mtimeMs) <= dep;
      } else {
        messages.push(depmodError(`unsupported file type ${path}: ${(st.mode & 0o170000).toString(8)}`));
        continue;
      }
      if (!current) break;
    }
    return current;
  };
  return { current: walk(moddir), messages };
}
