// Process entry point (the bundle's entry): everything else is importable without side effects.
// `depmod-tx depmod ARGS` and the program called by the name depmod go to the depmod front end,
// which reads kmod's getopt syntax itself; everything else to the command table (main.ts).
import { basename } from 'node:path';

const args = process.argv.slice(2);
// The installed /usr/bin/depmod-tx is a shell wrapper running this bundle: it passes the name it
// was called by (a link named weak-modules2, weak-modules, depmod) here, for this process only.
const calledAs = process.env.DEPMOD_TX_CALLED_AS ?? basename(process.argv[1] ?? '');
delete process.env.DEPMOD_TX_CALLED_AS;
const calledAsDepmod = calledAs === 'depmod';
if (calledAs === 'weak-modules2' || calledAs === 'weak-modules') {
  const [{ runWeakFrontEnd }, { io }] = await Promise.all([import('./weak-updates.ts'), import('./io.ts')]);
  process.exitCode = await runWeakFrontEnd(calledAs, args, io);
} else if (calledAsDepmod || args[0] === 'depmod') {
  const [{ runDepmod }, { io }] = await Promise.all([import('./depmod.ts'), import('./io.ts')]);
  process.exitCode = await runDepmod(calledAsDepmod ? args : args.slice(1), io);
} else {
  const { main } = await import('./main.ts');
  await main(args);
}
