// modules.builtin.bin and modules.builtin.alias.bin: the indexes of the modules built into the
// kernel image, from the kernel package's modules.builtin and modules.builtin.modinfo (tools/depmod.c
// output_builtin_bin, output_builtin_alias_bin). They depend on those two files and the kmod version
// only, never on the module tree. What each kmod writes into modules.builtin.alias.bin
// (kmod-version.ts BuiltinAliasRule):
//   kmod28         kmod_module_get_builtin through libkmod; the index is written only when that
//                  returned 0 — modules.builtin.modinfo missing or empty: an empty index — else 0 bytes.
//   with-modnames  kmod 29: the same walk, written when the last module had modinfo; each builtin
//                  module's aliases and one `name -> name` entry per module; missing file: 0 bytes.
//   aliases        kmod 30+: depmod reads the file as a stream (builtinAliases); missing: 0 bytes
//                  (and a warning), present: an index of the aliases (empty for an empty file).
// Pure: the bytes of the two input files in, index bytes and depmod's warnings out.
import { IndexTrie, type IndexNodeOrder } from '../index/trie.ts';
import { normalizeAlias } from './alias.ts';
import { depmodError, depmodWarning, type DepmodMessage } from './diagnostic.ts';
import type { BuiltinAliasRule } from './kmod-version.ts';

const latin1Decoder = new TextDecoder('latin1');

/**
 * output_builtin_bin reads modules.builtin with fgets: a line must start with a letter (isalpha) or
 * is reported and skipped; the key is path_to_modname of the line as read — its base name up to the
 * first '.', dashes to underscores (the '\n' survives only in a name without any '.').
 */
export function builtinModnames(bytes: Uint8Array, warnings: DepmodMessage[]): string[] {
  const s = latin1Decoder.decode(bytes);
  const out: string[] = [];
  let start = 0;
  while (start < s.length) {
    const nl = s.indexOf('\n', start);
    const end = nl < 0 ? s.length : nl + 1;
    const line = s.slice(start, end);
    start = end;
    if (!/^[A-Za-z]/.test(line)) {
      warnings.push(depmodError(`Invalid modules.builtin line: ${line}`));
      continue;
    }
    const base = line.slice(line.lastIndexOf('/') + 1);
    if (base === '') continue;
    const dot = base.indexOf('.');
    out.push((dot < 0 ? base : base.slice(0, dot)).replaceAll('-', '_'));
  }
  return out;
}

export function renderBuiltinBin(builtin: Uint8Array | undefined, order: IndexNodeOrder, warnings: DepmodMessage[]): Uint8Array {
  if (builtin === undefined) return new Uint8Array(0);
  const trie = new IndexTrie('modules.builtin.bin');
  for (const name of builtinModnames(builtin, warnings)) trie.insert(name, '', 0);
  return trie.serialize(order);
}

/**
 * kmod 30's output_builtin_alias_bin stream reading of "modname.key=value\0" records, quirks
 * included: the module name ends at the first '.', the key at '=', each read also stops at a NUL; a
 * record whose key read hit a NUL before '=' skips up to the NEXT NUL (swallowing the following
 * record); empty names and values are skipped. Returns [alias, modname] pairs in file order.
 */
export function builtinAliases(bytes: Uint8Array): Array<[alias: string, modname: string]> {
  const out: Array<[string, string]> = [];
  let p = 0;
  const n = bytes.length;
  // Reads until `end`, NUL or EOF; returns the text when `end` (or NUL for end=0) stopped it, else ''.
  const readTo = (end: number): string => {
    const start = p;
    let c = -1;
    while (p < n) {
      c = bytes[p++]!;
      if (c === end || c === 0) break;
      c = -1;
    }
    const stop = c === -1 ? p : p - 1;
    return c === end ? latin1Decoder.decode(bytes.subarray(start, stop)) : '';
  };
  const skipTo = (end: number): void => {
    while (p < n) {
      const c = bytes[p++]!;
      if (c === end || c === 0) return;
    }
  };
  while (p < n) {
    const modname = readTo(0x2e);
    if (modname === '') continue;
    const key = readTo(0x3d);
    if (key !== 'alias') {
      skipTo(0);
      continue;
    }
    const value = readTo(0);
    if (value === '') continue;
    out.push([value, modname]);
  }
  return out;
}

/**
 * libkmod's builtin iterator (kmod 28/29 libkmod-builtin.c): the file's NUL-terminated strings are
 * grouped into runs of one module name (the part before the first '.'); a string without '.' ends
 * the walk. Each run yields its module, whose info libkmod then looks up as the FIRST run of that
 * name (kmod_builtin_get_modinfo searches from the start), key and value split at '='.
 */
export function libkmodBuiltinModules(bytes: Uint8Array): Array<{ modname: string; info: Array<[key: string, value: string]> }> {
  const strings: string[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0) {
      strings.push(latin1Decoder.decode(bytes.subarray(start, i)));
      start = i + 1;
    }
  }
  if (start < bytes.length) strings.push(latin1Decoder.decode(bytes.subarray(start)));
  const runs: Array<{ modname: string; strings: string[] }> = [];
  for (const s of strings) {
    const dot = s.indexOf('.');
    if (dot < 0) break;
    const modname = s.slice(0, dot);
    const last = runs[runs.length - 1];
    if (last !== undefined && last.modname === modname) last.strings.push(s.slice(dot + 1));
    else runs.push({ modname, strings: [s.slice(dot + 1)] });
  }
  const firstRun = new Map<string, string[]>();
  for (const r of runs) if (!firstRun.has(r.modname)) firstRun.set(r.modname, r.strings);
  return runs.map((r) => ({
    modname: r.modname,
    info: firstRun.get(r.modname)!.map((kv): [string, string] => {
      const eq = kv.indexOf('=');
      return eq < 0 ? [kv, ''] : [kv.slice(0, eq), kv.slice(eq + 1)];
    }),
  }));
}

export function renderBuiltinAliasBin(modinfo: Uint8Array | undefined, rule: BuiltinAliasRule, order: IndexNodeOrder, warnings: DepmodMessage[]): Uint8Array {
  const trie = new IndexTrie('modules.builtin.alias.bin');
  const insertAlias = (alias: string, modname: string): void => {
    const key = normalizeAlias(alias);
    if (key === null) warnings.push(depmodWarning(`Unmatched bracket in ${alias}`));
    else trie.insert(key, modname, 0);
  };
  if (rule === 'aliases') {
    if (modinfo === undefined) return new Uint8Array(0);
    for (const [alias, modname] of builtinAliases(modinfo)) insertAlias(alias, modname);
    return trie.serialize(order);
  }
  const modules = modinfo === undefined ? [] : libkmodBuiltinModules(modinfo);
  for (const m of modules) {
    for (const [key, value] of m.info) if (key === 'alias') insertAlias(value, m.modname);
    trie.insert(m.modname, m.modname, 0);
  }
  // Both read the stale return value: kmod 28 writes only when there was nothing, kmod 29 only when there was something.
  if (rule === 'kmod28') return modules.length === 0 ? trie.serialize(order) : new Uint8Array(0);
  return modules.length === 0 ? new Uint8Array(0) : trie.serialize(order);
}
