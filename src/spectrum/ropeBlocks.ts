// Bookkeeping of the MoRA type 6 spectrum (moraSpectrum.ts): the row weights of each r̂-row chunk of the core, the
// grouping of chunks that padding couples, the Gram blocks of a chunk with a tiling boundary and of a coupled group,
// and the merge of the per-block σ lists. Everything here is arithmetic on indices and counts: the row weights follow
// one formula, so no per-row arrays or string keys are built to classify a chunk.

import { gramSigma, rotateScatter, scratch, weightedGram } from './gramBlock';

/**
 * Row weights of the core for type 6. Output row o reads core row o mod L (L = chunks·r̂), so core row p is read
 * w_p = ⌊out/L⌋ + (p < out mod L) times: every row weighs `base`, plus one below `boundary`. Chunk c (rows c·r̂ …
 * c·r̂ + r̂ − 1) therefore has its first high(c) rows at base + 1 and the rest at base; only the one chunk that the
 * boundary falls strictly inside has two weights.
 */
export class ChunkWeights {
  readonly base: number;
  readonly boundary: number;

  constructor(
    readonly r: number,
    outF: number,
    L: number,
  ) {
    this.base = Math.floor(outF / L);
    this.boundary = outF % L;
  }

  /** How many leading rows of chunk c weigh base + 1. */
  high(c: number): number {
    return Math.min(this.r, Math.max(0, this.boundary - c * this.r));
  }

  /** The weight every row of chunk c has, or −1 when the boundary splits the chunk. */
  constant(c: number): number {
    const k = this.high(c);
    return k === 0 ? this.base : k === this.r ? this.base + 1 : -1;
  }

  /** How many rows of chunk c some output reads (weight > 0). */
  positive(c: number): number {
    return this.base > 0 ? this.r : this.high(c);
  }

  /** The r̂ weights of chunk c: [r̂]. */
  rows(c: number): Float64Array {
    const w = new Float64Array(this.r).fill(this.base);
    w.fill(this.base + 1, 0, this.high(c));
    return w;
  }
}

/**
 * Chunks that share an input column through padding, as lists (ascending) in order of each group's first chunk,
 * keeping only chunks with some row an output reads (truncation drops whole chunks and may leave one alone).
 */
export function chunkGroups(chunks: number, r: number, inF: number, wts: ChunkWeights): number[][] {
  // Union-find over chunks: padded position p (≥ in) lies in chunk ⌊p/r̂⌋ and reads column p mod in.
  const parent = new Int32Array(chunks);
  for (let i = 0; i < chunks; i++) parent[i] = i;
  const find = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]];
    return i;
  };
  for (let p = inF; p < chunks * r; p++) {
    const a = find(Math.floor(p / r));
    const b = find(Math.floor((p % inF) / r));
    if (a !== b) parent[a] = b;
  }
  const slot = new Int32Array(chunks).fill(-1);
  const groups: number[][] = [];
  for (let c = 0; c < chunks; c++) {
    const root = find(c);
    if (slot[root] < 0) {
      slot[root] = groups.length;
      groups.push([]);
    }
    if (wts.positive(c) > 0) groups[slot[root]].push(c);
  }
  return groups.filter((m) => m.length > 0);
}

/** MᵀM, the Gram of every constant weighting (scaled), computed once per module. */
export interface GramCache {
  plain: Float64Array | null;
}

export function plainGram(M: ArrayLike<number>, r: number, grams: GramCache): Float64Array {
  grams.plain ??= weightedGram(M, r, new Float64Array(r).fill(1));
  return grams.plain;
}

/**
 * Mᵀ diag(w) M for the chunk with the tiling boundary, as base·MᵀM (the shared plain Gram) plus the Gram of its
 * high(c) leading rows, the ones weighted base + 1: a k·r̂² update instead of an r̂³ product, and every term positive
 * (no cancellation). weightedGram reads only the first k rows of M. Lower triangle only: gramSigma reads no more.
 */
export function chunkGram(M: ArrayLike<number>, r: number, wts: ChunkWeights, c: number, grams: GramCache): Float64Array {
  const k = wts.high(c);
  const g = weightedGram(M, r, new Float64Array(k).fill(1), k, true);
  if (wts.base > 0) {
    const plain = plainGram(M, r, grams);
    for (let i = 0; i < r; i++) for (let j = i * r; j <= i * r + i; j++) g[j] += wts.base * plain[j];
  }
  return g;
}

