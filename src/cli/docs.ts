// The documents rendered from the command table (spec.ts) and the exit-code table (exit-codes.ts):
// the man page depmod-tx(1), the bash completion script, and README's option, exit-code and file
// tables. Pure: text in, text out. scripts/docs.ts writes them (npm run build puts the man page and
// the completion in dist/, `--readme` rewrites README's generated blocks); tests compare.
import { EXIT_CODES } from './exit-codes.ts';
import { COMMANDS, GLOBAL_OPTIONS, type CommandSpec, type OptionSpec, type PositionalSpec } from './spec.ts';

/** The files depmod-tx reads and writes (man page FILES, README "Files"). */
export const FILES: ReadonlyArray<{ path: string; what: string }> = [
  { path: '/var/cache/depmod-tx/KVER.cache', what: "the kernel's module facts, the database state and the layout of every modules.* file as a full merge left them (versioned, header checksum, body CRC-32 where the runtime has zlib.crc32, size and generation; any doubt: rebuilt from the tree)" },
  { path: '/var/cache/depmod-tx/KVER.delta', what: 'what the updates changed since KVER.cache was written; folded into a new KVER.cache when it has grown (ignored when it belongs to another KVER.cache)' },
  { path: '/var/cache/depmod-tx/KVER.lock', what: 'per-kernel lock (flock)' },
  { path: '/var/cache/depmod-tx/kmod-version.json', what: 'the installed kmod\'s version, remembered by its depmod binary\'s identity (whose format is written)' },
  { path: '/var/cache/depmod-tx/KVER.cache.building', what: "pid of the process building a new kernel's cache (a `depmod` call's background build, or a commit after it answered); the calls after it wait for it" },
  { path: '/var/lib/depmod-tx/spool/*.spool', what: 'what the package managers\' hooks collected (in shell, no Node.js), ingested into the journal by the next commit; torn or foreign files are moved to `spool/rejected/`' },
  { path: '/var/lib/depmod-tx/journal/*.jsonl', what: 'recorded events, removed once their kernel is merged' },
  { path: '/var/lib/depmod-tx/status.json', what: 'last result per kernel (`depmod-tx status`)' },
  { path: '/var/lib/depmod-tx/deferred/KVER', what: 'a kernel whose `depmod` call was deferred to the end of the dpkg run (`depmod-calls = defer`)' },
  { path: '/var/lib/depmod-tx/weak-updates.json', what: 'the weak-updates links depmod-tx made (a link it did not make is left alone), the KMPs named to `--add-kmp` and the modules named to `--add-modules` outside extra/' },
  { path: '/var/lib/depmod-tx/weak-updates.lock', what: 'lock held while weak-updates links are decided and made (flock)' },
  { path: '/var/log/depmod-tx.log', what: 'the `depmod` calls handed to kmod\'s depmod, and why' },
  {
    path: '/etc/depmod-tx.conf',
    what: '`initrd = regenerate | flag | off`: what to do when a kernel\'s database changed; `depmod-calls = defer | immediate`: whether `depmod` called by a package script inside dpkg leaves the kernel to the commit at the end (the default) or merges at once; `weak-updates = auto | suse | rhel | off`: whether a commit keeps other kernels\' compatible modules linked into weak-updates/, by whose rules (auto: on where a depmod.d `search` line names weak-updates)',
  },
];

/** Environment variables the CLI reads (man page ENVIRONMENT). */
export const ENVIRONMENT: ReadonlyArray<{ name: string; what: string }> = [
  { name: 'DEPMOD_TX_TRACE', what: '`1`: print how long each phase of a merge took, on stderr' },
  { name: 'DEPMOD_TX_DEBUG', what: 'set: print the stack of an internal error (exit 70)' },
  { name: 'DEPMOD_TX_CALLED_AS', what: 'set by the installed wrapper: the name it was called by (`weak-modules2`, `weak-modules` make it that tool)' },
  { name: 'DEPMOD_TX_ROOT', what: '`weak-modules2` (which has no option for it): the root to work on' },
  { name: 'DEPMOD_TX_LOG', what: 'where `depmod` logs the calls it hands to kmod\'s depmod (default /var/log/depmod-tx.log)' },
  { name: 'COLUMNS', what: 'width of --help when the output is not a terminal (default 80)' },
];

