// depmod's command line, read the way kmod's depmod reads it: glibc getopt_long over the option
// table of the kmod release being emulated (tools/depmod.c, cmdopts_s and cmdopts[]; kmod 28-30,
// 31-33 added -o/--outdir, 34 added -m/--moduledir and dropped -u -q -r -m's deprecated meanings).
// This is not yargs: depmod's syntax is getopt's (short clusters such as -aeE FILE, a value glued
// to its letter as in -b/root, --long=value or --long value, unambiguous prefixes of long names,
// operands anywhere unless POSIXLY_CORRECT is set, `--` ending the options), and kernel packages,
// DKMS, initramfs-tools, dracut and weak-modules call it in all of those spellings. A yargs parser
// would accept other things and refuse some of these, and it costs a tenth of a second to load.
// Pure: arguments in, the options in the order getopt returns them and the operands out.

export interface DepmodOptionSpec {
  /** The short letter getopt returns (also for the long name). */
  letter: string;
  long: string;
  takesValue: boolean;
}

/** One option as getopt_long returned it. `long` is set when it was spelled as a long option. */
export interface GivenOption {
  letter: string;
  long?: string;
  value?: string;
}

export interface GetoptResult {
  /** Options in the order depmod's loop sees them, up to the first that getopt rejects. */
  options: GivenOption[];
  /** Set when getopt rejected an argument (depmod then prints getopt's message and exits 1). */
  error?: string;
  /** The non-option arguments, in order (getopt moves them after the options). */
  operands: string[];
}

const opt = (letter: string, long: string, takesValue = false): DepmodOptionSpec => ({ letter, long, takesValue });

const COMMON_HEAD = [opt('a', 'all'), opt('A', 'quick'), opt('b', 'basedir', true)];
const COMMON_TAIL = [opt('C', 'config', true), opt('E', 'symvers', true), opt('F', 'filesyms', true), opt('e', 'errsyms')];
const DEPRECATED = [opt('u', 'unresolved-error'), opt('q', 'quiet'), opt('r', 'root')];
const SHOW = [opt('v', 'verbose'), opt('n', 'show'), opt('n', 'dry-run'), opt('P', 'symbol-prefix', true), opt('w', 'warn')];
const END = [opt('V', 'version'), opt('h', 'help')];

/**
 * depmod's option table in kmod `major`'s order (the order decides which long name a prefix
 * matches first and so what getopt reports).
 */
export function depmodOptionTable(major: number): DepmodOptionSpec[] {
  if (major >= 34) return [...COMMON_HEAD, opt('m', 'moduledir', true), opt('o', 'outdir', true), ...COMMON_TAIL, ...SHOW, ...END];
  const outdir = major >= 31 ? [opt('o', 'outdir', true)] : [];
  return [...COMMON_HEAD, ...outdir, ...COMMON_TAIL, ...DEPRECATED, ...SHOW, opt('m', 'map'), ...END];
}

/** The long option `name` (a full name or an unambiguous prefix) names, or why not. */
function matchLong(table: readonly DepmodOptionSpec[], name: string): DepmodOptionSpec | string {
  const exact = table.find((o) => o.long === name);
  if (exact !== undefined) return exact;
  const candidates = table.filter((o) => o.long.startsWith(name));
  if (candidates.length === 0) return `unrecognized option '--${name}'`;
  // glibc: several prefixes are ambiguous unless they all mean the same option.
  const first = candidates[0]!;
  if (candidates.some((c) => c.letter !== first.letter || c.takesValue !== first.takesValue)) return `option '--${name}' is ambiguous`;
  return first;
}

/** getopt_long(argc, argv, cmdopts_s, cmdopts) over `args` (argv without the program name). */
export function getoptDepmod(args: readonly string[], table: readonly DepmodOptionSpec[], posixlyCorrect = false): GetoptResult {
  const options: GivenOption[] = [];
  const operands: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const o = matchLong(table, name);
      if (typeof o === 'string') return { options, error: o, operands };
      if (!o.takesValue) {
        if (eq >= 0) return { options, error: `option '--${o.long}' doesn't allow an argument`, operands };
        options.push({ letter: o.letter, long: o.long });
        continue;
      }
      let value: string | undefined = eq >= 0 ? a.slice(eq + 1) : undefined;
      if (value === undefined) {
        if (i + 1 >= args.length) return { options, error: `option '--${o.long}' requires an argument`, operands };
        value = args[++i]!;
      }
      options.push({ letter: o.letter, long: o.long, value });
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const c = a[j]!;
        const o = table.find((x) => x.letter === c);
        if (o === undefined) return { options, error: `invalid option -- '${c}'`, operands };
        if (!o.takesValue) {
          options.push({ letter: c });
          continue;
        }
        let value = a.slice(j + 1);
        if (value === '') {
          if (i + 1 >= args.length) return { options, error: `option requires an argument -- '${c}'`, operands };
          value = args[++i]!;
        }
        options.push({ letter: c, value });
        break;
      }
      continue;
    }
    if (posixlyCorrect) {
      operands.push(...args.slice(i));
      break;
    }
    operands.push(a);
  }
  return { options, operands };
}

/**
 * depmod's version check of its first operand (is_version_number: sscanf "%u.%u" reads two
 * numbers): "6.1.0-13-amd64" passes, "foo.ko" does not. %u skips leading white space and takes an
 * optional sign, as sscanf does.
 */
export function isKmodVersionNumber(s: string): boolean {
  return /^\s*[+-]?\d+\.\s*[+-]?\d+/.test(s);
}
