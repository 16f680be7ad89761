// A small WebAssembly assembler: typed helpers that emit the binary encoding of instructions, and a module builder
// that imports one memory and exports functions. It lets hot numeric kernels (merge rows, dense linear algebra) run
// as WASM SIMD without a compiler toolchain or a new dependency: the kernels are written in TypeScript as instruction
// lists, assembled once per process and compiled by the engine (V8's TurboFan emits real SSE/AVX for v128).
//
// Encoding follows the WebAssembly core spec 2.0 (binary format) and the fixed-width SIMD proposal; only what the
// project's kernels use is here. Instructions are plain number arrays, so a body is `[...a, ...b]` or `code(a, b)`.

export type ValType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128';
const VALTYPE: Record<ValType, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

export type Code = number[];

/** Unsigned LEB128. */
export function uleb(n: number): Code {
  if (!(Number.isInteger(n) && n >= 0)) throw new RangeError(`uleb: ${n}`);
  const out: Code = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** Signed LEB128 for 32-bit (and small 64-bit) constants. */
export function sleb(n: number): Code {
  if (!Number.isInteger(n)) throw new RangeError(`sleb: ${n}`);
  const out: Code = [];
  for (;;) {
    const b = n & 0x7f;
    n = Math.floor(n / 128);
    const done = (n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0);
    out.push(done ? b : b | 0x80);
    if (done) return out;
  }
}

const bytesOfString = (s: string): Code => {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
};
const vec = (items: Code[]): Code => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: Code): Code => [id, ...uleb(body.length), ...body];

export function code(...parts: (Code | number)[]): Code {
  const out: Code = [];
  for (const p of parts) {
    if (typeof p === 'number') out.push(p);
    else for (const b of p) out.push(b);
  }
  return out;
}

const simd = (n: number): Code => [0xfd, ...uleb(n)];
// Memory arguments: alignment as log2 bytes, then a constant offset.
const mem = (op: number, alignLog2: number, offset: number): Code => [op, ...uleb(alignLog2), ...uleb(offset)];
const memSimd = (n: number, alignLog2: number, offset: number): Code => [...simd(n), ...uleb(alignLog2), ...uleb(offset)];

