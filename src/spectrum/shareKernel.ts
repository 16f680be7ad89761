// Column compression for the MoRA type 1 spectrum. There σ(ΔW) = σ(diag(√w)·M·C̃) with C̃ an r̂ × nc 0/1-style
// matrix (nc = r̂ + #padded input columns). Any F with F·Fᵀ = C̃·C̃ᵀ gives the same singular values, because
// C̃ = F·Q for some Q with orthonormal rows (the LQ factorisation, up to an orthogonal factor), so
// σ(diag(√w)·M·C̃) = σ(diag(√w)·M·F): an r̂-column SVD instead of an nc-column one. C̃·C̃ᵀ = diag(m) + Σ (Σ e_j)(Σ e_j)ᵀ
// is block-diagonal over the rows that padded columns tie together (pairs, for the LLaMA shapes), so F is a Cholesky
// factor per block: cheap, exact up to rounding, and well conditioned (diagonal ≥ 1 plus small integer couplings).

/** Nonzeros of F by row: F[j, cols[t]] = vals[t]. */
export interface SparseRows {
  cols: Int32Array[];
  vals: Float64Array[];
}

/**
 * F with F·Fᵀ = C̃·C̃ᵀ for C̃ = [√single_j·e_j …, Σ_{j∈rows} e_j …] (r̂ rows), or null when C̃·C̃ᵀ is singular
 * (fewer independent columns than rows) and no r̂-column compression exists.
 */
export function shareColumnFactor(r: number, single: ArrayLike<number>, explicit: number[][]): SparseRows | null {
  // Rows tied by a padded column form one block of C̃·C̃ᵀ: union-find over rows.
  const parent = Int32Array.from({ length: r }, (_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]];
    return i;
  };
  for (const rows of explicit) for (const j of rows) parent[find(j)] = find(rows[0]);
  const members = new Map<number, number[]>();
  for (let j = 0; j < r; j++) {
    const root = find(j);
    const list = members.get(root);
    if (list) list.push(j);
    else members.set(root, [j]);
  }
  const byRoot = new Map<number, number[][]>();
  for (const rows of explicit) {
    const root = find(rows[0]);
    const list = byRoot.get(root);
    if (list) list.push(rows);
    else byRoot.set(root, [rows]);
  }
  const cols: Int32Array[] = new Array(r);
  const vals: Float64Array[] = new Array(r);
  for (const [root, idx] of members) {
    const s = idx.length;
    const pos = new Map(idx.map((j, a) => [j, a]));
    // K = C̃·C̃ᵀ restricted to the block: [s, s]
    const k = new Float64Array(s * s);
    idx.forEach((j, a) => (k[a * s + a] = single[j]));
    for (const rows of byRoot.get(root) ?? []) {
      for (const a of rows) for (const b of rows) k[pos.get(a)! * s + pos.get(b)!] += 1;
    }
    // Cholesky K = L·Lᵀ (lower); a non-positive pivot means C̃ has too few independent columns for this block.
    for (let j = 0; j < s; j++) {
      let dj = k[j * s + j];
      for (let p = 0; p < j; p++) dj -= k[j * s + p] * k[j * s + p];
      if (!(dj > 1e-12 * Math.max(1, k[j * s + j]))) return null;
      const ljj = Math.sqrt(dj);
      k[j * s + j] = ljj;
      for (let i = j + 1; i < s; i++) {
        let x = k[i * s + j];
        for (let p = 0; p < j; p++) x -= k[i * s + p] * k[j * s + p];
        k[i * s + j] = x / ljj;
      }
    }
    idx.forEach((j, a) => {
      const c: number[] = [];
      const v: number[] = [];
      for (let b = 0; b <= a; b++) {
        if (k[a * s + b] !== 0) {
          c.push(idx[b]);
          v.push(k[a * s + b]);
        }
      }
      cols[j] = Int32Array.from(c);
      vals[j] = Float64Array.from(v);
    });
  }
  return { cols, vals };
}

let yBuf = new Float64Array(0);

/**
 * Y = diag(√w_a)·M[a, :]·F for the kept rows a: [rows, r] x [r, r] -> [rows, r], F sparse by row. Y is a view of a
 * buffer this thread reuses (a fresh megabyte each module cost page faults comparable to the arithmetic): read it
 * before the next call.
 */
export function scaledTimesSparse(M: ArrayLike<number>, r: number, rowsKept: number[], w: ArrayLike<number>, f: SparseRows): Float64Array {
  // F by column (CSC, rows ascending within a column), so each y entry is summed in a register and stored once:
  // scattering row by row into y made a read-modify-write chain of 1–2 terms per entry, several times slower. The
  // sum is the same one (from 0, over j ascending, skipping zero M terms), so y has the same bits.
  const ptr = new Int32Array(r + 1);
  for (let j = 0; j < r; j++) for (const col of f.cols[j]) ptr[col + 1]++;
  for (let col = 0; col < r; col++) ptr[col + 1] += ptr[col];
  const rowOf = new Int32Array(ptr[r]);
  const vals = new Float64Array(ptr[r]);
  const fill = ptr.slice(0, r);
  for (let j = 0; j < r; j++) {
    const c = f.cols[j];
    for (let t = 0; t < c.length; t++) {
      rowOf[fill[c[t]]] = j;
      vals[fill[c[t]]++] = f.vals[j][t];
    }
  }
  // Every entry is written below, so a reused buffer needs no zeroing; the caller's SVD copies it before the next call.
  if (yBuf.length < rowsKept.length * r) yBuf = new Float64Array(rowsKept.length * r);
  const y = yBuf.subarray(0, rowsKept.length * r);
  for (let i = 0; i < rowsKept.length; i++) {
    const sw = Math.sqrt(w[rowsKept[i]]);
    const mo = rowsKept[i] * r;
    const yo = i * r;
    for (let col = 0; col < r; col++) {
      let s = 0;
      for (let t = ptr[col]; t < ptr[col + 1]; t++) {
        const mj = sw * M[mo + rowOf[t]];
        if (mj !== 0) s += mj * vals[t];
      }
      y[yo + col] = s;
    }
  }
  return y;
}
