// rpm file triggers (`%filetriggerin`, `%filetriggerun`) hand the triggering package's matching
// paths on stdin, one per line (rpm-scriptlets(7)); `depmod-tx replay` accepts the same plain
// lists. Paths may contain spaces, so a line is a path as is: only the line ending is removed.
// `%transfiletriggerin` also sends a list, but of every matching installed file, old transactions
// included (rpm issue 386): the hooks treat it as a commit point, never feed it to this parser.

/** Paths of a newline-separated list, in order, empty lines skipped. Pure. */
export function parsePathList(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const p = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (p !== '') out.push(p);
  }
  return out;
}
