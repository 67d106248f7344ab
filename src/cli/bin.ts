// Process entry point (the bundle's entry): everything else is importable without side effects.
// `depmod-tx depmod ARGS` and the program called by the name depmod go to the depmod front end,
// and the hooks' plain calls straight to their command (plain-args.ts), before yargs is loaded:
// package scripts call depmod and the hooks in every transaction, and a no-op merge costs little
// more than the start of Node itself.
import { basename } from 'node:path';

const args = process.argv.slice(2);
const calledAsDepmod = basename(process.argv[1] ?? '') === 'depmod';
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  // `depmod-tx ... | head`: a closed pipe ends the output, it is not a crash.
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});
if (calledAsDepmod || args[0] === 'depmod') {
  const { runDepmod } = await import('./depmod.ts');
  process.exitCode = await runDepmod(calledAsDepmod ? args : args.slice(1), {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
  });
} else {
  const [{ COMMANDS }, { plainArgs }] = await Promise.all([import('./spec.ts'), import('./plain-args.ts')]);
  const command = COMMANDS.find((c) => c.name === args[0]);
  const plain = command !== undefined ? plainArgs(command, args.slice(1)) : undefined;
  if (command !== undefined && plain !== undefined) {
    const { runCommand } = await import('./run-command.ts');
    process.exitCode = await runCommand(command, plain);
  } else {
    const [{ main }, { hideBin }] = await Promise.all([import('./main.ts'), import('yargs/helpers')]);
    await main(hideBin(process.argv));
  }
}
