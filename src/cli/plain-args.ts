// The hooks' own calls (`depmod-tx apt-hook --root /`, `commit --root / --source dpkg --scan`,
// `record --root / --op add -`) read without yargs: loading yargs costs about a tenth of a second,
// paid by every package transaction, twice. Only the plainest spelling is read here, from the same
// command table (spec.ts): long options as `--name value`, `--name=value` or `--flag`, operands,
// defaults applied, choices checked. Anything else (short or unknown options, --no-flag, --help, a
// missing operand) is left to yargs, which reads it, or refuses it with its usual message. Pure.
import type { Args, CommandSpec } from './spec.ts';

/** The arguments yargs would give `c.run` for `argv`, or undefined when yargs must read them. */
export function plainArgs(c: CommandSpec, argv: readonly string[]): Args | undefined {
  if (c.ownArguments) return undefined;
  const a: Args = {};
  for (const o of c.options) if (o.default !== undefined) a[o.name] = o.default;
  const operands: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const t = argv[i]!;
    if (!t.startsWith('--')) {
      if (t.startsWith('-') && t !== '-') return undefined;
      operands.push(t);
      continue;
    }
    const eq = t.indexOf('=');
    const name = eq < 0 ? t.slice(2) : t.slice(2, eq);
    const o = c.options.find((x) => x.name === name);
    if (o === undefined) return undefined;
    if (o.type === 'boolean') {
      if (eq >= 0) return undefined;
      a[o.name] = true;
      continue;
    }
    const value = eq >= 0 ? t.slice(eq + 1) : argv[++i];
    if (value === undefined || (eq < 0 && value.startsWith('-') && value !== '-')) return undefined;
    if (o.choices !== undefined && !o.choices.includes(value)) return undefined;
    const v = o.type === 'number' ? Number(value) : value;
    // yargs gives a repeated option as an array.
    a[o.name] = a[o.name] !== undefined && o.repeatable ? ([] as unknown[]).concat(a[o.name], v) : v;
  }
  for (const o of c.options) if (o.required && a[o.name] === undefined) return undefined;
  for (const p of c.positionals) {
    if (p.variadic) {
      if (p.required && operands.length === 0) return undefined;
      if (operands.length > 0) a[p.name] = operands.splice(0);
    } else {
      const v = operands.shift();
      if (v === undefined) {
        if (p.required) return undefined;
      } else a[p.name] = v;
    }
  }
  return operands.length === 0 ? a : undefined;
}
