// npm run fuzz:diff -- --trees N [--from SEED] [--oracle NAME|all]: random synthetic trees through an
// oracle depmod (kmod30: Debian 12's, the default; kmod34: Debian 13's; or a build under
// .cache/kmod-builds; all: every one) and depmod-tx writing that kmod's format; prints the seed of
// every tree whose output differs (reproduce with --from SEED --trees 1).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { checkSeed } from '../test/depmod/differential.ts';
import { allOracles, oracleNamed } from '../test/support/kmod-oracles.ts';

const { values } = parseArgs({ options: { trees: { type: 'string', default: '1000' }, from: { type: 'string', default: '1' }, oracle: { type: 'string', default: 'kmod30' } } });
const oracles = values.oracle === 'all' ? allOracles() : [oracleNamed(values.oracle)];
const trees = Number(values.trees);
const from = Number(values.from);
const base = mkdtempSync(join(tmpdir(), 'depmod-tx-fuzzdiff-'));
let bad = 0;
let cycles = 0;
const t0 = Date.now();
try {
  for (const oracle of oracles) {
    for (let seed = from; seed < from + trees; seed++) {
      const r = await checkSeed(seed, base, oracle);
      if (r.cycle) cycles++;
      if (r.problems.length) {
        bad++;
        console.log(`DIFFERS ${oracle.name} seed ${seed}:\n  ${r.problems.join('\n  ')}`);
      }
      if ((seed - from + 1) % 50 === 0) console.error(`${oracle.name}: ${seed - from + 1}/${trees} trees, ${bad} differing`);
    }
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}
console.log(`fuzz:diff: ${trees} trees (seeds ${from}..${from + trees - 1}) x ${oracles.map((o) => o.name).join(', ')}, ${cycles} with cycles, ${bad} differing, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
process.exit(bad ? 1 : 0);
