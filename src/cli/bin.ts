// Process entry point (the bundle's entry): everything else is importable without side effects.
// `depmod-tx depmod ARGS` and the program called by the name depmod go to the depmod front end,
// which reads kmod's getopt syntax itself; everything else to the command table (main.ts).
import { basename } from 'node:path';

const args = process.argv.slice(2);
const calledAsDepmod = basename(process.argv[1] ?? '') === 'depmod';
if (calledAsDepmod || args[0] === 'depmod') {
  const [{ runDepmod }, { io }] = await Promise.all([import('./depmod.ts'), import('./io.ts')]);
  process.exitCode = await runDepmod(calledAsDepmod ? args : args.slice(1), io);
} else {
  const { main } = await import('./main.ts');
  await main(args);
}
