// The one place that decides what a file given to `replay` is: a depmod-tx journal (JSON lines), a
// plain path list (what rpm hands to file triggers), or one of the package managers' own logs. The
// first significant line decides (empty lines and zypper's "#" comments skipped); a file that is
// none of them is refused as a whole, with one error naming the file and what was expected.
import { FormatError } from '../../errors.ts';
import { aptHistory } from './apt-history.ts';
import type { ClientLogFormat } from './client-log.ts';
import { dnfHistory } from './dnf-history.ts';
import { dpkgLog } from './dpkg-log.ts';
import { pacmanLog } from './pacman-log.ts';
import { zyppHistory } from './zypp-history.ts';

export const CLIENT_LOGS: readonly ClientLogFormat[] = [dpkgLog, aptHistory, zyppHistory, dnfHistory, pacmanLog];

export type ReplayInput = { kind: 'journal' } | { kind: 'path-list' } | { kind: 'client-log'; format: ClientLogFormat };

/** What the text is. Pure. Throws FormatError naming `file` when it is none of the formats. */
export function detectReplayInput(text: string, file: string): ReplayInput {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.trim() !== '' && !l.startsWith('#'));
  // Nothing but blank lines (or comments): an empty list, nothing to replay.
  if (at < 0) return { kind: 'path-list' };
  const first = lines[at]!.replace(/\r$/, '');
  if (first.startsWith('{')) return { kind: 'journal' };
  if (first.startsWith('/')) return { kind: 'path-list' };
  const format = CLIENT_LOGS.find((f) => f.recognises(first));
  if (format !== undefined) return { kind: 'client-log', format };
  const expected = ['a depmod-tx journal (JSON lines)', 'a list of absolute paths', ...CLIENT_LOGS.map((f) => f.describe)].join(', ');
  throw new FormatError(file, `not a file replay reads: line ${at + 1} (${JSON.stringify(first.slice(0, 60))}) starts none of: ${expected}`);
}
