// Module alias normalisation for the alias indexes (modules.alias.bin, modules.builtin.alias.bin).
// Matches kmod v30 shared/util.c alias_normalize, called from tools/depmod.c output_aliases_bin
// and output_builtin_alias_bin. The text modules.alias keeps aliases as written; only the
// binary indexes use the normalised form, which is what libkmod's lookup normalises queries to.

/** kmod normalises into a PATH_MAX buffer and silently stops after PATH_MAX - 1 characters. */
const ALIAS_MAX = 4096 - 1;

/**
 * The key kmod stores for `alias`: '-' becomes '_' except inside a bracket expression
 * ("[0-9]" keeps its dash), which is copied verbatim. An unmatched '[' or a ']' outside a
 * bracket makes kmod skip the alias with "Unmatched bracket in ..." (returns null here).
 * The length limit counts UTF-16 units where kmod counts bytes; they agree on ASCII, which is
 * all real modinfo contains.
 */
export function normalizeAlias(alias: string): string | null {
  const nul = alias.indexOf('\0');
  const s = nul >= 0 ? alias.slice(0, nul) : alias;
  if (s.indexOf('[') < 0 && s.indexOf(']') < 0) {
    // Without brackets the loop below is a plain replacement (the common case: 26,000 calls).
    return (s.length > ALIAS_MAX ? s.slice(0, ALIAS_MAX) : s).replaceAll('-', '_');
  }

  let out = '';
  let i = 0;
  for (; i < ALIAS_MAX && i < s.length; i++) {
    const c = s[i]!;
    if (c === '-') out += '_';
    else if (c === ']') return null;
    else if (c === '[') {
      // kmod copies the whole bracket expression without re-checking its buffer bound, so a
      // bracket that starts before the limit is kept entire.
      const close = s.indexOf(']', i);
      if (close < 0) return null;
      out += s.slice(i, close + 1);
      i = close;
    } else out += c;
  }
  return out;
}
