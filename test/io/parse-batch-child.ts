// Child of parse-batch.test.ts: parses the files named on the command line as the parse pool does
// and prints the outcomes as JSON (run as another user to meet a permission error as root cannot).
import { parseBatch } from '../../src/io/parse-batch.ts';

const files = process.argv.slice(2).map((abs) => ({ abs, display: abs }));
process.stdout.write(JSON.stringify(await parseBatch(files)));
