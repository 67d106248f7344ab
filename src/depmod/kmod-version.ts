// What differs in `depmod -a` output between kmod releases, as one table: depmod-tx writes the bytes
// of the kmod installed in the root it writes, from kmod 28 (RHEL 9) to kmod 34 (Debian 13, Arch).
//
// Each row cites the kmod commit that made the change (read for behaviour only; every row is
// checked against a depmod built from that tag, see test/depmod/kmod-versions*.test.ts):
//   28  modules.builtin.alias.bin is written only when modules.builtin.modinfo is missing (then an
//       empty index); with the file present the stale return value of kmod_module_get_info skips
//       the write and the file is 0 bytes (fixed by f0a1360 in 29). Config directories /run, /etc,
//       /lib (1c10f32 and 9319b0f in 29 reorder them and add /usr/local/lib).
//   29  modules.builtin.alias.bin also holds one `name -> name` entry per builtin module
//       (removed by 7a0f593 in 30).
//   30  `exclude` in depmod.d (f50e2d6); modules.builtin.modinfo read by depmod itself (0246e06):
//       a missing one is warned about and gives a 0-byte file, an empty one an empty index.
//   32  DISTCONFDIR/depmod.d (/usr/lib/depmod.d) read before /lib/depmod.d (8463809).
//   33  modules.weakdep from `weakdep=` modinfo (05828b4).
//   34  every index written in pre-order, the root node first (dada048); same keys, values, sizes.
//       A module named twice in modules.order takes the place of its first line, not its last
//       (19c0df1, a1186fa). A .ko.zst is decompressed in one call sized by its first frame's
//       header: one without a content size cannot be loaded (src/module/zstd-frames.ts), and a
//       damaged one fails otherwise (src/module/zstd-kmod.ts). libkmod-elf.c reads some damaged
//       files otherwise (src/elf/elf.ts, src/module/parse.ts: ModuleRecord.kmod34; 16ea23b,
//       e5ef157, 0930e7b, c40627f): records carry both readings, the module set the one it writes.
// Pure: a version string in, a behaviour out.

/** How a binary index's nodes are laid out in the file (src/index/trie.ts). */
export type IndexNodeOrder = 'post-order' | 'pre-order';

/** What modules.builtin.alias.bin holds (see the table above). */
export type BuiltinAliasRule = 'kmod28' | 'with-modnames' | 'aliases';

export interface KmodBehaviour {
  /** The version as `depmod --version` prints it ("30", "34.2"). */
  version: string;
  major: number;
  indexOrder: IndexNodeOrder;
  writesWeakdep: boolean;
  builtinAlias: BuiltinAliasRule;
  /** depmod.d directories read when -C is not given, in priority order. */
  configDirs: readonly string[];
  /** The `exclude` directive exists (older kmods report the line as bad). */
  supportsExclude: boolean;
  /** A missing modules.builtin.modinfo is reported ("could not open ..."). */
  warnsMissingBuiltinModinfo: boolean;
  /** A module listed twice in modules.order sorts by its first line (kmod 34) or its last. */
  orderFirstLineWins: boolean;
  /** A .ko.zst without a sized single frame cannot be loaded (kmod 34+). */
  zstdNeedsSizedFrame: boolean;
}

/** The oldest and newest kmod whose output depmod-tx reproduces. */
export const OLDEST_KMOD = 28;
export const NEWEST_KMOD = 34;

const CONFIG_DIRS_28 = ['/run/depmod.d', '/etc/depmod.d', '/lib/depmod.d'] as const;
const CONFIG_DIRS_29 = ['/etc/depmod.d', '/run/depmod.d', '/usr/local/lib/depmod.d', '/lib/depmod.d'] as const;
// kmod 32 adds DISTCONFDIR/depmod.d before /lib/depmod.d: /usr/lib for every distribution build
// we know of (a root without /usr/lib/depmod.d reads the same files as before).
const CONFIG_DIRS_32 = ['/etc/depmod.d', '/run/depmod.d', '/usr/local/lib/depmod.d', '/usr/lib/depmod.d', '/lib/depmod.d'] as const;

/** The behaviour of kmod `version` ("30", "34.2", "34-rc1"); undefined when it is not a version we know. */
export function kmodBehaviour(version: string): KmodBehaviour | undefined {
  const m = /^(\d+)(?:[.-].*)?$/.exec(version.trim());
  if (m === null) return undefined;
  const major = Number(m[1]);
  if (major < OLDEST_KMOD || major > NEWEST_KMOD) return undefined;
  return {
    version: version.trim(),
    major,
    indexOrder: major >= 34 ? 'pre-order' : 'post-order',
    writesWeakdep: major >= 33,
    builtinAlias: major === 28 ? 'kmod28' : major === 29 ? 'with-modnames' : 'aliases',
    configDirs: major === 28 ? CONFIG_DIRS_28 : major >= 32 ? CONFIG_DIRS_32 : CONFIG_DIRS_29,
    supportsExclude: major >= 30,
    warnsMissingBuiltinModinfo: major >= 30,
    orderFirstLineWins: major >= 34,
    zstdNeedsSizedFrame: major >= 34,
  };
}

/** kmod 30, the default wherever no installed kmod says otherwise (Debian 12's). */
export const DEFAULT_BEHAVIOUR: KmodBehaviour = kmodBehaviour('30')!;

/** The behaviour used when the installed kmod cannot be told: the newest format. */
export function newestKmodBehaviour(): KmodBehaviour {
  return kmodBehaviour(String(NEWEST_KMOD))!;
}

/** The version on the first line of `depmod --version` ("kmod version 34.2"), or undefined. */
export function parseDepmodVersionOutput(stdout: string): string | undefined {
  const first = stdout.split('\n', 1)[0] ?? '';
  const m = /^kmod version (\S+)\s*$/.exec(first);
  return m?.[1];
}
