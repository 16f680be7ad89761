// TIES for one merged tensor through the row kernels, without whole float32 copies of sparse task tensors.
//
// The result is tiesCombine's (trim each task to its top-k magnitudes, elect the sign, disjoint mean) bit for bit:
//   - a MoRA type-6 task is zero outside one r̂-wide band per row, so only its band values are kept ("compact", in
//     flat index order) and the zeros are counted, not stored; a dense task (LoRA, MoRA-1) is kept whole as before;
//   - the threshold is magnitudePrune's: the k-th largest |x| by a two-pass radix select over the float32 bit
//     patterns (zeros counted into bucket 0), and of the values equal to it the first `budget` in index order stay.
//     That rule is stored as a cut index: values before it stay when |x| ≥ thr, values from it on when |x| > thr;
//   - the combination is tiesRow's arithmetic (same float64 sums in the same order), whose results do not depend on
//     the sign of a trimmed zero, so trimming to +0 and never storing a sparse task's zeros change nothing;
//   - where a single sparse task makes the row, the columns outside its band are +0 + base, which RowCodec.pass does
//     on the raw bytes (as the linear merge's sparse path does).
// Extra memory per tensor: one float32 copy per dense task (as before), about r̂/in of one per sparse task.
import type { RowCodec } from './mergeCodec';
import { tiesRow, type DeltaRows } from './mergeKernels';
import { mergeWasm } from './mergeWasm';
import { maxWasmTasks, TiesWasm } from './tiesWasm';

/** One task's ΔW values in flat index order, and how to find a row of them. */
export interface TiesTask {
  readonly values: Float32Array; // dense: [out·in]; sparse: each row's band columns, wrapped part first
  /** Sparse only: per row o, values[start[o] .. start[o + 1]) are columns [0, wrap[o]) then [s[o], e[o]). */
  readonly band?: { start: Int32Array; s: Int32Array; e: Int32Array; wrap: Int32Array };
}

/** The task's ΔW, compact when every row's touched columns leave part of the row out, else whole. */
export function tiesTask(rows: DeltaRows): TiesTask {
  const { inF, outF } = rows;
  const n = outF * inF;
  if (rows.touched && outF > 0) {
    const start = new Int32Array(outF + 1);
    const s = new Int32Array(outF);
    const e = new Int32Array(outF);
    const wrap = new Int32Array(outF);
    let sparse = true;
    for (let o = 0; o < outF && sparse; o++) {
      [s[o], e[o], wrap[o]] = rows.touched(o);
      sparse = e[o] - s[o] + wrap[o] < inF;
      start[o + 1] = start[o] + wrap[o] + e[o] - s[o];
    }
    if (sparse) {
      const values = new Float32Array(start[outF]);
      for (let o = 0; o < outF; o++) {
        const row = rows.row(o);
        values.set(row.subarray(0, wrap[o]), start[o]);
        values.set(row.subarray(s[o], e[o]), start[o] + wrap[o]);
      }
      return { values, band: { start, s, e, wrap } };
    }
  }
  const values = new Float32Array(n);
  for (let o = 0; o < outF; o++) values.set(rows.row(o), o * inF);
  return { values };
}

/**
 * magnitudePrune's decision as (thr, cut): entry i of `bits` (|x| bits a) stays iff a ≥ thr for i < cut, a > thr
 * from cut on, with k = floor(density·n) of the task's n entries staying (1 ≤ k < n). A sparse task's entries not
 * in `bits` are zeros, the smallest magnitudes: they are reached only when the scans below run down to bucket 0,
 * which gives thr = 0, and thr = 0 keeps everything (trimming a zero changes nothing), so they need no counting.
 * `tw` runs the two histogram passes in WASM.
 */
export function tiesThreshold(bits: Uint32Array, k: number, tw?: TiesWasm): { thr: number; cut: number } {
  const hist = new Uint32Array(65536);
  if (tw) tw.histogram(bits, hist, -1);
  else for (let i = 0; i < bits.length; i++) hist[(bits[i] & 0x7fffffff) >>> 16]++;
  let remaining = k;
  let hi = 65535;
  for (; hi > 0; hi--) {
    if (hist[hi] >= remaining) break;
    remaining -= hist[hi];
  }
  if (tw) tw.histogram(bits, hist, hi);
  else {
    hist.fill(0);
    for (let i = 0; i < bits.length; i++) {
      const a = bits[i] & 0x7fffffff;
      if (a >>> 16 === hi) hist[a & 0xffff]++;
    }
  }
  let lo = 65535;
  for (; lo > 0; lo--) {
    if (hist[lo] >= remaining) break;
    remaining -= hist[lo];
  }
  const thr = ((hi << 16) | lo) >>> 0;
  // `remaining` of the hist[lo] entries equal to thr stay, the first ones in index order (all stored when thr > 0).
  if (thr === 0 || remaining >= hist[lo]) return { thr, cut: bits.length };
  let cut = 0;
  for (let seen = 0; seen < remaining; cut++) seen += +((bits[cut] & 0x7fffffff) === thr);
  return { thr, cut };
}

