// Slab buffers in a WebAssembly memory of their own, so the commonest merge of all (one MoRA type-6 adapter into a
// BF16 model, dtype kept) runs a whole slab of rows through one kernel call, in place. The row-at-a-time path
// (LinearRows with RowCodec) copied every slab into the merge arena to scan it, and each band in and out of it,
// with several JS calls and typed-array views per row: ~0.3 s of main-thread time per GB merged, more than the
// arithmetic itself (bench/RESULTS.md, "Session 4"). The memory never grows (initial = maximum), so views of it are
// never detached and reads and writes may target it while the kernel works on another slot.
//
// mora6Slab(row by row, stopping at the first row it cannot finish exactly as the JS path would):
//   - any base value that is Inf/NaN or -0 stops it (a pass-through column then needs RowCodec.pass), as does any
//     band sum that is non-finite or rounds to Inf;
//   - otherwise the band of ΔW's row (mora6Band, plus the odd last pair in scalar f64), times w0 when w0 ≠ 1, is added
//     to the band's base values and rounded to BF16 (bf16AddRound) and stored; every other column keeps its value.
//     The band of the padded chunk wraps around the row: its first inF − base values land at [base, inF), the rest
//     at [0, wrap), so base values are gathered from (and results scattered to) those two runs.
// The stopped row is untouched, so LinearRows redoes it with the JS path (which throws the exact error or rewrites
// -0) and calls the kernel again from the next row. Same instructions as mergeWasm.ts's kernels, so the same bits.
import { assembleModule, code, op, type Code } from '../util/wasm';
import { bf16AddRound, mergeWasm, mora6Band, scan } from './mergeWasm';
import type { Mora6Rows } from './mergeKernels';
import type { MergeSource, TensorPlan } from './mergePlan';
import { moraChunks } from './mora';

// Function indices in the module (op.call).
const [fnBand, fnAddRound, fnScan16] = [1, 2, 3];

