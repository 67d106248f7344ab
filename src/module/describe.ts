// Human-readable and JSON views of one ModuleRecord, for `depmod-tx inspect`.
// Text layout (one block per file, blank line between files):
//   FILE
//     name: NAME
//     modinfo:            (one "key=value" per line, file order)
//     exports (N):        NAME 0xCRC
//     imports (N):        NAME 0xCRC [weak]
// CRCs print as 0x%08x like depmod's debug output; kmod's (uint64_t)-1 prints as 0xffffffffffffffff.
import { UNRESOLVED_CRC } from './parse.ts';
import type { ModuleRecord } from './record.ts';

export function formatCrc(crc: number): string {
  if (crc === UNRESOLVED_CRC) return '0xffffffffffffffff';
  return `0x${crc.toString(16).padStart(8, '0')}`;
}

export function describeRecord(file: string, record: ModuleRecord): string {
  const lines = [file, `  name: ${record.name}`, `  modinfo (${record.modinfo.length}):`];
  for (const [k, v] of record.modinfo) lines.push(`    ${k}=${v}`);
  lines.push(`  exports (${record.exports.length}):`);
  for (const e of record.exports) lines.push(`    ${e.name} ${formatCrc(e.crc)}`);
  lines.push(`  imports (${record.imports.length}):`);
  for (const i of record.imports) lines.push(`    ${i.name} ${formatCrc(i.crc)}${i.weak ? ' weak' : ''}`);
  return `${lines.join('\n')}\n`;
}

/** The JSON form: the record as is, plus the file it came from. */
export function recordJson(file: string, record: ModuleRecord): { file: string } & ModuleRecord {
  return { file, ...record };
}
