// One error base for the whole project. Every failure a user can see is a DepmodTxError whose
// message starts with the file (or kernel, or state object) it is about. src/cli maps the
// `kind` to an exit code in one place (src/cli/exit-codes.ts).

export type ErrorKind =
  | 'usage' // bad command line
  | 'format' // a module, index, symvers, journal or package file is malformed
  | 'config' // depmod.d or depmod-tx configuration
  | 'noinput' // a named input file or a module directory does not exist or cannot be read
  | 'state' // a lock held by another process, journal state: retry later
  | 'io' // writing the system failed (ENOSPC, EROFS, EACCES ...)
  | 'kabi'; // --strict and the KABI check found problems

export class DepmodTxError extends Error {
  readonly kind: ErrorKind;
  readonly file: string | undefined;
  constructor(kind: ErrorKind, message: string, file?: string, options?: { cause?: unknown }) {
    super(file !== undefined ? `${file}: ${message}` : message, options);
    this.kind = kind;
    this.file = file;
    this.name = new.target.name;
  }
}

/** A file's bytes do not have the layout its format requires. `reason` says what is wrong. */
export class FormatError extends DepmodTxError {
  readonly reason: string;
  readonly offset: number | undefined;
  constructor(file: string, reason: string, offset?: number, options?: { cause?: unknown }) {
    super('format', offset !== undefined ? `${reason} (at offset ${offset})` : reason, file, options);
    this.reason = reason;
    this.offset = offset;
  }
}

/**
 * A file needs a decoder this system does not have (no xz(1) on PATH and no lzma-native addon):
 * the file may well be fine, the installation lacks a dependency, hence kind `config`.
 */
export class DecoderUnavailableError extends DepmodTxError {
  readonly reason: string;
  constructor(file: string, reason: string, options?: { cause?: unknown }) {
    super('config', reason, file, options);
    this.reason = reason;
  }
}

/** A configuration file line that cannot be used. */
export class ConfigError extends DepmodTxError {
  readonly line: number | undefined;
  constructor(file: string, message: string, line?: number) {
    super('config', line !== undefined ? `line ${line}: ${message}` : message, file);
    this.line = line;
  }
}

export class UsageError extends DepmodTxError {
  constructor(message: string) {
    super('usage', message);
  }
}

export class StateError extends DepmodTxError {
  constructor(what: string, message: string, options?: { cause?: unknown }) {
    super('state', message, what, options);
  }
}

export class IoError extends DepmodTxError {
  readonly errno: string | undefined;
  constructor(file: string, message: string, errno?: string, options?: { cause?: unknown }) {
    super('io', message, file, options);
    this.errno = errno;
  }
}

/**
 * An input the user or the package manager named (a module file, a log to replay, a kernel's module
 * directory) that does not exist or cannot be read. Still an IoError: the read failed with `errno`.
 */
export class InputError extends IoError {
  override readonly kind: ErrorKind = 'noinput';
}

/** A path or kernel version refused because it could name something else (an escape, a bad kernel version). */
export class PathRefusedError extends UsageError {
  readonly path: string;
  readonly reason: string;
  constructor(path: string, reason: string) {
    super(`${JSON.stringify(path)}: refused: ${reason}`);
    this.path = path;
    this.reason = reason;
  }
}

/**
 * A module file on which kmod's depmod dies (a libkmod assertion: SIGABRT, nothing written). The
 * merge does what depmod does, writes nothing, and says which file and why.
 */
export class KmodAbortError extends DepmodTxError {
  readonly assertion: string;
  constructor(file: string, assertion: string, detail: string | undefined) {
    super('format', `kmod's depmod aborts on this module (libkmod assertion \`${assertion}' fails${detail !== undefined ? `: ${detail}` : ''}); nothing written`, file);
    this.assertion = assertion;
  }
}
