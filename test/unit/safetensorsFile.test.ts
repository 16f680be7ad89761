import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  float32ToBytes, ModelWeights, readHeader, SafetensorsError, SafetensorsFile, serializeSafetensors, writeSafetensors,
} from '../../src/safetensors';

const isKind = (kind: string) => (e: unknown) => e instanceof SafetensorsError && e.kind === kind;
const tmpDir = () => fs.mkdtemp(path.join(os.tmpdir(), 'mora-stf-'));

test('readHeader reads only the 8 + N header bytes, even for a 3 GiB file', async () => {
  const dir = await tmpDir();
  const file = path.join(dir, 'big.safetensors');
  // "big" is 3 GiB of U8 (a sparse hole on disk), "tail" 4 bytes after it, past the 2^31 read-position limit.
  const big = 3 * 2 ** 30;
  const header = `{"big":{"dtype":"U8","shape":[${big}],"data_offsets":[0,${big}]},"tail":{"dtype":"F32","shape":[],"data_offsets":[${big},${big + 4}]}}`;
  const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(padded.length), true);
  const fh = await fs.open(file, 'w');
  await fh.write(prefix, 0, 8, 0);
  await fh.write(new TextEncoder().encode(padded), 0, padded.length, 8);
  await fh.write(new Uint8Array([0, 0, 0x80, 0x3f]), 0, 4, 8 + padded.length + big);
  await fh.close();

  // Record every read any FileHandle makes while the header is parsed.
  const probe = await fs.open(file, 'r');
  const proto = Object.getPrototypeOf(probe) as { read: (...a: unknown[]) => Promise<unknown> };
  await probe.close();
  const original = proto.read;
  const reads: [number, number][] = [];
  proto.read = function (this: unknown, ...a: unknown[]) {
    reads.push([a[3] as number, a[2] as number]); // [position, length]
    return original.apply(this, a);
  };
  let h;
  try {
    h = await readHeader(file);
  } finally {
    proto.read = original;
  }
  assert.equal(h.fileSize, 8 + padded.length + big + 4);
  assert.deepEqual(reads, [[0, 8], [8, padded.length]]);

  const f = await SafetensorsFile.open(file);
  assert.deepEqual([...(await f.readFloat32('tail'))], [1]);
  assert.deepEqual(f.names(), ['big', 'tail']);
  await f.close();
  await assert.rejects(f.readBytes('tail'), isKind('ReadFailed'));
  await fs.rm(dir, { recursive: true });
});

