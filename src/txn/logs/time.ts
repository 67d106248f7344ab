// Timestamps in package-manager logs and `replay --since`. dpkg, apt, zypper and dnf write the
// machine's local time without a zone; pacman 6 writes ISO 8601 with a numeric offset (pacman 5
// and older: "[YYYY-MM-DD HH:MM]", local). A log is replayed on the machine that wrote it, so a
// zone-less time is read as this process's local time.
import { UsageError } from '../../errors.ts';

/** A local wall-clock time; undefined when a field is out of range (2026-02-30 is not a date). */
export function localTime(y: number, mo: number, d: number, h = 0, mi = 0, s = 0): Date | undefined {
  const t = new Date(y, mo - 1, d, h, mi, s);
  const same = t.getFullYear() === y && t.getMonth() === mo - 1 && t.getDate() === d && t.getHours() === h && t.getMinutes() === mi && t.getSeconds() === s;
  return same ? t : undefined;
}

const ISO_RE = /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d))?)?\s*(Z|[+-]\d\d:?\d\d)?$/;

/**
 * "YYYY-MM-DD[ HH:MM[:SS]]" (local) or with a "T" and a zone ("Z", "+0100", "+01:00"), as the logs
 * print them. Undefined when the text is not such a time.
 */
export function parseLogTime(text: string): Date | undefined {
  const m = ISO_RE.exec(text.trim());
  if (m === null) return undefined;
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4] ?? '0', m[5] ?? '0', m[6] ?? '0'].map(Number) as [number, number, number, number, number, number];
  const local = localTime(y, mo, d, h, mi, s);
  if (local === undefined || m[7] === undefined) return local;
  if (m[7] === 'Z') return new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  const sign = m[7].startsWith('-') ? -1 : 1;
  const off = m[7].slice(1).replace(':', '');
  const minutes = sign * (Number(off.slice(0, 2)) * 60 + Number(off.slice(2)));
  return new Date(Date.UTC(y, mo - 1, d, h, mi, s) - minutes * 60_000);
}

/** `replay --since TIME`; a usage error names what is accepted. */
export function parseSince(text: string): Date {
  const t = parseLogTime(text);
  if (t === undefined) throw new UsageError(`--since ${JSON.stringify(text)}: expected YYYY-MM-DD, "YYYY-MM-DD HH:MM[:SS]" (local time) or YYYY-MM-DDTHH:MM:SS with Z or an offset`);
  return t;
}
