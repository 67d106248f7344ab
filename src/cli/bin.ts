// Process entry point (the bundle's entry): everything else is importable without side effects.
import { hideBin } from 'yargs/helpers';
import { main } from './main.ts';

await main(hideBin(process.argv));