// mora6Slab(pS 0, n 1, o0 2, inF 3, rHat 4, produced 5, pM 6, pCos 7, pSin 8, pBand 9, pIo 10, w0 11 f64) -> rows done.
// Locals: i 12, p 13, c 14, base 15, a 16, row 17, h 18, pairs 19, r8 20, k 21, inF32 22, hv 23, seg 24 (i32);
// m1 25, m2 26, co 27, si 28 (f64).
function mora6Slab(): Code {
  const [pS, n, o0, inF, rHat, produced, pM, pCos, pSin, pBand, pIo, w0] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const [i, p, c, base, a, row, h, pairs, r8, k, inF32, hv, seg] = [12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24];
  const [m1, m2, co, si] = [25, 26, 27, 28];
  const f32At = (ptr: number, index: Code) => code(op.get(ptr), index, op.i32Const(2), op.i32Shl, op.i32Add);
  const widen = (ptr: number, index: Code, to: number) => code(f32At(ptr, index), op.f32Load(0, 2), op.f64PromoteF32, op.set(to));
  const aRow = code(op.get(a), op.get(rHat), op.i32Mul); // a·r̂: the M row of this output row
  const cRow = code(op.get(c), op.get(h), op.i32Mul); // c·h: the RoPE row of this chunk
  const bandAt = code(op.get(row), op.get(base), op.i32Const(1), op.i32Shl, op.i32Add); // the band's base bytes
  const wrapBytes = code(op.get(rHat), op.get(seg), op.i32Sub, op.i32Const(1), op.i32Shl); // 2·(r̂ − seg), often 0
  return code(
    op.get(rHat), op.i32Const(1), op.i32ShrU, op.set(h),
    op.get(h), op.i32Const(1), op.i32ShrU, op.set(pairs),
    op.get(rHat), op.i32Const(7), op.i32Add, op.i32Const(-8), op.i32And, op.set(r8),
    op.get(inF), op.i32Const(-32), op.i32And, op.set(inF32),
    op.block(), op.loop(),
    op.get(i), op.get(n), op.i32GeU, op.brIf(1),
    // p = (o0 + i) mod produced, its chunk c, base = c·r̂ and M row a.
    op.get(o0), op.get(i), op.i32Add, op.get(produced), op.i32RemU, op.set(p),
    op.get(p), op.get(rHat), op.i32DivU, op.set(c),
    op.get(c), op.get(rHat), op.i32Mul, op.set(base),
    op.get(p), op.get(base), op.i32Sub, op.set(a),
    // seg = the band's values before the wrap: min(r̂, inF − base); the other r̂ − seg go to columns [0, r̂ − seg).
    op.get(inF), op.get(base), op.i32Sub, op.tee(seg), op.get(rHat), op.get(seg), op.get(rHat), op.i32LtU, op.select, op.set(seg),
    op.get(pS), op.get(i), op.get(inF), op.i32Mul, op.i32Const(1), op.i32Shl, op.i32Add, op.set(row),
    // Any Inf/NaN or -0 in the row: the JS path handles it.
    op.get(row), op.get(inF32), op.i32Const(0x7f80), op.call(fnScan16), op.get(inF32), op.i32LtU, op.brIf(1),
    op.get(inF32), op.set(k),
    op.block(), op.loop(),
    op.get(k), op.get(inF), op.i32GeU, op.brIf(1),
    op.get(row), op.get(k), op.i32Const(1), op.i32Shl, op.i32Add, op.i32Load16U(0, 1), op.set(hv),
    op.get(hv), op.i32Const(0x7f80), op.i32And, op.i32Const(0x7f80), op.i32Eq, op.get(hv), op.i32Const(0x8000), op.i32Eq, op.i32Or,
    op.brIf(3),
    op.get(k), op.i32Const(1), op.i32Add, op.set(k),
    op.br(0), op.end, op.end,
    // The band of ΔW's row into pBand: halves [0, h) and [h, r̂).
    f32At(pM, aRow), f32At(pCos, cRow), f32At(pSin, cRow), op.get(pBand), op.get(pairs), op.get(h), op.i32Const(2), op.i32Shl,
    op.call(fnBand),
    op.get(h), op.i32Const(1), op.i32And,
    op.if(),
    // The odd last pair j = h - 1, as Mora6Rows.band does it: f32(0 + (m1·co + m2·si)), f32(0 + (m2·co − m1·si)).
    op.get(h), op.i32Const(1), op.i32Sub, op.set(k),
    widen(pM, code(aRow, op.get(k), op.i32Add), m1),
    widen(pM, code(aRow, op.get(k), op.i32Add, op.get(h), op.i32Add), m2),
    widen(pCos, code(cRow, op.get(k), op.i32Add), co),
    widen(pSin, code(cRow, op.get(k), op.i32Add), si),
    f32At(pBand, op.get(k)),
    op.f64Const(0), op.get(m1), op.get(co), op.f64Mul, op.get(m2), op.get(si), op.f64Mul, op.f64Add, op.f64Add, op.f32DemoteF64,
    op.f32Store(0, 2),
    f32At(pBand, code(op.get(k), op.get(h), op.i32Add)),
    op.f64Const(0), op.get(m2), op.get(co), op.f64Mul, op.get(m1), op.get(si), op.f64Mul, op.f64Sub, op.f64Add, op.f32DemoteF64,
    op.f32Store(0, 2),
    op.end,
    // A weighted single adapter: acc = f32(ΔW · w0), as LinearRows does.
    op.get(w0), op.f64Const(1), op.f64Ne,
    op.if(),
    op.i32Const(0), op.set(k),
    op.block(), op.loop(),
    op.get(k), op.get(rHat), op.i32GeU, op.brIf(1),
    f32At(pBand, op.get(k)), f32At(pBand, op.get(k)), op.f32Load(0, 2), op.f64PromoteF32, op.get(w0), op.f64Mul, op.f32DemoteF64,
    op.f32Store(0, 2),
    op.get(k), op.i32Const(1), op.i32Add, op.set(k),
    op.br(0), op.end, op.end,
    op.end,
    // Base band in, rounded sums out (the padding past r̂ stays 0 + 0 = 0); a bad sum leaves the row as it was.
    op.get(pIo), bandAt, op.get(seg), op.i32Const(1), op.i32Shl, op.memoryCopy,
    op.get(pIo), op.get(seg), op.i32Const(1), op.i32Shl, op.i32Add, op.get(row), wrapBytes, op.memoryCopy,
    op.get(pBand), op.get(pIo), op.get(r8), op.call(fnAddRound), op.i32Const(-1), op.i32Ne, op.brIf(1),
    bandAt, op.get(pIo), op.get(seg), op.i32Const(1), op.i32Shl, op.memoryCopy,
    op.get(row), op.get(pIo), op.get(seg), op.i32Const(1), op.i32Shl, op.i32Add, wrapBytes, op.memoryCopy,
    op.get(i), op.i32Const(1), op.i32Add, op.set(i),
    op.br(0), op.end, op.end,
    op.get(i),
  );
}