/** `-b, --root DIR`: how an option is written in the docs. */
export function optionSynopsis(o: OptionSpec): string {
  const long = `--${o.name}${o.value !== undefined ? ` ${o.value}` : ''}`;
  return o.alias !== undefined ? `-${o.alias}, ${long}` : long;
}

function positionalSynopsis(p: PositionalSpec): string {
  const v = `${p.value}${p.variadic ? '...' : ''}`;
  return p.required ? v : `[${v}]`;
}

/** `update [options] KVER [PATH...]` */
export function commandSynopsis(c: CommandSpec): string {
  return [c.name, ...(c.options.length > 0 ? ['[options]'] : []), ...c.positionals.map(positionalSynopsis)].join(' ');
}

/** The description with its choices or default, as the docs show it. */
function describeFully(o: OptionSpec): string {
  if (o.choices !== undefined) return `${o.describe} (one of: ${o.choices.join(', ')})`;
  if (o.default === undefined || o.default === false) return o.describe;
  return `${o.describe} (default: ${String(o.default)})`;
}

// ---- man page -------------------------------------------------------------------------------

/** Text for roff: backslashes and minus signs escaped, `code` in bold, no line starting with a control character. */
function roff(text: string): string {
  return text
    .replaceAll('\\', '\\e')
    .replaceAll('-', '\\-')
    .replace(/`([^`]+)`/g, '\\fB$1\\fR')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

function manOption(o: OptionSpec): string {
  const names = [...(o.alias !== undefined ? [`\\fB\\-${o.alias}\\fR`] : []), `\\fB${roff(`--${o.name}`)}\\fR`].join(', ');
  return `.TP\n${names}${o.value !== undefined ? ` \\fI${o.value}\\fR` : ''}\n${roff(`${describeFully(o)}.`)}`;
}

const DESCRIPTION = [
  'depmod-tx keeps the kernel module database (modules.dep, modules.alias, modules.symbols and the other modules.* files that kmod\'s depmod writes) current at the end of every package transaction, incrementally: the package-manager hooks record which module files a transaction touched, and one merge per kernel then parses only what changed, from a per-kernel cache of parsed modules, and writes the same bytes `depmod -a` would.',
  'Every merge also checks kernel ABI compatibility: each symbol a module imports is compared with the CRC of its provider (the kernel\'s Module.symvers and the exporting modules), and problems are reported in depmod -e\'s wording. The findings of the database are kept with it, so a merge that changes nothing still reports them. Findings never stop the database from being written; --strict turns them into exit status 3.',
  'A module file that cannot be read or parsed (cut short, empty, not ELF, a broken .xz or .zst) does not stop the merge either: like kmod\'s depmod, depmod-tx prints "failed to load symbols from FILE" and lists the module without what it could not read; such files are reported with the findings, and --strict turns them into exit status 4.',
];

export function renderManPage(version: string): string {
  const out: string[] = [
    '.\\" Generated from src/cli/spec.ts by scripts/docs.ts: edit those, not this file.',
    `.TH DEPMOD\\-TX 1 "" "depmod\\-tx ${roff(version)}" "User Commands"`,
    ".nh\n.ad l",
    '.SH NAME',
    'depmod\\-tx \\- incremental, transaction\\-aware kernel module database (depmod) with KABI checks',
    '.SH SYNOPSIS',
  ];
  for (const c of COMMANDS) out.push(`.B depmod\\-tx\n${roff(commandSynopsis(c))}\n.br`);
  out.push('.B depmod\\-tx\n\\-\\-help | \\-\\-version');
  out.push('.SH DESCRIPTION');
  for (const p of DESCRIPTION) out.push('.PP', roff(p));
  out.push('.SH COMMANDS');
  for (const c of COMMANDS) {
    out.push(`.SS "${roff(`depmod-tx ${commandSynopsis(c)}`)}"`, roff(`${c.summary}.`));
    for (const p of c.positionals) out.push(`.TP\n\\fI${roff(p.value)}\\fR${p.variadic ? '...' : ''}\n${roff(`${p.describe}.`)}`);
    for (const o of c.options) out.push(manOption(o));
  }
  out.push('.SH OPTIONS', 'Every command also takes:');
  for (const o of GLOBAL_OPTIONS) out.push(manOption(o));
  out.push('.SH EXIT STATUS');
  for (const e of EXIT_CODES) out.push(`.TP\n.B ${e.code}\n${roff(e.meaning)}`);
  out.push('.SH FILES', 'Under \\fB\\-\\-root\\fR when one is given.');
  for (const f of FILES) out.push(`.TP\n.I ${roff(f.path)}\n${roff(f.what)}`);
  out.push('.SH ENVIRONMENT');
  for (const e of ENVIRONMENT) out.push(`.TP\n.B ${roff(e.name)}\n${roff(e.what)}`);
  out.push('.SH SEE ALSO', '.BR depmod (8),', '.BR depmod.d (5),', '.BR modprobe (8),', '.BR modinfo (8)');
  return `${out.join('\n')}\n`;
}

// ---- bash completion ------------------------------------------------------------------------

/** What completes a value called `value` (OptionSpec.value / PositionalSpec.value). */
function completer(value: string | undefined, choices?: readonly string[]): string {
  if (choices !== undefined) return `COMPREPLY=($(compgen -W '${choices.join(' ')}' -- "$cur"))`;
  switch (value) {
    case 'DIR':
      return 'COMPREPLY=($(compgen -d -- "$cur"))';
    case 'FILE':
    case 'PATH':
      return 'COMPREPLY=($(compgen -f -- "$cur"))';
    case 'KVER':
      return 'COMPREPLY=($(compgen -W "$(_depmod_tx_kernels)" -- "$cur"))';
    case 'KVER|FILE':
      return 'COMPREPLY=($(compgen -W "$(_depmod_tx_kernels)" -- "$cur") $(compgen -f -- "$cur"))';
    default:
      return 'COMPREPLY=()';
  }
}

export function renderBashCompletion(): string {
  const lines: string[] = [
    '# bash completion for depmod-tx(1). Generated from src/cli/spec.ts by scripts/docs.ts.',
    '',
    '# Kernel versions under the --root (or -b) given on the line, else under /.',
    '_depmod_tx_kernels() {',
    '\tlocal root=/ i',
    '\tfor ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do',
    '\t\tcase ${COMP_WORDS[i]} in --root | -b) root=${COMP_WORDS[i + 1]} ;; esac',
    '\tdone',
    '\tcommand ls "$root/lib/modules" "$root/usr/lib/modules" 2>/dev/null | grep -v "^$\\|:$" | sort -u',
    '}',
    '',
    '_depmod_tx() {',
    '\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}',
    '\tif ((COMP_CWORD == 1)); then',
    `\t\tCOMPREPLY=($(compgen -W '${[...COMMANDS.map((c) => c.name), ...GLOBAL_OPTIONS.flatMap((o) => [`--${o.name}`, ...(o.alias ? [`-${o.alias}`] : [])])].join(' ')}' -- "$cur"))`,
    '\t\treturn',
    '\tfi',
    '\tcase ${COMP_WORDS[1]} in',
  ];
  for (const c of COMMANDS) {
    const all = [...c.options, ...GLOBAL_OPTIONS];
    const flags = all.flatMap((o) => [`--${o.name}`, ...(o.alias !== undefined ? [`-${o.alias}`] : [])]);
    lines.push(`\t${c.name})`);
    const valued = c.options.filter((o) => o.type !== 'boolean');
    if (valued.length > 0) {
      lines.push('\t\tcase $prev in');
      for (const o of valued) lines.push(`\t\t${[`--${o.name}`, ...(o.alias !== undefined ? [`-${o.alias}`] : [])].join(' | ')}) ${completer(o.value, o.choices)}; return ;;`);
      lines.push('\t\tesac');
    }
    lines.push(`\t\tif [[ $cur == -* ]]; then COMPREPLY=($(compgen -W '${flags.join(' ')}' -- "$cur")); return; fi`);
    // Positionals: the first is completed as its kind, later ones as the last (variadic) one's.
    const kinds = [...new Set(c.positionals.map((p) => p.value))];
    if (kinds.length === 1) lines.push(`\t\t${completer(kinds[0])}`);
    else if (kinds.length > 1) {
      // Count the positionals before the cursor: words that are neither options nor their values.
      const valueFlags = valued.flatMap((o) => [`--${o.name}`, ...(o.alias !== undefined ? [`-${o.alias}`] : [])]).join(' | ');
      lines.push(
        '\t\tlocal n=0 i',
        `\t\tfor ((i = 2; i < COMP_CWORD; i++)); do case \${COMP_WORDS[i]} in ${valueFlags ? `${valueFlags}) ((i++)) ;; ` : ''}-*) ;; *) ((n++)) ;; esac; done`,
      );
      lines.push(`\t\tif ((n == 0)); then ${completer(c.positionals[0]!.value)}; else ${completer(c.positionals[c.positionals.length - 1]!.value)}; fi`);
    } else lines.push('\t\tCOMPREPLY=()');
    lines.push('\t\t;;');
  }
  lines.push('\tesac', '}', '', 'complete -o filenames -F _depmod_tx depmod-tx', '');
  return lines.join('\n');
}

// ---- README blocks --------------------------------------------------------------------------

function mdCell(s: string): string {
  return s.replaceAll('|', '\\|');
}

/** README "Options": one row per option, with the commands that take it. */
export function renderOptionsMarkdown(): string {
  const rows = new Map<string, { o: OptionSpec; commands: string[] }>();
  for (const c of COMMANDS) {
    for (const o of c.options) {
      const key = `${optionSynopsis(o)}\0${o.describe}`;
      const row = rows.get(key) ?? { o, commands: [] };
      row.commands.push(c.name);
      rows.set(key, row);
    }
  }
  const out = ['| option | commands | what |', '| --- | --- | --- |'];
  for (const { o, commands } of rows.values()) out.push(`| \`${optionSynopsis(o)}\` | ${commands.join(', ')} | ${mdCell(describeFully(o))} |`);
  for (const o of GLOBAL_OPTIONS) out.push(`| \`${optionSynopsis(o)}\` | all | ${mdCell(o.describe)} |`);
  return out.join('\n');
}

export function renderExitCodesMarkdown(): string {
  return ['| code | meaning |', '| --- | --- |', ...EXIT_CODES.map((e) => `| ${e.code} | ${mdCell(e.meaning)} |`)].join('\n');
}

export function renderFilesMarkdown(): string {
  return ['| path | what |', '| --- | --- |', ...FILES.map((f) => `| \`${f.path}\` | ${mdCell(f.what)} |`)].join('\n');
}

/** The README blocks between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`. */
export const README_BLOCKS: Record<string, () => string> = {
  options: renderOptionsMarkdown,
  'exit-codes': renderExitCodesMarkdown,
  files: renderFilesMarkdown,
};

/** README text with every generated block replaced by its current rendering. */
export function updateReadme(text: string): string {
  let out = text;
  for (const [name, render] of Object.entries(README_BLOCKS)) {
    const re = new RegExp(`(<!-- generated:${name} -->\\n)[\\s\\S]*?(<!-- /generated:${name} -->)`);
    if (!re.test(out)) throw new Error(`README has no <!-- generated:${name} --> block`);
    out = out.replace(re, (_m, open: string, close: string) => `${open}${render()}\n${close}`);
  }
  return out;
}