/** bits[from, to) = +0 where the magnitude bits are < t, in place (branch-free: signs are random). */
export function trimRange(bits: Uint32Array, from: number, to: number, t: number): void {
  for (let i = from; i < to; i++) {
    const b = bits[i];
    bits[i] = b & -+((b & 0x7fffffff) >= t);
  }
}

/**
 * Trims the task in place to the k = floor(density·n) largest magnitudes of its n entries, with magnitudePrune's
 * choice among equal magnitudes (density in [0, 1]).
 */
export function trimTask(task: TiesTask, n: number, density: number, tw?: TiesWasm): void {
  if (density >= 1) return;
  const k = Math.floor(density * n);
  const bits = new Uint32Array(task.values.buffer, task.values.byteOffset, task.values.length);
  if (k === 0) {
    bits.fill(0);
    return;
  }
  const { thr, cut } = tiesThreshold(bits, k, tw);
  if (thr === 0) return;
  const trim = tw ? tw.trim.bind(tw) : trimRange;
  trim(bits, 0, cut, thr);
  trim(bits, cut, bits.length, thr + 1);
}

/** Row o of a trimmed task as a full row: a view of a dense task, or a sparse one's band written into `scratch`. */
function fullRow(task: TiesTask, o: number, inF: number, scratch: Float32Array, last: Int32Array, t: number): Float32Array {
  const b = task.band;
  if (!b) return task.values.subarray(o * inF, (o + 1) * inF);
  // Clear the previous row's band (the rest of the scratch is zero), then write this one's.
  const p = last[t];
  if (p >= 0) {
    scratch.fill(0, 0, b.wrap[p]);
    scratch.fill(0, b.s[p], b.e[p]);
  }
  last[t] = o;
  const at = b.start[o];
  scratch.set(task.values.subarray(at, at + b.wrap[o]), 0);
  scratch.set(task.values.subarray(at + b.wrap[o], b.start[o + 1]), b.s[o]);
  return scratch;
}

/**
 * The TIES merge of the tasks' rows (one per contributing adapter, weights alike) into the codec, row by row.
 * density in [0, 1] (the plan checked it). The codec's output holds the merged tensor afterwards.
 */
export function mergeTiesRows(rows: DeltaRows[], weights: number[], density: number, codec: RowCodec): void {
  const { inF, outF } = rows[0];
  const K = rows.length;
  const tasks = rows.map(tiesTask);
  const only = K === 1 && codec.canPass ? tasks[0].band : undefined;
  if (only) codec.scanForPass(); // before the arena regions below: it allocates its own
  const wasm = mergeWasm();
  const tw = wasm && new TiesWasm(wasm, Math.min(K, maxWasmTasks), inF);
  for (const task of tasks) trimTask(task, outF * inF, density, tw);
  const last = new Int32Array(K).fill(-1);
  if (K === 1) {
    // One task: each result depends on its own value only (+0 for a zero), so map the values in place first.
    const { values, band } = tasks[0];
    if (tw) tw.map1(values, weights[0]);
    else tiesRow([values], weights, 0, values.length, values);
    const scratch = band && !only ? new Float32Array(inF) : values;
    for (let o = 0; o < outF; o++) {
      const at = o * inF;
      if (!band) {
        codec.finish(values, at, at, inF);
        continue;
      }
      if (!only) {
        // No pass-through (a dtype change): the band is expanded to a full row (zeros are +0 after the map too).
        codec.finish(fullRow(tasks[0], o, inF, scratch, last, 0), 0, at, inF);
        continue;
      }
      // Outside the band the result's ΔW is +0: the base passes through.
      const from = only.start[o];
      const wrap = only.wrap[o], s = only.s[o], e = only.e[o];
      if (wrap > 0) codec.finish(values, from, at, wrap);
      codec.pass(at + wrap, s - wrap, true);
      codec.finish(values, from + wrap, at + s, e - s);
      codec.pass(at + e, inF - e, true);
    }
    return;
  }
  const useWasm = tw !== undefined && K <= maxWasmTasks;
  const acc = new Float32Array(inF);
  const scratch = tasks.map((t) => (t.band && !useWasm ? new Float32Array(inF) : acc));
  const full: Float32Array[] = new Array(K);
  for (let o = 0; o < outF; o++) {
    const at = o * inF;
    if (useWasm) {
      for (let t = 0; t < K; t++) {
        const slot = tw.row(t);
        if (tasks[t].band) fullRow(tasks[t], o, inF, slot, last, t);
        else slot.set(tasks[t].values.subarray(at, at + inF));
      }
      codec.finish(tw.combine(weights, inF), 0, at, inF);
      continue;
    }
    for (let t = 0; t < K; t++) full[t] = fullRow(tasks[t], o, inF, scratch[t], last, t);
    tiesRow(full, weights, 0, inF, acc);
    codec.finish(acc, 0, at, inF);
  }
}