test('SafetensorsFile: info, readBytes, readFloat32, TensorNotFound, errors carry the path', async () => {
  const dir = await tmpDir();
  const file = path.join(dir, 'a.safetensors');
  await writeSafetensors(file, [
    { name: 'w', dtype: 'BF16', shape: [2, 2], data: float32ToBytes(new Float32Array([1, -2, 0.5, 3]), 'BF16') },
    { name: 'i', dtype: 'I64', shape: [2], data: new Uint8Array([7, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) },
  ], { a: 'b' });
  const f = await SafetensorsFile.open(file);
  assert.deepEqual(f.info('w'), { dtype: 'BF16', shape: [2, 2], dataOffsets: [16, 24] });
  assert.deepEqual([...(await f.readFloat32('w'))], [1, -2, 0.5, 3]);
  assert.deepEqual([...(await f.readFloat32('i'))], [7, -1]);
  const bytes = await f.readBytes('w');
  assert.equal(bytes.byteOffset, 0);
  assert.deepEqual(f.metadata, { format: 'pt', a: 'b' });
  assert.throws(() => f.info('nope'), isKind('TensorNotFound'));
  await f.close();

  const bad = path.join(dir, 'bad.safetensors');
  await fs.writeFile(bad, new Uint8Array([1, 2, 3]));
  await assert.rejects(readHeader(bad), (e: unknown) => isKind('HeaderTooSmall')(e) && (e as Error).message.includes(bad));
  await assert.rejects(SafetensorsFile.open(bad), isKind('HeaderTooSmall'));
  await fs.rm(dir, { recursive: true });
});

async function shardedModel(dir: string, weightMap: Record<string, string>, extra = '') {
  await fs.writeFile(
    path.join(dir, 'model-00001-of-00002.safetensors'),
    serializeSafetensors([
      { name: 'a', dtype: 'F32', shape: [2], data: float32ToBytes(new Float32Array([1, 2]), 'F32') },
      { name: 'b', dtype: 'F16', shape: [1], data: float32ToBytes(new Float32Array([3]), 'F16') },
    ]),
  );
  await fs.writeFile(
    path.join(dir, 'model-00002-of-00002.safetensors'),
    serializeSafetensors([{ name: 'c', dtype: 'BF16', shape: [1, 1], data: float32ToBytes(new Float32Array([4]), 'BF16') }]),
  );
  await fs.writeFile(path.join(dir, 'model.safetensors.index.json'), `{"metadata":{"total_size":14},${extra}"weight_map":${JSON.stringify(weightMap)}}`);
}

const goodMap = { a: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors', b: 'model-00001-of-00002.safetensors' };

test('ModelWeights: sharded folder resolved through the index', async () => {
  const dir = await tmpDir();
  await shardedModel(dir, goodMap);
  for (const target of [dir, path.join(dir, 'model.safetensors.index.json')]) {
    const w = await ModelWeights.open(target);
    assert.deepEqual(w.names(), ['a', 'c', 'b']);
    assert.equal(w.shards.length, 2);
    assert.equal(w.shardOf('c'), path.join(dir, 'model-00002-of-00002.safetensors'));
    assert.equal(w.index?.totalSize, 14);
    assert.deepEqual(w.info('b'), { dtype: 'F16', shape: [1], dataOffsets: [8, 10] });
    assert.deepEqual([...(await w.readFloat32('a'))], [1, 2]);
    assert.deepEqual([...(await w.readFloat32('b'))], [3]);
    assert.deepEqual([...(await w.readFloat32('c'))], [4]);
    assert.deepEqual([...(await w.readBytes('c'))], [0x80, 0x40]);
    assert.throws(() => w.info('zz'), isKind('TensorNotFound'));
    await w.close();
  }
  await fs.rm(dir, { recursive: true });
});

test('ModelWeights: single file, model.safetensors folder, and a lone .safetensors in a folder', async () => {
  const dir = await tmpDir();
  const data = serializeSafetensors([{ name: 'x', dtype: 'U8', shape: [1], data: new Uint8Array([9]) }]);
  await fs.writeFile(path.join(dir, 'model.safetensors'), data);
  let w = await ModelWeights.open(dir);
  assert.deepEqual(w.names(), ['x']);
  assert.equal(w.index, null);
  await w.close();
  w = await ModelWeights.open(path.join(dir, 'model.safetensors'));
  assert.deepEqual([...(await w.readBytes('x'))], [9]);
  await w.close();
  const adapter = await tmpDir();
  await fs.writeFile(path.join(adapter, 'adapter_model.safetensors'), data);
  w = await ModelWeights.open(adapter);
  assert.deepEqual(w.shards, [path.join(adapter, 'adapter_model.safetensors')]);
  await w.close();
  await fs.rm(path.join(adapter, 'adapter_model.safetensors'));
  await assert.rejects(ModelWeights.open(adapter), isKind('NoWeights'));
  await assert.rejects(ModelWeights.open(path.join(adapter, 'missing')), isKind('NoWeights'));
  await fs.rm(dir, { recursive: true });
  await fs.rm(adapter, { recursive: true });
});

test('ModelWeights: index errors are named', async () => {
  const cases: [Record<string, string>, string, string][] = [
    [{ ...goodMap, d: 'model-00003-of-00003.safetensors' }, '', 'IndexMissingShard'],
    [{ ...goodMap, c: 'model-00001-of-00002.safetensors' }, '', 'IndexMissingTensor'],
    [{ ...goodMap, e: '../outside.safetensors' }, '', 'IndexInvalid'],
    [goodMap, '"weight_map":{},', 'IndexInvalid'], // duplicate key
  ];
  for (const [map, extra, kind] of cases) {
    const dir = await tmpDir();
    await shardedModel(dir, map, extra);
    await assert.rejects(ModelWeights.open(dir), isKind(kind), kind);
    await fs.rm(dir, { recursive: true });
  }
  const dir = await tmpDir();
  const idx = path.join(dir, 'model.safetensors.index.json');
  for (const text of ['{"weight_map":', '[]', '{"weight_map":[]}', '{"weight_map":{"a":1}}', '{"metadata":{"total_size":"x"},"weight_map":{}}']) {
    await fs.writeFile(idx, text);
    await assert.rejects(ModelWeights.open(dir), isKind('IndexInvalid'), text);
  }
  await fs.rm(dir, { recursive: true });
});

test('SafetensorsFile.readSpans: the bytes of readBytes, in batches of at most batchBytes, any name order', async () => {
  const dir = await tmpDir();
  const file = path.join(dir, 'spans.safetensors');
  // Sizes 12, 6, 40, 2, 16 bytes: batch limits cut between tensors, and a single tensor over the limit is one batch.
  const tensors = [
    { name: 'a', dtype: 'F32' as const, shape: [3], data: float32ToBytes(new Float32Array([1, 2, 3]), 'F32') },
    { name: 'b', dtype: 'BF16' as const, shape: [3], data: float32ToBytes(new Float32Array([4, 5, 6]), 'BF16') },
    { name: 'c', dtype: 'F32' as const, shape: [10], data: float32ToBytes(new Float32Array(10).map((_, i) => i / 7), 'F32') },
    { name: 'd', dtype: 'F16' as const, shape: [1], data: float32ToBytes(new Float32Array([-0]), 'F16') },
    { name: 'e', dtype: 'F64' as const, shape: [2], data: new Uint8Array(new Float64Array([Math.PI, -1e300]).buffer) },
  ];
  await writeSafetensors(file, tensors);
  const f = await SafetensorsFile.open(file);
  for (const batch of [1, 13, 20, 64, 1 << 20]) {
    for (const names of [['a', 'b', 'c', 'd', 'e'], ['e', 'c', 'a'], ['d']]) {
      const got = await f.readSpans(names, batch);
      assert.deepEqual([...got.keys()].sort(), [...names].sort());
      for (const n of names) assert.deepEqual(got.get(n), await f.readBytes(n), `${n}, batch ${batch}`);
      // One read per batch: a buffer holds one tensor, or several whose bytes fit in batchBytes.
      const buffers = new Map<ArrayBufferLike, string[]>();
      for (const n of names) buffers.set(got.get(n)!.buffer, [...(buffers.get(got.get(n)!.buffer) ?? []), n]);
      for (const [buf, held] of buffers) assert.ok(held.length === 1 || buf.byteLength <= batch, `${held} in ${buf.byteLength} bytes`);
      if (batch === 1 << 20 && names.length === 5) assert.equal(buffers.size, 1, 'the whole file in one read');
      if (batch === 1) assert.equal(buffers.size, names.length);
    }
  }
  await f.close();
  await assert.rejects(f.readSpans(['a']), isKind('ReadFailed'));
  await fs.rm(dir, { recursive: true });
});
