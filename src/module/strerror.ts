// glibc's strerror() texts for the errors kmod's depmod can print after "failed to load symbols from
// PATH: " (tools/depmod.c depmod_load_modules: ERR(..., strerror(-err))). Node's own messages come
// from libuv and are worded differently ("permission denied"), so depmod's wording is kept here.
// Pure.

const TEXT: Readonly<Record<string, string>> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EINTR: 'Interrupted system call',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  ENOEXEC: 'Exec format error',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EFAULT: 'Bad address',
  EBUSY: 'Device or resource busy',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  ENFILE: 'Too many open files in system',
  EMFILE: 'Too many open files',
  ETXTBSY: 'Text file busy',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  ESPIPE: 'Illegal seek',
  EROFS: 'Read-only file system',
  ENAMETOOLONG: 'File name too long',
  ELOOP: 'Too many levels of symbolic links',
  ENODATA: 'No data available',
  EOVERFLOW: 'Value too large for defined data type',
  ESTALE: 'Stale file handle',
  EUCLEAN: 'Structure needs cleaning',
  EREMOTEIO: 'Remote I/O error',
};

/** strerror() of an errno name ("EACCES" → "Permission denied"); the name itself when glibc's text is not known here. */
export function strerror(code: string): string {
  return TEXT[code] ?? code;
}
