// /etc/depmod-tx.conf (under the root): the administrator's settings, one `key = value` per line,
// `#` starts a comment. An unknown key or value is reported and the default used: a typo must never
// stop a package transaction.
//   initrd = regenerate | flag | off      what a commit does when it changed a kernel's database
//                                         (src/txn/initrd.ts)
//   depmod-calls = defer | immediate      what depmod-tx's `depmod` does when a package script calls
//                                         it inside a dpkg run (hooks/depmod): record the kernel for
//                                         the commit at the end (no Node.js start), or merge now
//   system-depmod = depmod-tx | kmod      Debian: whether depmod-tx's front end replaces kmod's
//                                         depmod (hooks/depmod-divert reads this line itself)
//   weak-updates = auto | suse | rhel | off
//                                         whether a commit keeps other kernels' compatible modules
//                                         linked into weak-updates/ and by which family's rules
//                                         (src/txn/weak-updates.ts); auto: on where a depmod.d
//                                         `search` line names weak-updates, the rules from its place
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const CHOICES = {
  initrd: ['regenerate', 'flag', 'off'],
  'depmod-calls': ['defer', 'immediate'],
  'system-depmod': ['depmod-tx', 'kmod'],
  'weak-updates': ['auto', 'suse', 'rhel', 'off'],
} as const;

type Key = keyof typeof CHOICES;

export interface Settings {
  initrd: (typeof CHOICES)['initrd'][number];
  depmodCalls: (typeof CHOICES)['depmod-calls'][number];
  systemDepmod: (typeof CHOICES)['system-depmod'][number];
  weakUpdates: (typeof CHOICES)['weak-updates'][number];
}

export const DEFAULT_SETTINGS: Readonly<Settings> = { initrd: 'regenerate', depmodCalls: 'defer', systemDepmod: 'depmod-tx', weakUpdates: 'auto' };

export function settingsFile(root: string): string {
  return join(root, 'etc', 'depmod-tx.conf');
}

/** Parses the settings text. Pure; `file` only names the file in warnings. */
export function parseSettings(text: string, file: string, warn: (msg: string) => void = () => {}): Settings {
  const values: Record<Key, string> = {
    initrd: DEFAULT_SETTINGS.initrd,
    'depmod-calls': DEFAULT_SETTINGS.depmodCalls,
    'system-depmod': DEFAULT_SETTINGS.systemDepmod,
    'weak-updates': DEFAULT_SETTINGS.weakUpdates,
  };
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const m = /^([a-z-]+)\s*=\s*(\S+)$/.exec(line);
    const key = m?.[1] as Key | undefined;
    if (m === null || key === undefined || !(key in CHOICES)) return warn(`${file}:${i + 1}: unknown setting ignored: ${line}`);
    const choices: readonly string[] = CHOICES[key];
    if (choices.includes(m[2]!)) values[key] = m[2]!;
    else warn(`${file}:${i + 1}: ${key} must be ${choices.slice(0, -1).join(', ')} or ${choices[choices.length - 1]} (not ${m[2]}); using ${choices[0]}`);
  });
  return {
    initrd: values.initrd as Settings['initrd'],
    depmodCalls: values['depmod-calls'] as Settings['depmodCalls'],
    systemDepmod: values['system-depmod'] as Settings['systemDepmod'],
    weakUpdates: values['weak-updates'] as Settings['weakUpdates'],
  };
}

/** ROOT/etc/depmod-tx.conf, or the defaults when it does not exist. */
export function readSettings(root: string, warn: (msg: string) => void = () => {}): Settings {
  const file = settingsFile(root);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { ...DEFAULT_SETTINGS };
  }
  return parseSettings(text, file, warn);
}
