// The process's stdout and stderr as the CLI and the depmod front end write them. Its own module:
// the depmod front end (bin.ts) needs it without the command table.
import { writeSync } from 'node:fs';

/**
 * Output goes straight to the descriptors: a command's report is a few lines, and the stream
 * objects behind process.stdout/stderr (net, stream, tty) cost a short run several milliseconds to
 * load. A closed pipe (`depmod-tx ... | head`) ends the output; it is not a crash. A descriptor
 * that is non-blocking (a pipe from a parent such as spawnSync) and full (EAGAIN) gets the rest of
 * the output through its stream, which waits; direct writes after that would overtake it.
 */
const viaStream: [boolean, boolean] = [false, false];
function writeTo(fd: 1 | 2, s: string | Uint8Array): void {
  const stream = (): NodeJS.WriteStream => (fd === 1 ? process.stdout : process.stderr);
  if (viaStream[fd - 1]) {
    stream().write(s);
    return;
  }
  // depmod -n writes megabytes of indexes: a write may take only part of them.
  const bytes = typeof s === 'string' ? Buffer.from(s) : s;
  let at = 0;
  try {
    while (at < bytes.length) at += writeSync(fd, bytes, at);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EPIPE') process.exit(process.exitCode ?? 0);
    if (code !== 'EAGAIN') throw err;
    viaStream[fd - 1] = true;
    stream().write(bytes.subarray(at));
  }
}

export const io = {
  stdout: (s: string | Uint8Array): void => writeTo(1, s),
  stderr: (s: string | Uint8Array): void => writeTo(2, s),
};
