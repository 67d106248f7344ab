// The command line of the calls package managers make on every transaction (`commit`, `record`,
// `update`, `depmod`...), parsed without yargs. Loading and running yargs costs about as much CPU as
// starting Node.js itself (measured: ~100 ms against node -e 0's ~110 ms on this 2-core machine),
// which alone would double a no-op merge. So the same table (spec.ts) is read here with Node's own
// util.parseArgs, strictly; anything it does not fully understand — --help, --version, an unknown
// or misspelt option, a missing argument, a bad choice or number, --no-FLAG — returns undefined and
// main.ts hands the whole command line to yargs, which answers it exactly as before.
import { parseArgs } from 'node:util';
import type { Args, CommandSpec } from './spec.ts';

type ParseOptions = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

/** The command and its arguments as yargs would give them, or undefined: ask yargs. */
export function fastParse(argv: readonly string[], commands: readonly CommandSpec[]): { command: CommandSpec; args: Args } | undefined {
  const command = commands.find((c) => c.name === argv[0]);
  if (command === undefined || command.ownArguments) return undefined;
  const rest = argv.slice(1);
  // --no-FLAG negates FLAG in yargs; an option whose own name is no-FLAG (--no-initramfs) is read here.
  const negation = (a: string): boolean => a.startsWith('--no-') && !command.options.some((o) => `--${o.name}` === a);
  if (rest.some((a) => a === '--help' || a === '-h' || a === '--version' || negation(a))) return undefined;
  const options: ParseOptions = {};
  for (const o of command.options) {
    options[o.name] = {
      type: o.type === 'boolean' ? 'boolean' : 'string',
      ...(o.alias !== undefined && o.alias.length === 1 ? { short: o.alias } : {}),
      ...(o.repeatable ? { multiple: true } : {}),
    };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...rest], options, strict: true, allowPositionals: true });
  } catch {
    return undefined;
  }
  const args: Args = {};
  for (const o of command.options) {
    let v = (parsed.values as Record<string, unknown>)[o.name];
    if (v === undefined) {
      if (o.required) return undefined;
      v = o.default;
    } else if (o.type === 'number') {
      const n = Number(v);
      if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n)) return undefined;
      v = n;
    } else if (Array.isArray(v) && v.length === 1 && !o.repeatable) v = v[0];
    if (o.choices !== undefined && v !== undefined && !o.choices.includes(v as string)) return undefined;
    if (v === undefined) continue;
    args[o.name] = v;
    if (o.alias !== undefined) args[o.alias] = v;
  }
  const positionals = parsed.positionals;
  let at = 0;
  for (const p of command.positionals) {
    if (p.variadic) {
      const vs = positionals.slice(at);
      at = positionals.length;
      if (p.required && vs.length === 0) return undefined;
      if (vs.length > 0) args[p.name] = vs;
    } else {
      const v = positionals[at];
      if (v === undefined) {
        if (p.required) return undefined;
        continue;
      }
      args[p.name] = v;
      at++;
    }
  }
  if (at < positionals.length) return undefined;
  return { command, args };
}
