// What depmod prints on stderr besides its output, with the level it prints it at. kmod's depmod
// writes "depmod: LEVEL: text" (tools/log.c, prio_to_str; the name is the one it was invoked by):
// ERROR and WARNING always, INFO only with -vv. depmod-tx keeps the level in the message itself, as
// the text after "depmod: ", so a merge's messages stay plain strings (the module cache stores
// them as they are) and every printer shows the level depmod would. Pure.

export type DepmodLevel = 'ERROR' | 'WARNING' | 'INFO';

/** "ERROR: could not open ...": one line depmod prints, without the program name. */
export type DepmodMessage = `${DepmodLevel}: ${string}`;

export const depmodError = (text: string): DepmodMessage => `ERROR: ${text}`;
export const depmodWarning = (text: string): DepmodMessage => `WARNING: ${text}`;
export const depmodInfo = (text: string): DepmodMessage => `INFO: ${text}`;

const LEVEL = /^(ERROR|WARNING|INFO): /;

/** A stored message carries its level (a cache written before levels existed does not). */
export function hasLevel(m: string): m is DepmodMessage {
  return LEVEL.test(m);
}

/** The level and the text of a message. */
export function splitLevel(m: DepmodMessage): { level: DepmodLevel; text: string } {
  const i = m.indexOf(': ');
  return { level: m.slice(0, i) as DepmodLevel, text: m.slice(i + 2) };
}
