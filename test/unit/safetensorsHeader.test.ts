import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHeaderBytes, SafetensorsError, type SafetensorsErrorKind } from '../../src/safetensors';

// A file spelled out byte by byte: 8-byte little-endian N, then the header text exactly as given, then the data.
function le64(n: bigint): number[] {
  const out: number[] = [];
  for (let i = 0n; i < 8n; i++) out.push(Number((n >> (8n * i)) & 0xffn));
  return out;
}
const utf8 = (s: string) => [...new TextEncoder().encode(s)];
const file = (header: string, data: number[] = []) =>
  new Uint8Array([...le64(BigInt(utf8(header).length)), ...utf8(header), ...data]);

function rejects(bytes: Uint8Array, kind: SafetensorsErrorKind) {
  assert.throws(
    () => parseHeaderBytes(bytes),
    (err: unknown) => {
      assert.ok(err instanceof SafetensorsError, `expected SafetensorsError, got ${String(err)}`);
      assert.equal(err.name, 'SafetensorsError');
      assert.equal(err.kind, kind, err.message);
      return true;
    },
  );
}

const u8 = (name: string, offsets: string, shape = '[1]') => `"${name}":{"dtype":"U8","shape":${shape},"data_offsets":${offsets}}`;

test('HeaderTooSmall: files shorter than the 8-byte prefix', () => {
  rejects(new Uint8Array([]), 'HeaderTooSmall');
  rejects(new Uint8Array([2, 0, 0, 0, 0, 0, 0]), 'HeaderTooSmall');
});

test('HeaderTooLarge: N above 100,000,000, including u64 max', () => {
  // 100,000,001 = 0x05F5E101
  rejects(new Uint8Array([0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0, 0x7b, 0x7d]), 'HeaderTooLarge');
  rejects(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7b, 0x7d]), 'HeaderTooLarge');
});

test('InvalidHeaderLength: N within the limit but past the end of the file', () => {
  // Exactly 100,000,000 is allowed by the limit, so the file size check is what fails.
  rejects(new Uint8Array([0x00, 0xe1, 0xf5, 0x05, 0, 0, 0, 0, 0x7b, 0x7d]), 'InvalidHeaderLength');
  rejects(new Uint8Array([3, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d]), 'InvalidHeaderLength');
});

test('InvalidHeader: header bytes that are not UTF-8', () => {
  rejects(new Uint8Array([3, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0xff, 0x7d]), 'InvalidHeader');
  // An encoded UTF-16 surrogate (U+D800) is not valid UTF-8 either.
  rejects(new Uint8Array([5, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0xed, 0xa0, 0x80, 0x7d]), 'InvalidHeader');
});

test("InvalidHeaderStart: first header byte is not '{'", () => {
  rejects(file(' {}     '), 'InvalidHeaderStart');
  rejects(new Uint8Array([5, 0, 0, 0, 0, 0, 0, 0, 0xef, 0xbb, 0xbf, 0x7b, 0x7d]), 'InvalidHeaderStart'); // BOM
  rejects(file('[]      '), 'InvalidHeaderStart');
});

test('InvalidHeaderDeserialization: not JSON', () => {
  rejects(file('{"a":}  '), 'InvalidHeaderDeserialization');
  rejects(file('{}x     '), 'InvalidHeaderDeserialization');
  rejects(new Uint8Array([8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 0, 0, 0, 0, 0, 0]), 'InvalidHeaderDeserialization'); // NUL padding
});

