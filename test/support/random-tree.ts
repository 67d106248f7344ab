// Seeded random module trees for differential tests against Debian's depmod: the same seed gives the
// same tree (modules, modules.order, depmod.d) on every machine. Pure description; write it with
// writeFixtureTree (fixture-tree.ts). Shapes are picked to hit the rules depmod's output depends on:
// duplicate module names across updates/ extra/ kernel/ weak-updates/ (priority and search order),
// '-' vs '_' in file names, modules missing from modules.order, dependency cycles, a symbol exported
// twice, unresolved, weak and CRC'd imports, alias normalisation (dashes, brackets, wildcards),
// softdeps and devname nodes.
import type { FixtureExport, FixtureImport, FixtureModule } from './fixture-elf.ts';
import type { FixtureTreeModule } from './fixture-tree.ts';

export interface RandomTreeOptions {
  /** Inclusive bounds on the number of module files; default 5..40. */
  minModules?: number;
  maxModules?: number;
  /** 'mixed' gives some modules .ko.xz / .ko.zst suffixes; default 'none'. */
  compression?: 'none' | 'mixed';
  /** Fix the ELF class / byte order instead of drawing them. */
  bits?: 32 | 64;
  endian?: 'le' | 'be';
  /**
   * Allow imports that can close a dependency cycle (depmod then reports "Cycle detected" and exits 1).
   * Default false: every import resolves, whichever duplicate wins, to a module whose name was drawn
   * earlier, so Debian's depmod must exit 0.
   */
  cycles?: boolean;
}

/** The kernel version random trees are written for (their `override` lines may name it). */
export const RANDOM_TREE_KVER = '6.1.0-fixture';

export interface RandomTree {
  seed: number;
  kver: string;
  modules: FixtureTreeModule[];
  /** modules.order lines. */
  order: string[];
  /** Relative path under root → text; pass to writeFixtureTree and depmodConfigArgs. */
  depmodConf: Record<string, string>;
  bits: 32 | 64;
  endian: 'le' | 'be';
  /** modules.builtin lines and modules.builtin.modinfo records (undefined: the file is absent). */
  builtin: string[] | undefined;
  builtinModinfo: Array<[modname: string, key: string, value: string]> | undefined;
}

