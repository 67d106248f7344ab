// Whether weak-updates is on and by whose rules: the `weak-updates` setting, or (auto) the place of
// weak-updates in the root's depmod.d search line; and where its record is. Its own small module:
// every commit asks, and the decision itself (weak-updates.ts) is loaded only where the answer is yes.
import { join } from 'node:path';
import { parseDepmodConfig, type DepmodConfig } from '../depmod/config.ts';
import type { KmodBehaviour } from '../depmod/kmod-version.ts';
import type { WeakRules } from '../depmod/weak-updates.ts';
import { configDirs, readKernelInputs } from '../merge/inputs.ts';
import { stateDirs } from '../cache/store.ts';
import { readSettings } from './settings.ts';

/** The record of depmod-tx's weak-updates links (src/txn/weak-updates.ts has its format). */
export function weakStateFile(root: string): string {
  return join(stateDirs(root).lib, 'weak-updates.json');
}

/**
 * Which family's rules a depmod.d search order implies: weak-updates ahead of built-in (the kernel's
 * own modules) is SUSE's order, behind it RHEL's; no weak-updates entry: none.
 */
function rulesFromSearch(config: DepmodConfig): WeakRules | undefined {
  // kmod's list is newest first and a later index is a higher priority (search.ts existingModuleWins).
  let weak = -1;
  let builtin = -1;
  config.searches.forEach((s, i) => {
    if (s.kind === 'path' && s.path === 'weak-updates') weak = i;
    else if (s.kind === 'built-in') builtin = i;
  });
  if (weak < 0) return undefined;
  return weak > builtin ? 'suse' : 'rhel';
}

/** The rules in force: the setting, or (auto) what the root's depmod.d search lines show. */
export function configuredWeakRules(root: string, behaviour: KmodBehaviour, warn: (m: string) => void = () => {}): { rules: WeakRules | undefined; why: string } {
  const setting = readSettings(root, warn).weakUpdates;
  if (setting === 'off') return { rules: undefined, why: 'weak-updates = off' };
  if (setting !== 'auto') return { rules: setting, why: `weak-updates = ${setting}` };
  return searchLineRules(root, behaviour);
}

/** The family the root's depmod.d search line implies (rulesFromSearch), whatever the setting. */
export function searchLineRules(root: string, behaviour: KmodBehaviour): { rules: WeakRules | undefined; why: string } {
  const files = readKernelInputs({ root, kver: '', moddir: join(root, 'lib', 'modules') }, configDirs(root, undefined, behaviour)).configFiles;
  const rules = rulesFromSearch(parseDepmodConfig(files, '').config);
  return rules === undefined ? { rules, why: 'no depmod.d search line names weak-updates' } : { rules, why: `depmod.d: weak-updates ${rules === 'suse' ? 'before' : 'after'} built-in` };
}

