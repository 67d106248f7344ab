import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizeAlias } from '../../src/depmod/alias.ts';

// Expectations from kmod v30 shared/util.c alias_normalize, case by case; the real-kernel
// tests in test/index/real-kernels.test.ts check it against Debian's modules.alias.bin.
describe('normalizeAlias (kmod alias_normalize)', () => {
  it('turns dashes into underscores outside brackets', () => {
    assert.equal(normalizeAlias('of:N*T*Cfsl,mpc8349-i2c'), 'of:N*T*Cfsl,mpc8349_i2c');
    assert.equal(normalizeAlias('pci:v00008086d*sv*sd*bc*sc*i*'), 'pci:v00008086d*sv*sd*bc*sc*i*');
    assert.equal(normalizeAlias(''), '');
  });
  it('copies bracket expressions verbatim, dashes included', () => {
    assert.equal(normalizeAlias('acpi*:PNP0[a-f]0-1:*'), 'acpi*:PNP0[a-f]0_1:*');
    assert.equal(normalizeAlias('x[[-]]-y'), null, 'the first ] closes, the second is unmatched');
    assert.equal(normalizeAlias('x[[-]-y'), 'x[[-]_y');
  });
  it('skips aliases with an unmatched bracket', () => {
    assert.equal(normalizeAlias('a]b'), null);
    assert.equal(normalizeAlias('a[b-c'), null);
    assert.equal(normalizeAlias(']'), null);
  });
  it('stops at NUL like a C string', () => {
    assert.equal(normalizeAlias('a-b\0c-d'), 'a_b');
  });
  it('truncates to PATH_MAX - 1 characters, keeping a bracket that starts before the limit', () => {
    assert.equal(normalizeAlias('-'.repeat(5000)), '_'.repeat(4095));
    const head = 'a'.repeat(4094);
    assert.equal(normalizeAlias(`${head}[x-y]zz`), `${head}[x-y]`);
    assert.equal(normalizeAlias(`${head}b[`), `${head}b`);
  });
});
