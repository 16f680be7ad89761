import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  DTYPES, dtypeRank, dtypeSize, parseHeaderBytes, readHeader, SafetensorsError, SafetensorsFile, serializeSafetensors,
  writeSafetensors, type Dtype, type TensorBytes,
} from '../../src/safetensors';
import { Rng } from '../../src/util/rng';

async function tmpDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'mora-st-'));
}
const isKind = (kind: string) => (e: unknown) => e instanceof SafetensorsError && e.kind === kind;

test('golden bytes: 2x2 I32 tensor "x" = [[1, 2], [3, 4]]', async () => {
  const expected = new Uint8Array([
    // N = 88, little-endian u64
    88, 0, 0, 0, 0, 0, 0, 0,
    // {"__metadata__":{"format":"pt"},"x":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}  (88 bytes, no padding)
    123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123, 34, 102, 111, 114, 109, 97, 116, 34, 58,
    34, 112, 116, 34, 125, 44, 34, 120, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 73, 51, 50, 34, 44, 34,
    115, 104, 97, 112, 101, 34, 58, 91, 50, 44, 50, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115,
    34, 58, 91, 48, 44, 49, 54, 93, 125, 125,
    // 1, 2, 3, 4 as little-endian i32
    1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0,
  ]);
  const data = new Uint8Array([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0]);
  assert.deepEqual(serializeSafetensors([{ name: 'x', dtype: 'I32', shape: [2, 2], data }]), expected);

  const dir = await tmpDir();
  const file = path.join(dir, 'x.safetensors');
  await writeSafetensors(file, [{ name: 'x', dtype: 'I32', shape: [2, 2], data: async () => data }]);
  assert.deepEqual(new Uint8Array(await fs.readFile(file)), expected);
  assert.deepEqual(await fs.readdir(dir), ['x.safetensors']); // no temp file left behind
  await fs.rm(dir, { recursive: true });
});

test('golden bytes: header padded with spaces to a multiple of 8, metadata merged after format', () => {
  const header = '{"__metadata__":{"format":"pt"},"ab":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}'; // 85 bytes
  const expected = new Uint8Array([88, 0, 0, 0, 0, 0, 0, 0, ...new TextEncoder().encode(header), 32, 32, 32, 7, 8, 9]);
  assert.deepEqual(serializeSafetensors([{ name: 'ab', dtype: 'U8', shape: [3], data: new Uint8Array([7, 8, 9]) }]), expected);

  const withMeta = serializeSafetensors([], { step: '10', format: 'ignored' });
  const text = new TextDecoder().decode(withMeta.subarray(8));
  assert.equal(text, '{"__metadata__":{"format":"pt","step":"10"}}    ');
  assert.equal(withMeta[0], 48);
});

test('tensors are laid out by dtype alignment descending, then name', () => {
  const t = (name: string, dtype: Dtype): TensorBytes => ({ name, dtype, shape: [1], data: new Uint8Array(dtypeSize(dtype)) });
  const bytes = serializeSafetensors([t('b', 'U8'), t('a', 'U8'), t('c', 'F32'), t('d', 'F16'), t('e', 'I64'), t('a2', 'F32')]);
  const h = parseHeaderBytes(bytes);
  // Same order as the reference writer: I64, F32 (a2, c), F16, U8 (a, b).
  assert.deepEqual([...h.tensors.keys()], ['e', 'a2', 'c', 'd', 'a', 'b']);
  assert.deepEqual([...h.tensors.values()].map((i) => i.dataOffsets), [[0, 8], [8, 12], [12, 16], [16, 18], [18, 19], [19, 20]]);
});

test('writer rejects bad requests with named errors and leaves no file', async () => {
  const dir = await tmpDir();
  const file = path.join(dir, 'w.safetensors');
  const u8 = new Uint8Array(3);
  await assert.rejects(writeSafetensors(file, [{ name: 'a', dtype: 'F32', shape: [2], data: u8 }]), isKind('InvalidTensorData'));
  // A lazy provider returning the wrong length fails mid-stream; the temp file is removed and nothing is renamed.
  await assert.rejects(
    writeSafetensors(file, [
      { name: 'a', dtype: 'U8', shape: [3], data: u8 },
      { name: 'b', dtype: 'U8', shape: [4], data: async () => u8 },
    ]),
    isKind('InvalidTensorData'),
  );
  await assert.rejects(
    writeSafetensors(file, [{ name: 'a', dtype: 'U8', shape: [3], data: u8 }, { name: 'a', dtype: 'U8', shape: [3], data: u8 }]),
    isKind('InvalidTensorName'),
  );
  await assert.rejects(writeSafetensors(file, [{ name: '__metadata__', dtype: 'U8', shape: [3], data: u8 }]), isKind('InvalidTensorName'));
  await assert.rejects(writeSafetensors(file, [{ name: 'a', dtype: 'X' as Dtype, shape: [3], data: u8 }]), isKind('UnknownDtype'));
  await assert.rejects(writeSafetensors(file, [{ name: 'a', dtype: 'U8', shape: [-3], data: u8 }]), isKind('TensorInvalidInfo'));
  assert.throws(() => serializeSafetensors([{ name: 'a', dtype: 'I16', shape: [2], data: u8 }]), isKind('InvalidTensorData'));
  assert.deepEqual(await fs.readdir(dir), []);
  // An existing file is replaced only by a complete new one.
  await writeSafetensors(file, [{ name: 'old', dtype: 'U8', shape: [3], data: u8 }]);
  await assert.rejects(writeSafetensors(file, [{ name: 'new', dtype: 'U8', shape: [4], data: async () => u8 }]));
  assert.deepEqual([...(await readHeader(file)).tensors.keys()], ['old']);
  assert.deepEqual(await fs.readdir(dir), ['w.safetensors']);
  await fs.rm(dir, { recursive: true });
});

