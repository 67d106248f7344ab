// libzypp commit plugin (/usr/lib/zypp/plugins/commit/depmod-tx): one commit per zypper
// transaction instead of one per package.
//
// Why: in libzypp's classic mode (every SUSE zypper up to libzypp 17.28's ZYPP_SINGLE_RPMTRANS)
// each package is its own `rpm -U` process, so rpm's %transfiletriggerin fires after every
// package. libzypp starts the executables in plugins/commit at the start of a commit (only when
// its root is "/": `zypper --root DIR` runs none, measured with libzypp 17.22) and talks to them
// in STOMP-like frames on stdin/stdout:
//   COMMAND\n  header:value\n ...  \n  body  \0
// in this order: PLUGINBEGIN, COMMITBEGIN (body: JSON TransactionStepList), COMMITEND (body: the
// steps with their outcome), PLUGINEND, _DISCONNECT. Each frame is answered with ACK (or
// _ENOMETHOD for a command the plugin does not know); libzypp waits up to ZYPP_PLUGIN_TIMEOUT
// (30 s) for the answer and drops a plugin that does not answer, without killing it.
//
// The plugin marks the transaction at COMMITBEGIN (state file with zypper's pid, ZYPP_IS_RUNNING),
// so the rpm transaction file triggers of that zypper only record (hooks/depmod-tx-hook); at
// COMMITEND it commits once, then removes the mark, then answers. A plugin that never gets that
// far leaves the mark naming a zypper that is gone: later triggers see another pid and commit as
// usual, and the journal keeps everything recorded meanwhile.
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stateDirs } from '../cache/meta.ts';

export interface PluginFrame {
  command: string;
  headers: Map<string, string>;
  body: string;
}

/** One frame's text (without the NUL). Pure. */
export function decodeFrame(text: string): PluginFrame {
  const headEnd = text.indexOf('\n\n');
  const head = headEnd < 0 ? text : text.slice(0, headEnd);
  const [command = '', ...lines] = head.split('\n');
  const headers = new Map<string, string>();
  for (const l of lines) {
    const c = l.indexOf(':');
    if (c > 0) headers.set(l.slice(0, c), l.slice(c + 1));
  }
  return { command: command.trim(), headers, body: headEnd < 0 ? '' : text.slice(headEnd + 2) };
}

/** A frame with no headers and no body, NUL-terminated. Pure. */
export function encodeFrame(command: string): string {
  return `${command}\n\n\0`;
}

/** Accumulates stdin bytes and hands out complete frames. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Uint8Array): PluginFrame[] {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const frames: PluginFrame[] = [];
    let nul: number;
    while ((nul = this.pending.indexOf(0)) >= 0) {
      frames.push(decodeFrame(this.pending.subarray(0, nul).toString('utf8')));
      this.pending = this.pending.subarray(nul + 1);
    }
    return frames;
  }
}

export interface ZyppPluginActions {
  /** COMMITBEGIN: from now on this zypper's rpm triggers only record. */
  begin(): void;
  /** The one commit of the transaction (COMMITEND, or end of input after COMMITBEGIN). */
  commit(): Promise<void>;
  /** After the commit, and when the session ends: triggers commit again. */
  end(): void;
  log(message: string): void;
}

const KNOWN = new Set(['PLUGINBEGIN', 'COMMITBEGIN', 'COMMITEND', 'PLUGINEND', '_DISCONNECT']);

/**
 * Serves one plugin session until _DISCONNECT or end of input. Every frame gets an answer, whatever
 * an action throws: a depmod-tx problem must not make libzypp report a broken plugin mid-commit.
 */
export async function serveZyppPlugin(input: AsyncIterable<Uint8Array>, reply: (frame: string) => void, actions: ZyppPluginActions): Promise<void> {
  const reader = new FrameReader();
  let open = false;
  const attempt = async (what: string, f: () => void | Promise<void>) => {
    try {
      await f();
    } catch (err) {
      actions.log(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const answer = (frame: string) => {
    try {
      reply(frame);
    } catch (err) {
      // zypper went away (EPIPE): keep reading, the end of input still finishes the commit.
      actions.log(`cannot answer libzypp: ${(err as Error).message}`);
    }
  };
  const finish = async () => {
    if (!open) return;
    open = false;
    await attempt('commit', () => actions.commit());
    await attempt('end', () => actions.end());
  };
  for await (const chunk of input) {
    for (const f of reader.push(chunk)) {
      if (f.command === 'COMMITBEGIN') {
        open = true;
        await attempt('begin', () => actions.begin());
      } else if (f.command === 'COMMITEND') {
        await finish();
      }
      answer(encodeFrame(KNOWN.has(f.command) ? 'ACK' : '_ENOMETHOD'));
      if (f.command === '_DISCONNECT') {
        await finish();
        return;
      }
    }
  }
  await finish();
}

/** Where the plugin marks a zypper commit in progress; hooks/depmod-tx-hook reads the same path. */
export function zyppMarkFile(root: string): string {
  return join(stateDirs(root).lib, 'zypp-plugin.pid');
}

export function markZyppCommit(root: string, zypperPid: string): void {
  const file = zyppMarkFile(root);
  mkdirSync(stateDirs(root).lib, { recursive: true, mode: 0o755 });
  // Renamed into place: a trigger reading it meanwhile sees the old content or the new, never half.
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${zypperPid}\n`, { mode: 0o644 });
  renameSync(tmp, file);
}

/** Removes the mark if it is still this zypper's. */
export function clearZyppCommit(root: string, zypperPid: string): void {
  const file = zyppMarkFile(root);
  let held: string;
  try {
    held = readFileSync(file, 'utf8').trim();
  } catch {
    return;
  }
  if (held === zypperPid) unlinkSync(file);
}
