import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeRecord, formatCrc, recordJson } from '../../src/module/describe.ts';
import { UNRESOLVED_CRC } from '../../src/module/parse.ts';
import type { ModuleRecord } from '../../src/module/record.ts';

const rec: ModuleRecord = {
  name: 'libcrc32c',
  modinfo: [
    ['softdep', 'pre: crc32c'],
    ['depends', ''],
  ],
  exports: [{ name: 'crc32c', crc: 0xb15b4109 }],
  imports: [
    { name: 'crypto_alloc_shash', crc: 0xd4bb4b3 },
    { name: 'maybe', crc: 0, weak: true },
  ].map((i) => ({ weak: false, ...i })),
};

test('describeRecord: every field, CRCs as 0x%08x, weak flag', () => {
  assert.equal(
    describeRecord('kernel/lib/libcrc32c.ko', rec),
    [
      'kernel/lib/libcrc32c.ko',
      '  name: libcrc32c',
      '  modinfo (2):',
      '    softdep=pre: crc32c',
      '    depends=',
      '  exports (1):',
      '    crc32c 0xb15b4109',
      '  imports (2):',
      '    crypto_alloc_shash 0x0d4bb4b3',
      '    maybe 0x00000000 weak',
      '',
    ].join('\n'),
  );
});

test('formatCrc: kmod\'s unresolved (uint64_t)-1 and 64-bit values', () => {
  assert.equal(formatCrc(UNRESOLVED_CRC), '0xffffffffffffffff');
  assert.equal(formatCrc(0x1_0000_0001), '0x100000001');
});

test('recordJson is the record plus its file', () => {
  assert.deepEqual(JSON.parse(JSON.stringify(recordJson('f.ko', rec))), { file: 'f.ko', ...rec });
});
