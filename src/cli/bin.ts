// Process entry point (the bundle's entry): everything else is importable without side effects.
import { main } from './main.ts';

await main(process.argv.slice(2));
