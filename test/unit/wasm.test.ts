import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assembleModule, code, instantiate, op, sleb, uleb, WasmArena, wasmSimdSupported, type ValType } from '../../src/util/wasm';
import { wasmRelaxedSimdSupported } from '../../src/util/wasmRelaxed';

test('LEB128 encodings match the spec examples', () => {
  assert.deepEqual(uleb(0), [0x00]);
  assert.deepEqual(uleb(624485), [0xe5, 0x8e, 0x26]);
  assert.deepEqual(sleb(-123456), [0xc0, 0xbb, 0x78]);
  assert.deepEqual(sleb(63), [0x3f]);
  assert.deepEqual(sleb(64), [0xc0, 0x00]);
  assert.deepEqual(sleb(-64), [0x40]);
  assert.deepEqual(sleb(-65), [0xbf, 0x7f]);
  assert.throws(() => uleb(-1), RangeError);
});

test('the smallest module is the golden byte string', () => {
  const bytes = assembleModule([{ name: 'k', params: [], results: ['i32'], body: op.i32Const(42) }]);
  assert.deepEqual(
    [...bytes],
    [
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
      0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type: () -> i32
      0x02, 0x0f, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, 0x01, // env.memory
      0x03, 0x02, 0x01, 0x00, // func 0 has type 0
      0x07, 0x05, 0x01, 0x01, 0x6b, 0x00, 0x00, // export "k" = func 0
      0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x2a, 0x0b, // body: no locals, i32.const 42, end
    ],
  );
  const arena = new WasmArena();
  assert.equal(instantiate<{ k(): number }>(bytes, arena.memory).k(), 42);
});

test('an f64x2 loop kernel computes y = a·x + y over an arena', () => {
  assert.equal(wasmSimdSupported(), true);
  // axpy(x, y, n, a): params 0..3, local 4 = end pointer of x.
  const body = code(
    op.get(0), op.get(2), op.i32Const(3), op.i32Shl, op.i32Add, op.set(4),
    op.block(), op.loop(),
    op.get(0), op.get(4), op.i32GeU, op.brIf(1),
    op.get(1),
    op.get(0), op.v128Load(0, 3), op.get(3), op.f64x2Splat, op.f64x2Mul,
    op.get(1), op.v128Load(0, 3), op.f64x2Add,
    op.v128Store(0, 3),
    op.get(0), op.i32Const(16), op.i32Add, op.set(0),
    op.get(1), op.i32Const(16), op.i32Add, op.set(1),
    op.br(0), op.end, op.end,
  );
  const arena = new WasmArena();
  const k = instantiate<{ axpy(x: number, y: number, n: number, a: number): void }>(
    assembleModule([{ name: 'axpy', params: ['i32', 'i32', 'i32', 'f64'], results: [], locals: ['i32'], body }]),
    arena.memory,
  );
  const n = 100_000; // 800 KB each: the arena grows past its first page
  const px = arena.alloc(n * 8);
  const py = arena.alloc(n * 8);
  const x = new Float64Array(arena.memory.buffer, px, n);
  const y = new Float64Array(arena.memory.buffer, py, n);
  for (let i = 0; i < n; i++) {
    x[i] = i * 0.25;
    y[i] = 1 / (i + 1);
  }
  const want = Float64Array.from(y, (v, i) => 1.5 * x[i] + v);
  k.axpy(px, py, n, 1.5);
  assert.deepEqual(new Float64Array(arena.memory.buffer, py, n), want);
});

test('v128 constants, lane extraction and f32 demotion round like Math.fround', () => {
  const arena = new WasmArena();
  const k = instantiate<{ demote(x: number): number; lane(): number }>(
    assembleModule([
      { name: 'demote', params: ['f64'], results: ['f64'], body: code(op.get(0), op.f64x2Splat, op.f32x4DemoteF64x2Zero, op.f64x2PromoteLowF32x4, op.f64x2ExtractLane(1)) },
      { name: 'lane', params: [], results: ['i32'], body: code(op.i32x4Const(1, -2, 3, -4), op.i32x4ExtractLane(3)) },
    ]),
    arena.memory,
  );
  for (const v of [0.1, 1 / 3, 3.4028235677973366e38, 1e-46, -2.5e-39]) assert.equal(k.demote(v), Math.fround(v));
  assert.equal(k.lane(), -4);
});