test('DuplicateKey: JSON.parse would silently keep the last one', () => {
  // Both entries are individually valid and the last one alone would make a valid file.
  rejects(file(`{${u8('a', '[0,1]')},${u8('a', '[0,1]')}}`, [7]), 'DuplicateKey');
  rejects(file(`{"__metadata__":{"k":"1","k":"2"}}`), 'DuplicateKey');
  rejects(file(`{"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, [7]), 'DuplicateKey');
  // The same key spelled with an escape is still the same key.
  rejects(file(`{${u8('a', '[0,1]')},${u8('\\u0061', '[1,2]')}}`, [7, 8]), 'DuplicateKey');
  // Equal strings in different objects or as values are fine.
  const ok = parseHeaderBytes(file(`{"__metadata__":{"a":"a"},${u8('a', '[0,1]')}}`, [7]));
  assert.deepEqual(ok.metadata, { a: 'a' });
});

test('InvalidMetadata: __metadata__ must map strings to strings', () => {
  rejects(file('{"__metadata__":{"k":1}}'), 'InvalidMetadata');
  rejects(file('{"__metadata__":"pt"}'), 'InvalidMetadata');
  rejects(file('{"__metadata__":{"k":{"x":"y"}}}'), 'InvalidMetadata');
  // null is "no metadata" in the reference (an Option), so it is accepted.
  assert.equal(parseHeaderBytes(file('{"__metadata__":null}')).metadata, null);
});

test('UnknownDtype: dtype string outside the known set', () => {
  rejects(file('{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}', new Array(16).fill(0)), 'UnknownDtype');
  rejects(file('{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0]), 'UnknownDtype');
});

test('TensorInvalidInfo: malformed entries and size mismatches', () => {
  rejects(file('{"a":[]}'), 'TensorInvalidInfo');
  rejects(file('{"a":{"shape":[1],"data_offsets":[0,1]}}', [1]), 'TensorInvalidInfo');
  rejects(file('{"a":{"dtype":"U8","shape":1,"data_offsets":[0,1]}}', [1]), 'TensorInvalidInfo');
  rejects(file(`{${u8('a', '[0,1]', '[-1]')}}`, [1]), 'TensorInvalidInfo');
  rejects(file(`{${u8('a', '[0,1]', '[1.5]')}}`, [1]), 'TensorInvalidInfo');
  rejects(file(`{${u8('a', '[0,1,2]')}}`, [1]), 'TensorInvalidInfo');
  rejects(file(`{${u8('a', '[0,"1"]')}}`, [1]), 'TensorInvalidInfo');
  // U8 [2] needs 2 bytes but the offsets span 1.
  rejects(file(`{${u8('a', '[0,1]', '[2]')}}`, [1]), 'TensorInvalidInfo');
  // I32 [2, 2] needs 16 bytes, offsets span 12.
  rejects(file('{"x":{"dtype":"I32","shape":[2,2],"data_offsets":[0,12]}}', new Array(12).fill(0)), 'TensorInvalidInfo');
});

test('InvalidOffset: holes, overlaps, not starting at 0, end before start', () => {
  rejects(file(`{${u8('a', '[0,1]')},${u8('b', '[2,3]')}}`, [1, 2, 3]), 'InvalidOffset'); // hole
  rejects(file(`{${u8('a', '[0,2]', '[2]')},${u8('b', '[1,3]', '[2]')}}`, [1, 2, 3]), 'InvalidOffset'); // overlap
  rejects(file(`{${u8('a', '[1,2]')}}`, [1, 2]), 'InvalidOffset'); // does not start at 0
  rejects(file(`{${u8('a', '[0,1]')},${u8('b', '[1,0]', '[0]')}}`, [1]), 'InvalidOffset'); // end < start
});

test('ValidationOverflow: element or byte counts beyond exact arithmetic', () => {
  rejects(file(`{${u8('a', '[0,0]', '[1099511627776,1099511627776]')}}`), 'ValidationOverflow'); // 2^80 elements
  rejects(file(`{${u8('a', '[0,0]', '[9007199254740993]')}}`), 'ValidationOverflow'); // dim > 2^53
  rejects(file('{"a":{"dtype":"F64","shape":[2251799813685248],"data_offsets":[0,0]}}'), 'ValidationOverflow'); // 2^51 x 8 bytes
  rejects(file(`{${u8('a', '[0,100000000000000000000]')}}`), 'ValidationOverflow');
});

test('MetadataIncompleteBuffer: data does not end exactly at the end of the file', () => {
  rejects(file(`{${u8('a', '[0,1]')}}`, [1, 2]), 'MetadataIncompleteBuffer'); // trailing byte
  rejects(file(`{${u8('a', '[0,1]')}}`), 'MetadataIncompleteBuffer'); // data missing
  rejects(file('{}      ', [0]), 'MetadataIncompleteBuffer');
});

test('valid: empty file, scalar, empty tensor, out-of-order header entries', () => {
  const empty = parseHeaderBytes(file('{}      '));
  assert.equal(empty.tensors.size, 0);
  assert.equal(empty.dataStart, 16);

  const h = parseHeaderBytes(
    file(
      '{"b":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"z":{"dtype":"BF16","shape":[3,0],"data_offsets":[4,4]},' +
        '"a":{"dtype":"I16","shape":[2],"data_offsets":[4,8]}}',
      [0, 0, 128, 63, 1, 0, 2, 0],
    ),
  );
  // Buffer order: b [0,4), z [4,4), a [4,8).
  assert.deepEqual([...h.tensors.keys()], ['b', 'z', 'a']);
  assert.deepEqual(h.tensors.get('b'), { dtype: 'F32', shape: [], dataOffsets: [0, 4] });
  assert.deepEqual(h.tensors.get('z')!.shape, [3, 0]);
  assert.equal(h.metadata, null);
  assert.equal(h.fileSize, h.dataStart + 8);
});

test("the reference implementation's own serialization test vector parses", () => {
  // From huggingface/safetensors tensor.rs test_serialization: attn.0, F32 [1, 2, 3], values 0..5.
  const bytes = new Uint8Array([
    64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34,
    70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95,
    111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0,
    64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
  ]);
  const h = parseHeaderBytes(bytes);
  assert.deepEqual(h.tensors.get('attn.0'), { dtype: 'F32', shape: [1, 2, 3], dataOffsets: [0, 24] });
  assert.equal(h.headerLength, 64);
});