interface SlabKernels {
  mora6Slab(pS: number, n: number, o0: number, inF: number, rHat: number, produced: number, pM: number, pCos: number,
    pSin: number, pBand: number, pIo: number, w0: number): number;
}

let compiled: WebAssembly.Module | undefined;

function slabModule(): WebAssembly.Module {
  const v = 'v128' as const;
  const i32 = 'i32' as const;
  return (compiled ??= new WebAssembly.Module(assembleModule([
    {
      name: 'mora6Slab', params: [...Array<'i32'>(11).fill(i32), 'f64'], results: ['i32'],
      locals: [...Array<'i32'>(13).fill(i32), 'f64', 'f64', 'f64', 'f64'], body: mora6Slab(),
    },
    { name: 'mora6Band', params: Array<'i32'>(6).fill(i32), results: [], locals: [i32, i32, i32, i32, v, v, v, v], body: mora6Band() },
    { name: 'bf16AddRound', params: [i32, i32, i32], results: ['i32'], locals: [i32, i32, v, v, v, v, v, v], body: bf16AddRound() },
    { name: 'scan16', params: [i32, i32, i32], results: ['i32'], locals: [i32, i32, v, v], body: scan(16) },
  ])));
}

const align64 = (n: number) => Math.ceil(n / 64) * 64;
// Largest slab memory made: 8 slots of the default 4 MB slabs need 32 MB; far larger slots mean a tensor with huge rows.
const maxMemoryBytes = 256 << 20;

/** Kernel scratch for a MoRA-6 module of r̂ over `inF` input columns: band (f32), band I/O (bf16), M and RoPE tables. */
export function mora6ScratchBytes(rHat: number, inF: number): number {
  const r8 = Math.ceil(rHat / 8) * 8;
  const half = (moraChunks(inF, rHat) * rHat) / 2;
  return align64(4 * r8) + align64(2 * r8) + align64(4 * rHat * rHat) + 2 * align64(4 * half);
}

/** The kernel scratch the slab-merged `tensors` can use: the largest among their single MoRA-6 BF16 merges, or 0. */
export function fusedScratchBytes(tensors: TensorPlan[], sources: MergeSource[]): number {
  let most = 0;
  for (const t of tensors) {
    if (t.contributions.length !== 1 || t.info.dtype !== 'BF16' || t.outDtype !== 'BF16' || t.info.shape.length !== 2) continue;
    const [c] = t.contributions;
    const cfg = sources[c.source].adapter.config;
    const rHat = c.module.aShape[0];
    if (cfg.use_mora && cfg.mora_type === 6 && rHat > 0) most = Math.max(most, mora6ScratchBytes(rHat, t.info.shape[1]));
  }
  return most;
}

