// The full command line through yargs: --help (words wrapped whole), --version, usage errors, and
// whatever fast-args.ts leaves to it. Built from the same table (spec.ts) as everything else.
//
// yargs is loaded through 'yargs/yargs', whose factory is built on yargs' CommonJS platform shim:
// the ESM entry ('yargs') hands cliui a wrap() that cuts lines every N characters, mid-word
// ("for p|ackage"; yargs issue 2112). The CommonJS build wraps with wrap-ansi at word boundaries.
// yargs 18 fixes it but needs Node >= 20.19, and Debian 12's nodejs is 18.
import type { Argv } from 'yargs';
import yargsFactory from 'yargs/yargs';
import pkg from '../../package.json' with { type: 'json' };
import { EXIT, exitCodeHelp } from './exit-codes.ts';
import { io } from './io.ts';
import { run } from './main.ts';
import { COMMANDS, GLOBAL_OPTIONS, yargsCommand, type Args, type OptionSpec } from './spec.ts';

function option(name: string): OptionSpec {
  return GLOBAL_OPTIONS.find((o) => o.name === name)!;
}

function addOption<T>(y: Argv<T>, o: OptionSpec): Argv<T> {
  return y.option(o.name, {
    type: o.type,
    describe: o.describe,
    ...(o.alias !== undefined ? { alias: o.alias } : {}),
    ...(o.default !== undefined ? { default: o.default } : {}),
    ...(o.choices !== undefined ? { choices: o.choices } : {}),
    ...(o.required ? { demandOption: true } : {}),
  });
}

/** An option named no-FLAG given as --no-FLAG: yargs set FLAG to false; the command reads no-FLAG. */
function negatedOptions(c: (typeof COMMANDS)[number], a: Args): Args {
  const out: Args = { ...a };
  for (const o of c.options) if (o.type === 'boolean' && o.name.startsWith('no-') && out[o.name.slice(3)] === false) out[o.name] = true;
  return out;
}

/** The terminal's width; $COLUMNS when output is not a terminal (like GNU tools); else 80. */
function helpWidth(): number {
  if (process.stdout.isTTY && process.stdout.columns > 0) return process.stdout.columns;
  const env = Number(process.env.COLUMNS);
  return Number.isInteger(env) && env >= 40 ? env : 80;
}

export async function yargsMain(argv: string[]): Promise<void> {
  // yargs writes --help through process.stdout: `depmod-tx --help | head` is not a crash.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  const width = helpWidth();
  let y = yargsFactory(argv)
    .scriptName('depmod-tx')
    .usage('$0 <command> [options]\n\nIncremental kernel module database (depmod) for package transactions.')
    .epilogue(exitCodeHelp(width))
    .wrap(width)
    .strict()
    .help('help', option('help').describe)
    .alias('help', 'h')
    .version('version', option('version').describe, pkg.version)
    .fail((msg, err) => {
      if (err) throw err;
      io.stderr(`depmod-tx: ${msg}\nTry 'depmod-tx --help'.\n`);
      process.exit(EXIT.usage);
    });
  for (const c of COMMANDS) {
    y = y.command(
      yargsCommand(c),
      c.summary,
      (cy) => {
        for (const p of c.positionals) cy = cy.positional(p.name, { type: 'string', describe: p.describe, ...(p.variadic ? { array: true } : {}), ...(p.required ? { demandOption: true } : {}) });
        for (const o of c.options) {
          cy = addOption(cy, o);
          // yargs reads --no-initramfs as "initramfs: false": accept that name too (hidden), and map it back below.
          if (o.type === 'boolean' && o.name.startsWith('no-')) cy = cy.option(o.name.slice(3), { type: 'boolean', hidden: true });
        }
        return cy;
      },
      (a) => run(c, negatedOptions(c, a as Args)),
    );
  }
  await y.demandCommand(1, 'name a command').parseAsync();
}