/** diag(√w)·M restricted to the rows of chunk c that some output reads: [positive(c), r̂]. */
export function weightedRows(M: ArrayLike<number>, r: number, wts: ChunkWeights, c: number): Float64Array {
  const n = wts.positive(c);
  const k = wts.high(c);
  const y = new Float64Array(n * r);
  for (let a = 0; a < n; a++) {
    const s = Math.sqrt(a < k ? wts.base + 1 : wts.base);
    for (let j = 0; j < r; j++) y[a * r + j] = s * M[a * r + j];
  }
  return y;
}

/**
 * σ of the rows of diag(√w)·K·P that belong to `members` (chunks coupled through padding or wrapping), from the
 * column Gram matrix Σ_c P_cᵀ R_cᵀ (Mᵀ diag(w_c) M) R_c P_c of the small factors: one r̂³ product per distinct row
 * weighting instead of an SVD of the (chunks·r̂)-row block. Squaring costs accuracy: σ below about
 * sqrt(n·eps)·σ_max are not resolved (reported as `tolerance`).
 */
export function coupledBlock(
  M: ArrayLike<number>,
  r: number,
  inF: number,
  members: number[],
  wts: ChunkWeights,
  cos: Float32Array,
  sin: Float32Array,
  grams: GramCache,
): { sigma: Float64Array; tolerance: number } {
  // H's columns are the distinct input columns in first-seen order over (chunk, row): a permuted H would round
  // differently in the reduction, so the order is part of the result.
  const colIndex = new Int32Array(inF).fill(-1);
  const idx: Int32Array[] = [];
  let nc = 0;
  let rows = 0;
  for (const c of members) {
    const ix = new Int32Array(r);
    for (let l = 0; l < r; l++) {
      const col = (c * r + l) % inF;
      if (colIndex[col] < 0) colIndex[col] = nc++;
      ix[l] = colIndex[col];
    }
    idx.push(ix);
    rows += wts.positive(c);
  }
  const H = scratch(nc * nc);
  const g = new Float64Array(r * r);
  for (let m = 0; m < members.length; m++) {
    const c = members[m];
    const w = wts.constant(c);
    if (w === 0) continue;
    // A constant weighting w is w times the plain Gram MᵀM: one product serves every such chunk, scaled as it is
    // added to H; the boundary chunk (at most one per module) gets its own product.
    g.set(w > 0 ? plainGram(M, r, grams) : weightedGram(M, r, wts.rows(c)));
    // G = R_cᵀ (Mᵀ W M) R_c: the rotation mixes index pairs (j, j + h) on both sides.
    rotateScatter(H, nc, g, r, r / 2, c, cos, sin, idx[m], w > 0 ? w : 1);
  }
  return gramSigma(H, nc, rows);
}

/** A descending σ list that occurs `count` times in the module's spectrum. */
export interface SigmaPart {
  s: Float64Array;
  count: number;
}

/**
 * All parts' values, descending: a merge of the already-sorted lists (copies written `count` times) instead of a
 * sort of the whole spectrum. Where a list is not descending, or holds NaN or −0 (whose place a typed-array sort
 * decides by its own rules), it concatenates and sorts, so the result is always what sort().reverse() gives.
 */
export function mergeDescending(parts: SigmaPart[]): Float64Array {
  let total = 0;
  for (const p of parts) total += p.s.length * p.count;
  const out = new Float64Array(total);
  if (!parts.every((p) => isPlainDescending(p.s))) {
    let o = 0;
    for (const p of parts) for (let t = 0; t < p.count; t++, o += p.s.length) out.set(p.s, o);
    return out.sort().reverse();
  }
  const pos = new Int32Array(parts.length);
  for (let o = 0; o < total; ) {
    let best = -1;
    let v = 0;
    for (let q = 0; q < parts.length; q++) {
      const s = parts[q].s;
      if (pos[q] < s.length && (best < 0 || s[pos[q]] > v)) {
        best = q;
        v = s[pos[q]];
      }
    }
    pos[best]++;
    for (let t = parts[best].count; t > 0; t--) out[o++] = v;
  }
  return out;
}

function isPlainDescending(s: Float64Array): boolean {
  for (let i = 0; i < s.length; i++) {
    const x = s[i];
    if (x !== x || (x === 0 && 1 / x < 0) || (i > 0 && s[i - 1] < x)) return false;
  }
  return true;
}