test('providers are called lazily, one at a time, in file order', async () => {
  const dir = await tmpDir();
  const file = path.join(dir, 'lazy.safetensors');
  const log: string[] = [];
  let live = 0;
  const provider = (name: string, n: number) => async () => {
    log.push(name);
    live++;
    assert.equal(live, 1, 'only one provider in flight');
    await new Promise((r) => setTimeout(r, 1));
    live--;
    return new Uint8Array(n).fill(name.charCodeAt(0));
  };
  await writeSafetensors(file, [
    { name: 'u', dtype: 'U8', shape: [5], data: provider('u', 5) },
    { name: 'f', dtype: 'F32', shape: [2], data: provider('f', 8) },
    { name: 'h', dtype: 'F16', shape: [], data: provider('h', 2) },
  ]);
  assert.deepEqual(log, ['f', 'h', 'u']);
  const f = await SafetensorsFile.open(file);
  assert.deepEqual([...(await f.readBytes('u'))], [117, 117, 117, 117, 117]);
  await f.close();
  await fs.rm(dir, { recursive: true });
});

// A random tensor set covering every dtype, scalars and empty tensors.
function randomTensors(rng: Rng): TensorBytes[] {
  const count = 1 + rng.int(8);
  const out: TensorBytes[] = [];
  for (let i = 0; i < count; i++) {
    const dtype = DTYPES[rng.int(DTYPES.length)];
    const rank = rng.int(4); // 0 = scalar
    const shape = Array.from({ length: rank }, () => (rng.next() < 0.1 ? 0 : 1 + rng.int(5)));
    const n = shape.reduce((a, b) => a * b, 1) * dtypeSize(dtype);
    const data = new Uint8Array(n);
    for (let j = 0; j < n; j++) data[j] = rng.int(256);
    // Names exercise escaping and non-ASCII text in the JSON header.
    const name = `${['w', 'layer.', 'ü', 'q"k', 'a\\b'][rng.int(5)]}${i}`;
    out.push({ name, dtype, shape, data });
  }
  return out;
}

test('property: random tensors round-trip byte-identically through disk', async () => {
  const dir = await tmpDir();
  const rng = new Rng(2024);
  for (let trial = 0; trial < 60; trial++) {
    const tensors = randomTensors(rng);
    const meta = trial % 2 ? { trial: String(trial), note: 'é' } : undefined;
    const file = path.join(dir, `t${trial}.safetensors`);
    await writeSafetensors(file, tensors, meta);
    const onDisk = new Uint8Array(await fs.readFile(file));
    assert.deepEqual(onDisk, serializeSafetensors(tensors, meta), 'writer and serializer agree');

    // Our own validator accepts it and the header is 8-aligned.
    const h = parseHeaderBytes(onDisk);
    assert.equal(h.headerLength % 8, 0);
    assert.deepEqual(h.metadata, { format: 'pt', ...(meta ?? {}) });

    // Buffer order is dtype alignment descending, then name.
    const names = [...h.tensors.keys()];
    for (let i = 1; i < names.length; i++) {
      const [a, b] = [h.tensors.get(names[i - 1])!, h.tensors.get(names[i])!];
      const order = dtypeRank(a.dtype) - dtypeRank(b.dtype) || (names[i - 1] < names[i] ? 1 : -1);
      assert.ok(order > 0, `${names[i - 1]} before ${names[i]}`);
      assert.ok(dtypeSize(a.dtype) >= dtypeSize(b.dtype));
      assert.equal(a.dataOffsets[1], b.dataOffsets[0]);
    }

    const f = await SafetensorsFile.open(file);
    assert.deepEqual(new Set(f.names()), new Set(tensors.map((t) => t.name)));
    for (const t of tensors) {
      assert.deepEqual(f.info(t.name).shape, t.shape);
      assert.equal(f.info(t.name).dtype, t.dtype);
      assert.deepEqual(await f.readBytes(t.name), t.data);
    }
    await f.close();
  }
  await fs.rm(dir, { recursive: true });
});
