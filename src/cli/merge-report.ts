// How rebuild and update report a merge: depmod's messages (among them "failed to load symbols
// from PATH" for each module kmod cannot load) and the KABI findings in depmod's -e wording on
// stderr, a one-line summary, and the machine-readable report for --json.
import type { KabiFinding } from '../depmod/compute.ts';
import type { MergeResult } from '../merge/merge.ts';
import { EXIT } from './exit-codes.ts';
import { kabiSummary, unreadableEntry, unreadableSummary } from '../merge/kabi-summary.ts';

export interface ReportIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

function hex(n: number | undefined): string | null {
  return n === undefined ? null : `0x${n.toString(16).padStart(8, '0')}`;
}

export function kabiJson(f: KabiFinding): Record<string, unknown> {
  return {
    kind: f.kind,
    module: f.module,
    path: f.modulePath,
    symbol: f.symbol,
    expected: hex(f.expectedCrc),
    found: hex(f.foundCrc),
    provider: f.provider ?? null,
    message: f.message,
  };
}

export function summaryLine(r: MergeResult): string {
  const what = r.noop
    ? 'nothing changed'
    : r.written.length === 0
      ? 'database unchanged'
      : `wrote ${r.written.length} file(s)`;
  const how = r.fullReason !== undefined ? `full parse (${r.fullReason})` : `parsed ${r.parsed}, reused ${r.reused}, removed ${r.removed}`;
  const unknown = r.kabi.filter((f) => f.kind === 'unknown').length;
  const kabi = kabiSummary(r.kabiAgainst, unknown, r.kabi.length - unknown);
  const unreadable = unreadableSummary(r.unreadable.map(unreadableEntry));
  return `${r.tree.kver}: ${what}; ${r.modules} modules, ${how}; ${kabi}${unreadable !== '' ? `; ${unreadable}` : ''}; ${Math.round(r.ms)} ms`;
}

export function reportMerge(r: MergeResult, opts: { json: boolean; strict: boolean; verbose?: boolean; command: string }, io: ReportIo): number {
  for (const w of r.warnings) io.stderr(`depmod-tx: ${w}\n`);
  for (const f of r.kabi) io.stderr(`depmod-tx: WARNING: ${f.message}\n`);
  if (opts.json) {
    io.stdout(
      `${JSON.stringify(
        {
          command: opts.command,
          kver: r.tree.kver,
          moddir: r.tree.moddir,
          noop: r.noop,
          written: r.written,
          unchanged: r.unchanged,
          fullReason: r.fullReason ?? null,
          modules: r.modules,
          parsed: r.parsed,
          reused: r.reused,
          removed: r.removed,
          symvers: r.symversFile ?? null,
          kabiAgainst: r.kabiAgainst,
          kabi: r.kabi.map(kabiJson),
          unreadable: r.unreadable.map(unreadableEntry),
          warnings: r.warnings,
          ms: Math.round(r.ms),
        },
        null,
        2,
      )}\n`,
    );
  } else if (opts.verbose || r.unreadable.length > 0) {
    // Modules missing their dependencies are worth a line without -v: depmod's ERROR lines above
    // scroll by in a package manager's output.
    io.stderr(`${summaryLine(r)}\n`);
  }
  if (!opts.strict) return EXIT.ok;
  return r.unreadable.length > 0 ? EXIT.unreadable : r.kabi.length > 0 ? EXIT.kabi : EXIT.ok;
}