/** mulberry32: tiny, fast, and good enough to shuffle test cases; 32-bit state from the seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Rng {
  next(): number;
  int(lo: number, hi: number): number;
  chance(p: number): boolean;
  pick<T>(xs: readonly T[]): T;
  shuffle<T>(xs: T[]): T[];
}

function rng(seed: number): Rng {
  const next = mulberry32(seed);
  const r: Rng = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: (p) => next() < p,
    pick: (xs) => {
      const x = xs[Math.floor(next() * xs.length)];
      if (x === undefined) throw new RangeError('pick from an empty list');
      return x;
    },
    shuffle: (xs) => {
      for (let i = xs.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        const t = xs[i] as (typeof xs)[number];
        xs[i] = xs[j] as (typeof xs)[number];
        xs[j] = t;
      }
      return xs;
    },
  };
  return r;
}

const STEMS = ['snd', 'usb', 'net', 'hid', 'nvme', 'drm', 'crypto', 'fs', 'i2c', 'gpio', 'virtio', 'btrfs'] as const;
const KERNEL_DIRS = ['kernel/drivers/net', 'kernel/drivers/usb/core', 'kernel/sound', 'kernel/fs/x', 'kernel/lib', 'kernel/crypto'] as const;
// 'build' and 'source' are directory names depmod always skips (should_exclude_dir).
const EXTRA_DIRS = ['updates', 'updates/dkms', 'extra', 'extra/skip', 'weak-updates', 'weak-updates/vendor', 'kernel/build'] as const;
// Symbols a real module imports from vmlinux: never exported by a module here, so unresolved.
const KERNEL_SYMS = ['_printk', 'kmalloc_caches', '__fentry__', 'mutex_lock', 'module_put'] as const;

function hex(r: Rng, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += '0123456789ABCDEF'.charAt(r.int(0, 15));
  return s;
}

function randomAlias(r: Rng, stem: string): string {
  switch (r.int(0, 7)) {
    case 0:
      return `pci:v0000${hex(r, 4)}d0000${hex(r, 4)}sv*sd*bc*sc*i*`;
    case 1:
      return `usb:v${hex(r, 4)}p${hex(r, 4)}d*dc*dsc*dp*ic*isc*ip*in*`;
    case 2:
      return `of:N*T*C${stem}-ctrl[ab]*`;
    case 3:
      return `platform:${stem}-${r.pick(['core', 'dev_x', 'a-b_c'])}`;
    case 4:
      return `acpi*:${hex(r, 3)}[0-9]${hex(r, 1)}:*`;
    case 5:
      return `fs-${stem}${r.int(0, 9)}`;
    case 6:
      return `${stem}_${r.pick(['x', 'y'])}-${r.pick(['p', 'q'])}?`;
    default:
      return `net-pf-${r.int(1, 40)}-proto-${r.int(0, 9)}`;
  }
}

/** A random tree for `seed`. Small: 5–40 modules unless opts say otherwise. */
export function randomTree(seed: number, opts: RandomTreeOptions = {}): RandomTree {
  const r = rng(seed);
  // What kmod releases differ on (weakdep, modules.order duplicates, builtin indexes) is drawn from
  // a second generator, so the rest of each seed's tree stays what it was before they were added.
  const v = rng(seed ^ 0x5bd1e995);
  const bits = opts.bits ?? (r.chance(0.5) ? 64 : 32);
  const endian = opts.endian ?? (r.chance(0.5) ? 'le' : 'be');
  const n = r.int(opts.minModules ?? 5, opts.maxModules ?? 40);

  // Base names first; some files reuse an earlier name (duplicates) possibly with '-'/'_' swapped.
  interface Slot {
    modname: string;
    file: string;
    dir: string;
    exports: FixtureExport[];
  }
  const slots: Slot[] = [];
  const crcOf = new Map<string, number | undefined>();
  for (let i = 0; i < n; i++) {
    let base: string;
    let dir: string;
    const earlier = slots.length > 0 && r.chance(0.2) ? r.pick(slots) : undefined;
    if (earlier !== undefined) {
      base = earlier.modname;
      dir = r.pick(EXTRA_DIRS.concat(KERNEL_DIRS as unknown as (typeof EXTRA_DIRS)[number][]));
    } else {
      base = `${r.pick(STEMS)}_m${i}${r.chance(0.3) ? '_core' : ''}`;
      dir = r.chance(0.75) ? r.pick(KERNEL_DIRS) : r.pick(EXTRA_DIRS);
    }
    // The file name may use dashes; depmod's module name turns them back into underscores.
    const file = r.chance(0.4) ? base.replace(/_/g, '-') : base;
    const versioned = r.chance(0.7);
    const exports: FixtureExport[] = [];
    const nexp = r.int(0, 3);
    for (let k = 0; k < nexp; k++) {
      const name = `${base}_sym${k}`;
      // A duplicate file of the same module usually exports the same symbols, maybe with a new CRC.
      let crc: number | undefined;
      if (versioned) {
        const prev = crcOf.get(name);
        crc = prev !== undefined && r.chance(0.7) ? prev : r.int(0, 0xffffffff);
        crcOf.set(name, crc);
      }
      exports.push({ name, ...(crc !== undefined ? { crc } : {}), ...(r.chance(0.3) ? { gpl: true } : {}) });
    }
    slots.push({ modname: base, file, dir, exports });
  }
  // A symbol exported by two different modules.
  if (slots.length >= 2 && r.chance(0.6)) {
    const a = r.pick(slots);
    const b = r.pick(slots.filter((s) => s.modname !== a.modname).concat([a]));
    const e = a.exports[0];
    if (e !== undefined && b !== a) {
      const versioned = b.exports.some((x) => x.crc !== undefined) || b.exports.length === 0;
      b.exports.push({ name: e.name, ...(versioned ? { crc: e.crc ?? r.int(0, 0xffffffff) } : {}) });
    }
  }

  // Acyclic by construction: a module may import a symbol only when every module that exports that
  // symbol (any file of any name that exports it) has a name drawn before its own name.
  const rank = new Map<string, number>();
  for (const sl of slots) if (!rank.has(sl.modname)) rank.set(sl.modname, rank.size);
  const exporterRank = new Map<string, number>();
  for (const sl of slots) {
    for (const e of sl.exports) exporterRank.set(e.name, Math.max(exporterRank.get(e.name) ?? -1, rank.get(sl.modname) ?? 0));
  }
  const allExports = slots.flatMap((sl) => sl.exports);

  const usedPaths = new Set<string>();
  const modules: FixtureTreeModule[] = [];
  slots.forEach((s, i) => {
    const imports: FixtureImport[] = [];
    const own = rank.get(s.modname) ?? 0;
    const safe = allExports.filter((e) => (exporterRank.get(e.name) ?? 0) < own);
    const nimp = r.int(0, 4);
    for (let k = 0; k < nimp; k++) {
      const from = opts.cycles === true && r.chance(0.15) ? allExports : safe;
      const e = from.length > 0 ? r.pick(from) : undefined;
      if (e === undefined || imports.some((x) => x.name === e.name) || s.exports.some((x) => x.name === e.name)) continue;
      const crc = e.crc === undefined ? undefined : r.chance(0.9) ? e.crc : (e.crc ^ 0x5a5a) >>> 0;
      imports.push({ name: e.name, ...(crc !== undefined ? { crc } : {}), ...(r.chance(0.1) ? { weak: true } : {}) });
    }
    if (r.chance(0.3)) imports.push({ name: `missing_${s.modname}_${r.int(0, 99)}`, ...(r.chance(0.5) ? { crc: r.int(0, 0xffffffff) } : {}) });
    if (r.chance(0.2)) imports.push({ name: `weak_${r.int(0, 99)}_opt`, weak: true });
    const ksyms = r.shuffle([...KERNEL_SYMS]).slice(0, r.int(0, 2));
    for (const ks of ksyms) imports.push({ name: ks, crc: r.int(0, 0xffffffff) });
    if (r.chance(0.7)) imports.push({ name: 'module_layout', crc: 0x1234abcd, versionOnly: true });

    const modinfo: Array<[string, string]> = [];
    const nalias = r.int(0, 4);
    for (let k = 0; k < nalias; k++) modinfo.push(['alias', randomAlias(r, s.modname.split('_')[0] ?? 'x')]);
    if (r.chance(0.25)) {
      const others = slots.filter((o) => o !== s).map((o) => o.modname);
      if (others.length > 0) {
        const pre = r.shuffle([...others]).slice(0, r.int(0, 2));
        const post = r.shuffle([...others]).slice(0, r.int(0, 2));
        const parts = [pre.length > 0 ? `pre: ${pre.join(' ')}` : '', post.length > 0 || pre.length === 0 ? `post: ${post.concat(pre.length === 0 && post.length === 0 ? ['nonexistent_mod'] : []).join(' ')}` : ''];
        modinfo.push(['softdep', parts.filter((p) => p !== '').join(' ')]);
      }
    }
    if (r.chance(0.15)) {
      const dev = `${s.modname.split('_')[0] ?? 'x'}/ctl${i}`;
      const kind = r.pick(['char', 'block'] as const);
      const major = `${kind}-major-${r.int(1, 254)}-${r.int(0, 255)}`;
      // Either order: depmod takes the devname and the first major/minor alias wherever they sit.
      if (r.chance(0.5)) modinfo.push(['alias', `devname:${dev}`], ['alias', major]);
      else modinfo.push(['alias', major], ['alias', `devname:${dev}`]);
    }
    if (v.chance(0.15)) {
      const others = slots.filter((o) => o !== s).map((o) => o.modname);
      const deps = v.shuffle([...others, 'nonexistent_mod']).slice(0, v.int(1, 2));
      modinfo.push(['weakdep', deps.join(' ')]);
    }
    if (r.chance(0.5)) modinfo.push(['depends', '']);
    modinfo.push(['license', r.pick(['GPL', 'GPL v2', 'Dual MIT/GPL'])]);
    modinfo.push(['vermagic', '6.1.0-fixture SMP preempt mod_unload modversions ']);
    r.shuffle(modinfo);

    let suffix = '.ko';
    if (opts.compression === 'mixed') suffix = r.pick(['.ko', '.ko', '.ko.xz', '.ko.zst']);
    let path = `${s.dir}/${s.file}${suffix}`;
    if (usedPaths.has(path)) path = `${s.dir}/sub${i}/${s.file}${suffix}`;
    usedPaths.add(path);
    const crcStyle = r.pick(['kcrctab', 'kcrctab', 'crc-absolute', 'crc-section'] as const);
    const module: FixtureModule = { modinfo, exports: s.exports, imports, crcStyle };
    modules.push({ path, module });
  });
  // Creation order is not path order: shuffle so readdir order differs from sorted order.
  r.shuffle(modules);

  // modules.order: most kernel/ modules (shuffled), a few others, one line naming no file.
  // Lines name the uncompressed path, as kernels ship the file (depmod_modules_sort matches on it).
  const order = r.shuffle(
    modules.filter((m) => (m.path.startsWith('kernel/') ? r.chance(0.85) : r.chance(0.15))).map((m) => m.path.replace(/\.ko\.(xz|zst|gz)$/, '.ko')),
  );
  if (r.chance(0.3)) order.splice(r.int(0, order.length), 0, 'kernel/drivers/gone/not-here.ko');
  // A module named twice: kmod 34 sorts it by its first line, earlier kmods by its last.
  if (order.length > 1 && v.chance(0.25)) order.splice(v.int(0, order.length), 0, v.pick(order));

  let builtin: string[] | undefined;
  let builtinModinfo: Array<[string, string, string]> | undefined;
  if (v.chance(0.7)) {
    const names = ['crc32c_generic', 'ext4', 'unix', 'vt', 'i8042', 'sd-mod'].slice(0, v.int(0, 6));
    builtin = names.map((nm) => `kernel/builtin/${nm}.ko`);
    if (v.chance(0.85)) {
      builtinModinfo = [];
      for (const nm of names) {
        const mod = nm.replaceAll('-', '_');
        if (v.chance(0.3)) builtinModinfo.push([mod, 'license', 'GPL']);
        for (let k = v.int(0, 3); k > 0; k--) builtinModinfo.push([mod, 'alias', randomAlias(v, mod.split('_')[0] ?? 'x')]);
        if (v.chance(0.2)) builtinModinfo.push([mod, 'alias', mod]);
        if (v.chance(0.3)) builtinModinfo.push([mod, 'description', `built-in ${mod}`]);
      }
    }
  }
  const conf: string[] = [];
  if (r.chance(0.6)) {
    const search = r.shuffle(['updates', 'extra', 'built-in', 'weak-updates', 'updates/dkms']).slice(0, r.int(1, 5));
    if (!search.includes('built-in') && r.chance(0.5)) search.push('built-in');
    conf.push(`search ${search.join(' ')}`);
  }
  const dupNames = [...new Set(slots.map((s) => s.modname))].filter((nm) => slots.filter((s) => s.modname === nm).length > 1);
  if (dupNames.length > 0 && r.chance(0.7)) {
    const nm = r.pick(dupNames);
    const dirs = slots.filter((s) => s.modname === nm).map((s) => s.dir);
    conf.push(`override ${nm} ${r.pick(['*', RANDOM_TREE_KVER])} ${r.pick(dirs)}`);
  }
  // kmod 30 compares `exclude` with each directory entry's own name, so 'extra/skip' never matches.
  if (r.chance(0.4)) conf.push(`exclude ${r.pick(['skip', 'vendor', 'dkms', 'extra/skip'])}`);
  if (r.chance(0.2)) conf.push('# a comment line', '');
  const depmodConf: Record<string, string> = conf.length > 0 ? { 'etc/depmod.d/fixture.conf': conf.map((l) => `${l}\n`).join('') } : {};
  return { seed, kver: RANDOM_TREE_KVER, modules, order, depmodConf, bits, endian, builtin, builtinModinfo };
}
