// npm run fuzz:diff -- --trees N [--from SEED]: random synthetic trees through Debian's depmod and
// depmod-tx; prints the seed of every tree whose output differs (reproduce with --from SEED --trees 1).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { checkSeed } from '../test/depmod/differential.ts';

const { values } = parseArgs({ options: { trees: { type: 'string', default: '1000' }, from: { type: 'string', default: '1' } } });
const trees = Number(values.trees);
const from = Number(values.from);
const base = mkdtempSync(join(tmpdir(), 'depmod-tx-fuzzdiff-'));
let bad = 0;
let cycles = 0;
const t0 = Date.now();
try {
  for (let seed = from; seed < from + trees; seed++) {
    const r = await checkSeed(seed, base);
    if (r.cycle) cycles++;
    if (r.problems.length) {
      bad++;
      console.log(`DIFFERS seed ${seed}:\n  ${r.problems.join('\n  ')}`);
    }
    if ((seed - from + 1) % 50 === 0) console.error(`${seed - from + 1}/${trees} trees, ${bad} differing`);
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}
console.log(`fuzz:diff: ${trees} trees (seeds ${from}..${from + trees - 1}), ${cycles} with cycles, ${bad} differing, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
process.exit(bad ? 1 : 0);
