// Test helper: compares depmod-tx's files with a directory of Debian depmod output and describes
// the first differences precisely (file, line or index key), for assertion messages.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { diffIndexes, readIndex } from '../../src/index/trie.ts';

function firstTextDifference(file: string, ours: Uint8Array, theirs: Uint8Array): string {
  const a = Buffer.from(ours).toString('latin1').split('\n');
  const b = Buffer.from(theirs).toString('latin1').split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return `${file}: line ${i + 1} differs:\n  ours:   ${JSON.stringify(a[i])}\n  depmod: ${JSON.stringify(b[i])}`;
  }
  return `${file}: bytes differ but lines are equal`;
}

/** Differences between our files and the oracle's directory; empty when byte-identical. */
export function compareWithOracle(ours: Map<string, Uint8Array>, oracleDir: string, max = 5): string[] {
  const problems: string[] = [];
  const oracleFiles = readdirSync(oracleDir).filter((f) => f.startsWith('modules.') && !isInput(f));
  for (const f of oracleFiles) {
    const mine = ours.get(f);
    const theirs = readFileSync(join(oracleDir, f));
    if (mine === undefined) {
      problems.push(`${f}: depmod wrote it, depmod-tx did not`);
      continue;
    }
    if (Buffer.compare(Buffer.from(mine), theirs) === 0) continue;
    if (f.endsWith('.bin')) {
      let d: string[];
      try {
        d = diffIndexes(readIndex(mine, `ours/${f}`), readIndex(theirs, `depmod/${f}`));
      } catch (err) {
        d = [String(err)];
      }
      problems.push(`${f}: ${mine.length} vs ${theirs.length} bytes; ${d.length ? d.slice(0, max).join('; ') : 'same keys and values, different layout'}`);
    } else problems.push(firstTextDifference(f, mine, theirs));
  }
  for (const f of ours.keys()) if (!existsSync(join(oracleDir, f))) problems.push(`${f}: depmod-tx wrote it, depmod did not`);
  return problems;
}

/** Files the kernel package ships (depmod reads them, does not write them). */
function isInput(f: string): boolean {
  return f === 'modules.order' || f === 'modules.builtin' || f === 'modules.builtin.modinfo';
}
