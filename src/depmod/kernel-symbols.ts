// The kernel's own symbols for depmod's symbol table, from Module.symvers (-E) or System.map (-F):
// tools/depmod.c v30 depmod_load_symvers, depmod_load_system_map, depmod_add_fake_syms.
//   Module.symvers: "0xCRC<ws>SYMBOL<ws>vmlinux|MODULE<ws>EXPORT_SYMBOL[_GPL]<ws>[NAMESPACE]" per line;
//     fields split on spaces and tabs; only "vmlinux" lines count; CRC parsed as hex (strtoull
//     base 16: optional 0x) and must be followed by nothing.
//   System.map: "ADDR TYPE NAME" per line; only names starting with __ksymtab_ count, CRC 0.
// Pure: text in, symbols (in file order) out. A later line for the same name replaces an earlier one
// (kmod's hash_add replaces), which a Map insertion reproduces.

export interface KernelSymbols {
  /** 'symvers' enables the CRC comparison (cfg.check_symvers); 'system-map' only resolves names. */
  source: 'symvers' | 'system-map';
  /** Name → CRC. Names are as kmod stores them (symbol prefix already removed). */
  symbols: Map<string, number>;
  warnings: string[];
}

/** strtoull(s, &end, 16) with "end must be the string's end": optional sign, optional 0x, hex digits. */
function parseHexStrict(s: string): number | undefined {
  const m = /^[ \t\n\v\f\r]*([+-]?)(0[xX])?([0-9a-fA-F]*)$/.exec(s);
  if (!m) return undefined;
  const digits = m[3]!;
  if (digits === '') return m[2] !== undefined || m[1] !== '' ? undefined : 0;
  let v = BigInt(`0x${digits}`);
  if (v > 0xffffffffffffffffn) v = 0xffffffffffffffffn;
  if (m[1] === '-') v = (1n << 64n) - v;
  return Number(v & 0xffffffffffffffffn);
}

function stripPrefix(name: string, symPrefix: string): string {
  return symPrefix !== '' && name.startsWith(symPrefix) ? name.slice(1) : name;
}

/**
 * depmod_add_fake_syms: symbols the loader or the architecture provides. "TOC." is added only when
 * absent, the other two replace any earlier entry.
 */
export function addFakeKernelSymbols(symbols: Map<string, number>): void {
  symbols.set('__this_module', 0);
  symbols.set('_GLOBAL_OFFSET_TABLE_', 0);
  if (!symbols.has('TOC.')) symbols.set('TOC.', 0);
}

export function parseSymvers(text: string, file: string, symPrefix = ''): KernelSymbols {
  const symbols = new Map<string, number>();
  const warnings: string[] = [];
  let lineNo = 0;
  for (const line of text.split('\n')) {
    lineNo++;
    if (line === '' && lineNo > 1 && text.endsWith('\n')) continue;
    const f = line.split(/[ \t]+/).filter((w) => w !== '');
    const [ver, sym, where] = f;
    if (ver === undefined || sym === undefined || where === undefined) continue;
    if (where !== 'vmlinux') continue;
    const crc = parseHexStrict(ver);
    if (crc === undefined) {
      warnings.push(`${file}:${lineNo} Invalid symbol version ${ver}`);
      continue;
    }
    symbols.set(stripPrefix(sym, symPrefix), crc);
  }
  addFakeKernelSymbols(symbols);
  return { source: 'symvers', symbols, warnings };
}

export function parseSystemMap(text: string, file: string, symPrefix = ''): KernelSymbols {
  const symbols = new Map<string, number>();
  const warnings: string[] = [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((line, i) => {
    const a = line.indexOf(' ');
    const b = a < 0 ? -1 : line.indexOf(' ', a + 1);
    if (b < 0) {
      warnings.push(`${file}:${i + 1}: invalid line: ${line}`);
      return;
    }
    const name = stripPrefix(line.slice(b + 1), symPrefix);
    if (name.startsWith('__ksymtab_')) symbols.set(name.slice('__ksymtab_'.length), 0);
  });
  addFakeKernelSymbols(symbols);
  return { source: 'system-map', symbols, warnings };
}