/** Instructions. Block types are 'void' or one value type. */
export const op = {
  // Control.
  block: (t: ValType | 'void' = 'void'): Code => [0x02, t === 'void' ? 0x40 : VALTYPE[t]],
  loop: (t: ValType | 'void' = 'void'): Code => [0x03, t === 'void' ? 0x40 : VALTYPE[t]],
  if: (t: ValType | 'void' = 'void'): Code => [0x04, t === 'void' ? 0x40 : VALTYPE[t]],
  else: [0x05] as Code,
  end: [0x0b] as Code,
  br: (depth: number): Code => [0x0c, ...uleb(depth)],
  brIf: (depth: number): Code => [0x0d, ...uleb(depth)],
  return: [0x0f] as Code,
  unreachable: [0x00] as Code,
  drop: [0x1a] as Code,
  select: [0x1b] as Code,
  call: (fn: number): Code => [0x10, ...uleb(fn)],
  // Locals.
  get: (i: number): Code => [0x20, ...uleb(i)],
  set: (i: number): Code => [0x21, ...uleb(i)],
  tee: (i: number): Code => [0x22, ...uleb(i)],
  // Memory (alignment hints are log2 bytes; misaligned access is legal, only slower).
  i32Load: (offset = 0, align = 2): Code => mem(0x28, align, offset),
  f32Load: (offset = 0, align = 2): Code => mem(0x2a, align, offset),
  f64Load: (offset = 0, align = 3): Code => mem(0x2b, align, offset),
  i32Load16U: (offset = 0, align = 1): Code => mem(0x2f, align, offset),
  i32Store: (offset = 0, align = 2): Code => mem(0x36, align, offset),
  f32Store: (offset = 0, align = 2): Code => mem(0x38, align, offset),
  f64Store: (offset = 0, align = 3): Code => mem(0x39, align, offset),
  i32Store16: (offset = 0, align = 1): Code => mem(0x3b, align, offset),
  memorySize: [0x3f, 0x00] as Code,
  // Constants.
  i32Const: (v: number): Code => [0x41, ...sleb(v | 0)],
  f32Const: (v: number): Code => [0x43, ...new Uint8Array(Float32Array.of(v).buffer)],
  f64Const: (v: number): Code => [0x44, ...new Uint8Array(Float64Array.of(v).buffer)],
  // i32.
  i32Eqz: [0x45] as Code,
  i32Eq: [0x46] as Code,
  i32Ne: [0x47] as Code,
  i32LtS: [0x48] as Code,
  i32LtU: [0x49] as Code,
  i32GtS: [0x4a] as Code,
  i32GtU: [0x4b] as Code,
  i32LeS: [0x4c] as Code,
  i32LeU: [0x4d] as Code,
  i32GeS: [0x4e] as Code,
  i32GeU: [0x4f] as Code,
  i32Add: [0x6a] as Code,
  i32Sub: [0x6b] as Code,
  i32Mul: [0x6c] as Code,
  i32DivS: [0x6d] as Code,
  i32DivU: [0x6e] as Code,
  i32RemU: [0x70] as Code,
  i32And: [0x71] as Code,
  i32Or: [0x72] as Code,
  i32Xor: [0x73] as Code,
  i32Shl: [0x74] as Code,
  i32ShrS: [0x75] as Code,
  i32ShrU: [0x76] as Code,
  i32Ctz: [0x68] as Code,
  // f32 / f64 scalar.
  f32Add: [0x92] as Code,
  f32Mul: [0x94] as Code,
  f64Eq: [0x61] as Code,
  f64Ne: [0x62] as Code,
  f64Lt: [0x63] as Code,
  f64Gt: [0x64] as Code,
  f64Le: [0x65] as Code,
  f64Ge: [0x66] as Code,
  f64Abs: [0x99] as Code,
  f64Neg: [0x9a] as Code,
  f64Sqrt: [0x9f] as Code,
  f64Add: [0xa0] as Code,
  f64Sub: [0xa1] as Code,
  f64Mul: [0xa2] as Code,
  f64Div: [0xa3] as Code,
  f64Min: [0xa4] as Code,
  f64Max: [0xa5] as Code,
  f32DemoteF64: [0xb6] as Code,
  f64PromoteF32: [0xbb] as Code,
  i32ReinterpretF32: [0xbc] as Code,
  f32ReinterpretI32: [0xbe] as Code,
  // v128 memory and constants.
  v128Load: (offset = 0, align = 4): Code => memSimd(0x00, align, offset),
  v128Load64Zero: (offset = 0, align = 3): Code => memSimd(0x5d, align, offset),
  v128Load64Splat: (offset = 0, align = 3): Code => memSimd(0x0a, align, offset),
  v128Store: (offset = 0, align = 4): Code => memSimd(0x0b, align, offset),
  v128Store64Lane: (lane: number, offset = 0, align = 3): Code => [...memSimd(0x5b, align, offset), lane],
  v128Const: (bytes: ArrayLike<number>): Code => {
    if (bytes.length !== 16) throw new RangeError('v128.const needs 16 bytes');
    return [...simd(0x0c), ...Array.from(bytes, (b) => b & 0xff)];
  },
  i32x4Const: (a: number, b: number, c: number, d: number): Code => op.v128Const(new Uint8Array(Int32Array.of(a, b, c, d).buffer)),
  i8x16Shuffle: (lanes: ArrayLike<number>): Code => [...simd(0x0d), ...Array.from(lanes)],
  // Splats and lanes.
  i32x4Splat: simd(0x11),
  f32x4Splat: simd(0x13),
  f64x2Splat: simd(0x14),
  i32x4ExtractLane: (l: number): Code => [...simd(0x1b), l],
  f64x2ExtractLane: (l: number): Code => [...simd(0x21), l],
  f64x2ReplaceLane: (l: number): Code => [...simd(0x22), l],
  // Bitwise.
  v128Not: simd(0x4d),
  v128And: simd(0x4e),
  v128AndNot: simd(0x4f),
  v128Or: simd(0x50),
  v128Xor: simd(0x51),
  v128Bitselect: simd(0x52),
  v128AnyTrue: simd(0x53),
  // Integer lanes.
  i8x16Bitmask: simd(0x64),
  i16x8Eq: simd(0x2d),
  i16x8Bitmask: simd(0x84),
  i16x8NarrowI32x4U: simd(0x86),
  i16x8Add: simd(0x8e),
  i16x8ExtendLowI8x16U: simd(0x89),
  i32x4Eq: simd(0x37),
  i32x4Ne: simd(0x38),
  i32x4GtU: simd(0x3c),
  i32x4GeU: simd(0x40),
  i32x4AllTrue: simd(0xa3),
  i32x4Bitmask: simd(0xa4),
  i32x4ExtendLowI16x8U: simd(0xa9),
  i32x4ExtendHighI16x8U: simd(0xaa),
  i32x4Shl: simd(0xab),
  i32x4ShrS: simd(0xac),
  i32x4ShrU: simd(0xad),
  i32x4Add: simd(0xae),
  i32x4Sub: simd(0xb1),
  i32x4Mul: simd(0xb5),
  // Float lanes.
  f32x4Eq: simd(0x41),
  f64x2Eq: simd(0x47),
  f64x2Lt: simd(0x49),
  f32x4Abs: simd(0xe0),
  f32x4Add: simd(0xe4),
  f32x4Sub: simd(0xe5),
  f32x4Mul: simd(0xe6),
  f64x2Abs: simd(0xec),
  f64x2Neg: simd(0xed),
  f64x2Sqrt: simd(0xef),
  f64x2Add: simd(0xf0),
  f64x2Sub: simd(0xf1),
  f64x2Mul: simd(0xf2),
  f64x2Div: simd(0xf3),
  f64x2Min: simd(0xf4),
  f64x2Max: simd(0xf5),
  f32x4DemoteF64x2Zero: simd(0x5e),
  f64x2PromoteLowF32x4: simd(0x5f),
  // Appended for the merge kernels (src/adapters/mergeWasm.ts).
  i32x4GtS: simd(0x3b),
  // Bulk memory (core spec 2.0): memory.copy dst src n, within memory 0 (src/adapters/mergeSlabWasm.ts).
  memoryCopy: [0xfc, 0x0a, 0x00, 0x00] as Code,
  // Relaxed SIMD (phase 4 proposal, on by default from V8 11.4 / Node 22; src/util/wasmRelaxed.ts detects it):
  // a·b + c and −(a·b) + c, stack order a, b, c, fused or not as the hardware has it (src/spectrum FMA kernels).
  f64x2RelaxedMadd: simd(0x107),
  f64x2RelaxedNmadd: simd(0x108),
} as const;

