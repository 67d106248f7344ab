// apt's DPkg::Pre-Install-Pkgs hook, protocol version 3 (apt.conf(5), apt-pkg/deb/dpkgpm.cc), as
// apt 2.6 writes it on the hook's info fd (stdin unless DPkg::Tools::Options::CMD::InfoFD):
//   VERSION 3
//   Key=value              configuration dump, one item per line, %-encoded; list items as Key::=value
//   (blank line)
//   NAME OLDVER OLDARCH OLDMA DIR NEWVER NEWARCH NEWMA ACTION
// DIR is < (upgrade or new install), > (downgrade or removal) or =; a missing version or arch is
// "-"; MA is same|foreign|allowed|none ("none" means "no"); ACTION is the .deb path being
// unpacked, **CONFIGURE** or **REMOVE**. Version 2 lacks the ARCH/MA fields; version 1 is just
// .deb paths. The hook runs before dpkg: the .deb payloads name what will be installed, and
// dpkg's .list files still name what removals and upgrades will take away.
import { FormatError } from '../errors.ts';
import { listDebPayload } from './collect-deb.ts';
import { dpkgInfoDir, readDpkgList } from './collect-dpkg-list.ts';
import { recordEvents } from './record.ts';
import type { PathRefusedError } from './paths.ts';

export interface AptAction {
  package: string;
  oldVersion: string | null;
  oldArch: string | null;
  oldMultiArch: string | null;
  direction: '<' | '>' | '=' | null;
  newVersion: string | null;
  newArch: string | null;
  newMultiArch: string | null;
  action: { kind: 'unpack'; deb: string } | { kind: 'configure' } | { kind: 'remove' };
  line: number;
}

export interface AptHookInfo {
  version: number;
  /** Configuration items; list options (Key::=v) collect under Key without the trailing "::". */
  config: Map<string, string[]>;
  actions: AptAction[];
}

function pctDecode(s: string): string {
  return s.includes('%') ? decodeURIComponent(s.replace(/%(?![0-9A-Fa-f]{2})/g, '%25')) : s;
}

const dash = (s: string | undefined): string | null => (s === undefined || s === '-' ? null : s);

function actionOf(field: string): AptAction['action'] {
  if (field === '**CONFIGURE**') return { kind: 'configure' };
  if (field === '**REMOVE**') return { kind: 'remove' };
  return { kind: 'unpack', deb: field };
}

/** Parses the hook's input. Pure. Throws FormatError naming `file` and the line. */
export function parseAptHookInfo(text: string, file = '<apt hook input>'): AptHookInfo {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const config = new Map<string, string[]>();
  const actions: AptAction[] = [];
  const m = /^VERSION ([0-9]+)$/.exec(lines[0] ?? '');
  if (m === null) {
    // Version 1: one .deb per line.
    lines.forEach((l, i) => {
      if (l !== '') actions.push({ package: '', oldVersion: null, oldArch: null, oldMultiArch: null, direction: null, newVersion: null, newArch: null, newMultiArch: null, action: { kind: 'unpack', deb: l }, line: i + 1 });
    });
    return { version: 1, config, actions };
  }
  const version = Number(m[1]);
  if (version !== 2 && version !== 3) throw new FormatError(file, `line 1: unsupported hook protocol version ${version}`);
  let i = 1;
  for (; i < lines.length; i++) {
    const l = lines[i] ?? '';
    if (l === '') break;
    const eq = l.indexOf('=');
    if (eq < 0) throw new FormatError(file, `line ${i + 1}: configuration item without '='`);
    let key = pctDecode(l.slice(0, eq));
    if (key.endsWith('::')) key = key.slice(0, -2);
    const list = config.get(key);
    const value = pctDecode(l.slice(eq + 1));
    if (list === undefined) config.set(key, [value]);
    else list.push(value);
  }
  const nfields = version === 3 ? 9 : 5;
  for (i++; i < lines.length; i++) {
    const l = lines[i] ?? '';
    if (l === '') continue;
    const f = l.split(' ');
    if (f.length < nfields) throw new FormatError(file, `line ${i + 1}: expected ${nfields} fields, got ${f.length}`);
    // The action is the last field; a .deb path with spaces keeps them.
    const action = actionOf(f.slice(nfields - 1).join(' '));
    const dir = version === 3 ? f[4] : f[2];
    if (dir !== '<' && dir !== '>' && dir !== '=') throw new FormatError(file, `line ${i + 1}: bad version direction ${JSON.stringify(dir)}`);
    const pkg = f[0] ?? '';
    if (version === 3) {
      actions.push({ package: pkg, oldVersion: dash(f[1]), oldArch: dash(f[2]), oldMultiArch: dash(f[3]), direction: dir, newVersion: dash(f[5]), newArch: dash(f[6]), newMultiArch: dash(f[7]), action, line: i + 1 });
    } else {
      actions.push({ package: pkg, oldVersion: dash(f[1]), oldArch: null, oldMultiArch: null, direction: dir, newVersion: dash(f[3]), newArch: null, newMultiArch: null, action, line: i + 1 });
    }
  }
  return { version, config, actions };
}

export interface AptCollectResult {
  recorded: number;
  ignored: number;
  refused: PathRefusedError[];
  /** Per-package problems (unreadable .deb, ...): reported, the other packages still recorded. */
  errors: Error[];
}

/**
 * Records what the transaction apt is about to run will do to module trees: adds from each .deb
 * payload; removes from the installed .list of packages being removed or upgraded (an upgrade
 * may drop modules the new version no longer ships; the merge re-stats every path either way).
 */
export async function collectAptHook(opts: { root: string; text: string; txn: string; infoDir?: string; file?: string }): Promise<AptCollectResult> {
  const info = parseAptHookInfo(opts.text, opts.file);
  const infoDir = opts.infoDir ?? dpkgInfoDir(opts.root);
  const out: AptCollectResult = { recorded: 0, ignored: 0, refused: [], errors: [] };
  const add = (r: { recorded: number; ignored: number; refused: PathRefusedError[] }) => {
    out.recorded += r.recorded;
    out.ignored += r.ignored;
    out.refused.push(...r.refused);
  };
  for (const a of info.actions) {
    try {
      const installed = a.action.kind === 'remove' || (a.action.kind === 'unpack' && a.oldVersion !== null);
      if (installed && a.package !== '') {
        const list = readDpkgList(infoDir, a.package, a.oldArch ?? undefined, a.oldMultiArch ?? undefined);
        if (list !== undefined) add(await recordEvents({ root: opts.root, op: 'remove', package: a.package, txn: opts.txn, paths: list.paths }));
      }
      if (a.action.kind === 'unpack') {
        const payload = await listDebPayload(a.action.deb);
        add(await recordEvents({ root: opts.root, op: 'add', package: a.package !== '' ? a.package : null, txn: opts.txn, paths: payload.paths }));
      }
    } catch (err) {
      out.errors.push(err instanceof Error ? err : new Error(String(err)));
    }
  }
  return out;
}
