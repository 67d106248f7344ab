// A progress bar on stderr, only when stderr is a terminal and the work has taken over a second
// (package managers capture output; a bar there is noise).
import { createRequire } from 'node:module';
export interface Progress {
  update: (done: number, total: number) => void;
  done: () => void;
}

export function progressBar(label: string, streamOf: () => NodeJS.WriteStream = () => process.stderr): Progress {
  const start = Date.now();
  let shown = false;
  let last = 0;
  // Asked only once the work has taken a second: short runs never load the tty module.
  let stream: NodeJS.WriteStream | null | undefined;
  return {
    update(done, total) {
      const now = Date.now();
      if (now - start < 1000 || now - last < 100) return;
      stream ??= (createRequire(import.meta.url)('node:tty') as typeof import('node:tty')).isatty(2) ? streamOf() : null;
      if (stream === null) return;
      last = now;
      shown = true;
      const width = 30;
      const filled = total > 0 ? Math.round((done / total) * width) : width;
      stream.write(`\r${label} [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${done}/${total}`);
    },
    done() {
      if (shown && stream) stream.write('\r\x1b[K');
      shown = false;
    },
  };
}
