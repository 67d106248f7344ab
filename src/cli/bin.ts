// Process entry point (the bundle's entry): everything else is importable without side effects.
// `depmod-tx depmod ARGS` and the program called by the name depmod go to the depmod front end
// before yargs is loaded: package scripts call depmod often, and a no-op merge costs little more
// than the start of Node itself.
import { basename } from 'node:path';

const args = process.argv.slice(2);
const calledAsDepmod = basename(process.argv[1] ?? '') === 'depmod';
if (calledAsDepmod || args[0] === 'depmod') {
  const { runDepmod } = await import('./depmod.ts');
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  process.exitCode = await runDepmod(calledAsDepmod ? args : args.slice(1), {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
  });
} else {
  const [{ main }, { hideBin }] = await Promise.all([import('./main.ts'), import('yargs/helpers')]);
  await main(hideBin(process.argv));
}
