// The two orders the weak-updates tools sort by, as pure comparisons:
//  - rpm's version comparison (rpmvercmp, lib/rpmvercmp.c in rpm): SUSE's weak-modules2 tries KMPs
//    "newest first" with /usr/lib/rpm/rpmsort -r, which orders name-version-release strings by it.
//  - the kernel order of RHEL's weak-modules (its own `rpmsort -r`): every '-' becomes '..', then
//    `sort -r -n -t. -k1,1 ... -k10,10`, i.e. the first ten dot-separated fields compared as numbers
//    (a field without leading digits counts 0), the whole line compared bytewise last.

/**
 * rpmvercmp: both strings cut into runs of digits and runs of letters (other characters only
 * separate); '~' sorts before anything (even the end), '^' after the end but before anything else;
 * a digit run beats a letter run; digit runs compare as numbers, letter runs bytewise; when one
 * string runs out, the longer one is newer.
 */
export function rpmvercmp(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  const isAlnum = (c: string | undefined): boolean => c !== undefined && /[0-9A-Za-z]/.test(c);
  for (;;) {
    while (i < a.length && !isAlnum(a[i]) && a[i] !== '~' && a[i] !== '^') i++;
    while (j < b.length && !isAlnum(b[j]) && b[j] !== '~' && b[j] !== '^') j++;
    if (a[i] === '~' || b[j] === '~') {
      if (a[i] !== '~') return 1;
      if (b[j] !== '~') return -1;
      i++;
      j++;
      continue;
    }
    if (a[i] === '^' || b[j] === '^') {
      if (i >= a.length) return -1;
      if (j >= b.length) return 1;
      if (a[i] !== '^') return 1;
      if (b[j] !== '^') return -1;
      i++;
      j++;
      continue;
    }
    if (i >= a.length || j >= b.length) break;
    const numeric = /[0-9]/.test(a[i]!);
    const run = (s: string, from: number): number => {
      let k = from;
      while (k < s.length && (numeric ? /[0-9]/.test(s[k]!) : /[A-Za-z]/.test(s[k]!))) k++;
      return k;
    };
    const ie = run(a, i);
    const je = run(b, j);
    // The other side has no run of this kind here: a digit run is newer than a letter run.
    if (je === j) return numeric ? 1 : -1;
    let x = a.slice(i, ie);
    let y = b.slice(j, je);
    if (numeric) {
      x = x.replace(/^0+/, '');
      y = y.replace(/^0+/, '');
      if (x.length !== y.length) return x.length > y.length ? 1 : -1;
    }
    if (x !== y) return x < y ? -1 : 1;
    i = ie;
    j = je;
  }
  if (i >= a.length && j >= b.length) return 0;
  return i >= a.length ? -1 : 1;
}

/** A package's name-version-release split at its last two dashes (name may hold dashes). */
export function splitNvr(nvr: string): { name: string; version: string; release: string } {
  const r = nvr.lastIndexOf('-');
  const v = r > 0 ? nvr.lastIndexOf('-', r - 1) : -1;
  if (r < 0 || v < 0) return { name: nvr, version: '', release: '' };
  return { name: nvr.slice(0, v), version: nvr.slice(v + 1, r), release: nvr.slice(r + 1) };
}

/** N-V-R strings newest first: name bytewise (descending, as `rpmsort -r` reverses all), then version and release by rpmvercmp. */
export function compareNvrNewestFirst(a: string, b: string): number {
  const x = splitNvr(a);
  const y = splitNvr(b);
  if (x.name !== y.name) return x.name < y.name ? 1 : -1;
  return -(rpmvercmp(x.version, y.version) || rpmvercmp(x.release, y.release));
}

/** RHEL weak-modules' `rpmsort -r` on kernel versions: newest first as that script sorts them. */
export function compareKernelsNewestFirst(a: string, b: string): number {
  const key = (s: string): number[] =>
    s
      .replaceAll('-', '..')
      .split('.')
      .slice(0, 10)
      .map((f) => Number(/^[0-9]*/.exec(f)![0] || 0));
  const ka = key(a);
  const kb = key(b);
  for (let f = 0; f < 10; f++) {
    const d = (ka[f] ?? 0) - (kb[f] ?? 0);
    if (d !== 0) return -d;
  }
  return a === b ? 0 : a < b ? 1 : -1;
}
