// The command line of the calls package managers make on every transaction (`commit`, `record`,
// `update`, `depmod`...), parsed without yargs. Loading and running yargs costs about as much CPU as
// starting Node.js itself (measured: ~100 ms against node -e 0's ~110 ms on this 2-core machine),
// which alone would double a no-op merge. So the same table (spec.ts) is read here by a small strict
// parser (parseStrict; Node's util.parseArgs measured ~7 ms of cold code per call); anything it does
// not fully understand — --help, --version, an unknown or misspelt option, a missing argument, a bad
// choice or number, --no-FLAG — returns undefined and main.ts hands the whole command line to yargs,
// which answers it exactly as before.
import type { Args, CommandSpec } from './spec.ts';

type ParseOptions = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

/**
 * The strict subset of util.parseArgs these calls use, by hand: `--name VALUE`, `--name=VALUE`,
 * `-x VALUE`, `-xVALUE`, boolean `--flag` and `-f`, repeatable options, positionals, `--`. Anything
 * else (an unknown option, a boolean given a value, a missing value, grouped short flags) is
 * undefined. Node's own parseArgs costs several ms of cold code on every call of a package hook.
 */
function parseStrict(args: readonly string[], options: ParseOptions): { values: Record<string, unknown>; positionals: string[] } | undefined {
  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, o] of Object.entries(options)) if (o.short !== undefined) byShort.set(o.short, name);
  const set = (name: string, v: unknown): void => {
    if (options[name]!.multiple === true) ((values[name] ??= []) as unknown[]).push(v);
    else values[name] = v;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let inline: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      if (eq >= 0) inline = a.slice(eq + 1);
    } else if (a.length > 1 && a.startsWith('-')) {
      name = byShort.get(a[1]!);
      if (name === undefined) return undefined;
      if (a.length > 2) inline = a.slice(2);
    } else {
      positionals.push(a);
      continue;
    }
    const o = options[name];
    if (o === undefined) return undefined;
    if (o.type === 'boolean') {
      if (inline !== undefined) return undefined;
      set(name, true);
      continue;
    }
    if (inline !== undefined) set(name, inline);
    else {
      const v = args[i + 1];
      if (v === undefined || (v.startsWith('-') && v !== '-')) return undefined;
      set(name, v);
      i++;
    }
  }
  return { values, positionals };
}

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
  const parsed = parseStrict(rest, options);
  if (parsed === undefined) return undefined;
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