export interface WasmFunction {
  name: string;
  params: ValType[];
  results: ValType[];
  /** Extra locals after the parameters (their indices continue the parameters'). */
  locals?: ValType[];
  body: Code;
}

/**
 * A module importing `env.memory` (so one memory can be shared by several modules and grown by the host) and
 * exporting `fns` by name. Function index i is fns[i], for op.call.
 */
export function assembleModule(fns: WasmFunction[]): Uint8Array<ArrayBuffer> {
  const typeKey = (f: WasmFunction) => `${f.params.join(',')}->${f.results.join(',')}`;
  const types: WasmFunction[] = [];
  const typeIndex = new Map<string, number>();
  for (const f of fns) {
    if (!typeIndex.has(typeKey(f))) {
      typeIndex.set(typeKey(f), types.length);
      types.push(f);
    }
  }
  const typeSec = vec(types.map((f) => [0x60, ...vec(f.params.map((p) => [VALTYPE[p]])), ...vec(f.results.map((r) => [VALTYPE[r]]))]));
  // Import "env" "memory" as memory with min 1 page, no maximum.
  const importSec = vec([[...bytesOfString('env'), ...bytesOfString('memory'), 0x02, 0x00, ...uleb(1)]]);
  const funcSec = vec(fns.map((f) => uleb(typeIndex.get(typeKey(f))!)));
  const exportSec = vec(fns.map((f, i) => [...bytesOfString(f.name), 0x00, ...uleb(i)]));
  const codeSec = vec(
    fns.map((f) => {
      // Locals are declared as runs of one type.
      const runs: Code[] = [];
      for (const t of f.locals ?? []) {
        const last = runs[runs.length - 1];
        if (last && last[1] === VALTYPE[t]) last[0]++;
        else runs.push([1, VALTYPE[t]]);
      }
      const body = [...vec(runs.map(([n, t]) => [...uleb(n), t])), ...f.body, ...op.end];
      return [...uleb(body.length), ...body];
    }),
  );
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, typeSec),
    ...section(2, importSec),
    ...section(3, funcSec),
    ...section(7, exportSec),
    ...section(10, codeSec),
  ]);
}

/** Whether this engine validates a module using v128 (every Node and Electron the extension supports does). */
export function wasmSimdSupported(): boolean {
  try {
    return WebAssembly.validate(
      assembleModule([{ name: 'f', params: [], results: ['i32'], body: code(op.i32Const(7), op.i32x4Splat, op.i32x4ExtractLane(0)) }]),
    );
  } catch {
    return false;
  }
}

/**
 * A growable memory shared by kernels, with a bump allocator of 16-byte aligned regions. Views of `memory.buffer`
 * must be re-created after `ensure` grows it (growing detaches the old ArrayBuffer).
 */
const MAX_WASM32_BYTES = 65536 * 65536;

export class WasmArena {
  readonly memory = new WebAssembly.Memory({ initial: 1 });
  private top = 0;

  /** Byte offset of a fresh region of `bytes` bytes (16-byte aligned). Memory grows as needed. */
  alloc(bytes: number): number {
    const at = this.top;
    // Plain arithmetic, not `& ~15`: offsets past 2 GiB must not wrap negative.
    const top = Math.ceil((at + bytes) / 16) * 16;
    if (top > MAX_WASM32_BYTES) throw new RangeError(`WasmArena: ${top} bytes exceed wasm32's 4 GiB`);
    this.ensure(top);
    this.top = top;
    return at;
  }

  /** Frees everything allocated (the memory keeps its size). */
  reset(): void {
    this.top = 0;
  }

  ensure(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes > have) this.memory.grow(Math.ceil((bytes - have) / 65536));
  }
}

/** Compiles and instantiates an assembled module against `memory`, returning its exports. */
export function instantiate<T>(bytes: Uint8Array<ArrayBuffer>, memory: WebAssembly.Memory): T {
  const mod = new WebAssembly.Module(bytes);
  return new WebAssembly.Instance(mod, { env: { memory } }).exports as unknown as T;
}