test('i32x4.gt_s (0xfd 0x3b) compares signed lanes', () => {
  assert.deepEqual(op.i32x4GtS, [0xfd, 0x3b]);
  const arena = new WasmArena();
  const k = instantiate<{ gt(): number }>(
    assembleModule([{ name: 'gt', params: [], results: ['i32'], body: code(op.i32x4Const(5, -1, 0x7f7f8000, 2), op.i32x4Const(4, 1, 0x7f7f7fff, 2), op.i32x4GtS, op.i32x4Bitmask) }]),
    arena.memory,
  );
  assert.equal(k.gt(), 0b0101); // 5 > 4, -1 < 1 (signed), 0x7f7f8000 > 0x7f7f7fff, 2 = 2
});

test('WasmArena: 16-byte aligned regions, and a clear RangeError past the 4 GiB of wasm32 instead of a wrapped offset', () => {
  const arena = new WasmArena();
  assert.equal(arena.alloc(1), 0);
  assert.equal(arena.alloc(20), 16);
  assert.equal(arena.alloc(0), 48);
  assert.throws(() => arena.alloc(2 ** 32), /4 GiB/);
  assert.equal(arena.alloc(8), 48); // the failed request took nothing
  arena.reset();
  assert.equal(arena.alloc(3), 0);
});

test('memory.copy (0xfc 0x0a 0x00 0x00) copies overlapping bytes like memmove', () => {
  assert.deepEqual(op.memoryCopy, [0xfc, 0x0a, 0x00, 0x00]);
  const arena = new WasmArena();
  const k = instantiate<{ copy(dst: number, src: number, n: number): void }>(
    assembleModule([{ name: 'copy', params: ['i32', 'i32', 'i32'], results: [], body: code(op.get(0), op.get(1), op.get(2), op.memoryCopy) }]),
    arena.memory,
  );
  const u8 = new Uint8Array(arena.memory.buffer, 0, 16);
  u8.set([1, 2, 3, 4, 5, 6, 7, 8]);
  k.copy(2, 0, 5); // forward overlap: the source bytes are read before they are overwritten
  assert.deepEqual([...u8.subarray(0, 8)], [1, 2, 1, 2, 3, 4, 5, 8]);
  k.copy(0, 3, 4); // backward overlap
  assert.deepEqual([...u8.subarray(0, 8)], [2, 3, 4, 5, 3, 4, 5, 8]);
  assert.throws(() => k.copy(65530, 0, 16), WebAssembly.RuntimeError); // past the end of memory traps
});

test('relaxed SIMD f64x2.relaxed_madd (0xfd 0x87 0x02) and relaxed_nmadd (0xfd 0x88 0x02): a·b + c, −(a·b) + c', () => {
  assert.deepEqual(op.f64x2RelaxedMadd, [0xfd, 0x87, 0x02]);
  assert.deepEqual(op.f64x2RelaxedNmadd, [0xfd, 0x88, 0x02]);
  assert.equal(wasmRelaxedSimdSupported(), true);
  // f(a, b, c) = lane 0 of relaxed op(splat a, splat b, splat c).
  const fn = (name: string, relaxed: number[]) => ({
    name,
    params: ['f64', 'f64', 'f64'] as ValType[],
    results: ['f64'] as ValType[],
    body: code(op.get(0), op.f64x2Splat, op.get(1), op.f64x2Splat, op.get(2), op.f64x2Splat, relaxed, op.f64x2ExtractLane(0)),
  });
  type F = (a: number, b: number, c: number) => number;
  const k = instantiate<{ madd: F; nmadd: F }>(assembleModule([fn('madd', op.f64x2RelaxedMadd), fn('nmadd', op.f64x2RelaxedNmadd)]), new WasmArena().memory);
  assert.equal(k.madd(3, 4, 5), 17);
  assert.equal(k.nmadd(3, 4, 5), -7);
  // (1 + 2⁻³⁰)(1 − 2⁻³⁰) = 1 − 2⁻⁶⁰ rounds to 1: fused, ∓1 leaves ∓2⁻⁶⁰; unfused, 0. Relaxed SIMD allows either.
  const [a, b] = [1 + 2 ** -30, 1 - 2 ** -30];
  assert.ok([-(2 ** -60), 0].includes(k.madd(a, b, -1)), `madd ${k.madd(a, b, -1)}`);
  assert.ok([2 ** -60, 0].includes(k.nmadd(a, b, 1)), `nmadd ${k.nmadd(a, b, 1)}`);
});
