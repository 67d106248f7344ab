import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runInspect } from '../../src/cli/inspect.ts';
import { buildModuleElf } from '../support/fixture-elf.ts';

const good = buildModuleElf({ modinfo: [['alias', 'pci:v*']], exports: [{ name: 'f', crc: 0xabc }], imports: [{ name: 'g', crc: 1, weak: true }] });
const files: Record<string, Uint8Array> = {
  'a/good-one.ko': good,
  'b/bad.ko': new TextEncoder().encode('not an elf file at all'),
};

function harness() {
  const out: string[] = [];
  const err: string[] = [];
  const io = {
    stdout: (s: string) => void out.push(s),
    stderr: (s: string) => void err.push(s),
    readFile: async (p: string) => {
      const b = files[p];
      if (b === undefined) throw Object.assign(new Error(`ENOENT: no such file, open '${p}'`), { code: 'ENOENT' });
      return b;
    },
  };
  return { io, out, err };
}

test('text output, exit 0', async () => {
  const h = harness();
  assert.equal(await runInspect(['a/good-one.ko'], { json: false }, h.io), 0);
  const text = h.out.join('');
  assert.match(text, /^a\/good-one\.ko\n  name: good_one\n/);
  assert.match(text, /\n    alias=pci:v\*\n/);
  assert.match(text, /\n    f 0x00000abc\n/);
  assert.match(text, /\n    g 0x00000001 weak\n/);
  assert.deepEqual(h.err, []);
});

test('malformed file: exit 65, one stderr line naming it, other files still printed', async () => {
  const h = harness();
  assert.equal(await runInspect(['b/bad.ko', 'a/good-one.ko'], { json: true }, h.io), 65);
  assert.equal(h.err.length, 1);
  assert.match(h.err[0] ?? '', /^depmod-tx: b\/bad\.ko: kmod's depmod cannot load it \("Exec format error"\): not an ELF image.*\n$/);
  assert.equal((h.err[0] ?? '').trimEnd().split('\n').length, 1);
  const json = JSON.parse(h.out.join('')) as Array<{ file: string; name: string; exports: unknown }>;
  assert.deepEqual(
    json.map((r) => [r.file, r.name, r.exports]),
    [['a/good-one.ko', 'good_one', [{ name: 'f', crc: 0xabc }]]],
  );
});

test('unreadable file: exit 66 (even when another file is malformed)', async () => {
  const h = harness();
  assert.equal(await runInspect(['missing.ko', 'b/bad.ko', 'a/good-one.ko'], { json: false }, h.io), 66);
  assert.equal(h.err.length, 2);
  assert.match(h.err[0] ?? '', /^depmod-tx: missing\.ko: cannot read: ENOENT\n$/);
  assert.match(h.out.join(''), /name: good_one/);
});