/** A fixed set of slab-sized slots, and the fused MoRA-6 BF16 kernel over them. */
export class SlabMemory {
  private readonly memory: WebAssembly.Memory;
  private readonly k: SlabKernels;
  private readonly free: number[] = []; // byte offsets of free slots
  private loaded?: Mora6Rows; // whose tables are in the scratch now

  /**
   * Undefined where the merge's WASM kernels are off or unsupported, or the slots would be huge (a tensor whose single
   * row is tens of MB); the slabs are then plain ArrayBuffers and take the row-at-a-time path.
   */
  static create(slotBytes: number, slots: number, scratchBytes: number): SlabMemory | undefined {
    if (!mergeWasm() || align64(scratchBytes) + slots * align64(slotBytes) > maxMemoryBytes) return undefined;
    try {
      return new SlabMemory(slotBytes, slots, scratchBytes);
    } catch (err) {
      if (err instanceof RangeError) return undefined; // the engine could not reserve the memory: plain buffers
      throw err;
    }
  }

  private constructor(private readonly slotBytes: number, slots: number, private readonly scratchBytes: number) {
    const stride = align64(slotBytes);
    const pages = Math.ceil((align64(scratchBytes) + slots * stride) / 65536);
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    this.k = new WebAssembly.Instance(slabModule(), { env: { memory: this.memory } }).exports as unknown as SlabKernels;
    for (let s = slots - 1; s >= 0; s--) this.free.push(align64(scratchBytes) + s * stride);
  }

  /** A free slot of slotBytes bytes, or undefined when all are in use. */
  acquire(): Uint8Array | undefined {
    const at = this.free.pop();
    return at === undefined ? undefined : new Uint8Array(this.memory.buffer, at, this.slotBytes);
  }

  /** Takes a slot back; false for bytes that are not one of this memory's slots. */
  release(bytes: Uint8Array): boolean {
    if (bytes.buffer !== this.memory.buffer) return false;
    if (!this.free.includes(bytes.byteOffset)) this.free.push(bytes.byteOffset);
    return true;
  }

  /** Whether mora6() can take rows of `src` held in `bytes`. */
  fits(src: Mora6Rows, bytes: Uint8Array): boolean {
    const { rHat } = src.tables();
    return bytes.buffer === this.memory.buffer && rHat % 2 === 0 && rHat < src.inF && mora6ScratchBytes(rHat, src.inF) <= this.scratchBytes;
  }

  /**
   * Merges BF16 rows [i0, i0 + n) of `bytes` (row i is output row o0 + i) in place with src's ΔW rows times w0; returns
   * how many rows from i0 on it finished (the next one, if any, is untouched and needs the JS path).
   */
  mora6(src: Mora6Rows, bytes: Uint8Array, i0: number, n: number, o0: number, w0: number): number {
    const { M, cos, sin, rHat, produced } = src.tables();
    const r8 = Math.ceil(rHat / 8) * 8;
    const pBand = 0;
    const pIo = align64(4 * r8);
    const pM = pIo + align64(2 * r8);
    const pCos = pM + align64(4 * rHat * rHat);
    const pSin = pCos + align64(4 * cos.length);
    if (this.loaded !== src) {
      // Zero padding past r̂ in both band buffers: the add/round kernel works in groups of 8 and must see 0 + 0 there.
      new Uint8Array(this.memory.buffer, 0, pM).fill(0);
      new Float32Array(this.memory.buffer, pM, rHat * rHat).set(M.subarray(0, rHat * rHat));
      new Float32Array(this.memory.buffer, pCos, cos.length).set(cos);
      new Float32Array(this.memory.buffer, pSin, sin.length).set(sin);
      this.loaded = src;
    }
    const inF = src.inF;
    return this.k.mora6Slab(bytes.byteOffset + 2 * i0 * inF, n, o0 + i0, inF, rHat, produced, pM, pCos, pSin, pBand, pIo, w0);
  }
}
