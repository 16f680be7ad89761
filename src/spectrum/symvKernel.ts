// The fused lower-triangle symmetric matrix–vector product of the blocked tridiagonalisation, in plain JS: the
// reference arithmetic that the WASM SIMD twin (wasmSymv.ts) reproduces lane by lane, so the two are bit-identical.
//
// Row r's dot with v runs in two chains (even and odd offsets from c0, as the two lanes of an f64x2), while its
// strictly lower part is scattered into acc (acc[j] += A[r, j]·v[r]). Rows go four at a time: four independent dot
// chains share each load of v[j] and one read–modify–write of acc[j], about 1.5× the flops per memory operation of
// pairs. Since every group starts at r ≡ c0 (mod 4) (then at most one pair and one single row follow), the columns
// j in [c0, r) before a group's diagonal block always come in whole pairs, and for the pair and single row too.

/** acc[c0..n) += A₂₂·v for the symmetric A₂₂ = A[c0..n, c0..n] given by its lower triangle (row stride lda). */
export function symvLower(a: Float64Array, lda: number, c0: number, n: number, v: Float64Array, acc: Float64Array): void {
  let r = c0;
  for (; r + 3 < n; r += 4) {
    const o0 = r * lda;
    const o1 = o0 + lda;
    const o2 = o1 + lda;
    const o3 = o2 + lda;
    const v0 = v[r];
    const v1 = v[r + 1];
    const v2 = v[r + 2];
    const v3 = v[r + 3];
    // Chains s_i0 (columns c0, c0 + 2, …) and s_i1 (c0 + 1, …) of row r + i, the first starting at the diagonal.
    let s00 = a[o0 + r] * v0;
    let s01 = 0;
    let s10 = a[o1 + r + 1] * v1;
    let s11 = 0;
    let s20 = a[o2 + r + 2] * v2;
    let s21 = 0;
    let s30 = a[o3 + r + 3] * v3;
    let s31 = 0;
    for (let j = c0; j < r; j += 2) {
      const w0 = v[j];
      const w1 = v[j + 1];
      const x00 = a[o0 + j];
      const x01 = a[o0 + j + 1];
      const x10 = a[o1 + j];
      const x11 = a[o1 + j + 1];
      const x20 = a[o2 + j];
      const x21 = a[o2 + j + 1];
      const x30 = a[o3 + j];
      const x31 = a[o3 + j + 1];
      s00 += x00 * w0;
      s01 += x01 * w1;
      s10 += x10 * w0;
      s11 += x11 * w1;
      s20 += x20 * w0;
      s21 += x21 * w1;
      s30 += x30 * w0;
      s31 += x31 * w1;
      acc[j] += x00 * v0 + x10 * v1 + x20 * v2 + x30 * v3;
      acc[j + 1] += x01 * v0 + x11 * v1 + x21 * v2 + x31 * v3;
    }
    // The strictly lower 4×4 diagonal block y_ik = A[r+i, r+k] (k < i) joins row i's first chain and acc[r+k].
    const y10 = a[o1 + r];
    const y20 = a[o2 + r];
    const y21 = a[o2 + r + 1];
    const y30 = a[o3 + r];
    const y31 = a[o3 + r + 1];
    const y32 = a[o3 + r + 2];
    s10 += y10 * v0;
    s20 += y20 * v0;
    s20 += y21 * v1;
    s30 += y30 * v0;
    s30 += y31 * v1;
    s30 += y32 * v2;
    acc[r] += s00 + s01;
    acc[r] += y10 * v1 + y20 * v2 + y30 * v3;
    acc[r + 1] += s10 + s11;
    acc[r + 1] += y21 * v2 + y31 * v3;
    acc[r + 2] += s20 + s21;
    acc[r + 2] += y32 * v3;
    acc[r + 3] += s30 + s31;
  }
  if (r + 1 < n) {
    // A last pair: both rows share the v loads and one update of acc[j].
    const ro = r * lda;
    const qo = ro + lda;
    const v0 = v[r];
    const v1 = v[r + 1];
    let s00 = a[ro + r] * v0;
    let s01 = 0;
    let s10 = a[qo + r + 1] * v1;
    let s11 = 0;
    for (let j = c0; j < r; j += 2) {
      const x00 = a[ro + j];
      const x01 = a[ro + j + 1];
      const x10 = a[qo + j];
      const x11 = a[qo + j + 1];
      s00 += x00 * v[j];
      s01 += x01 * v[j + 1];
      s10 += x10 * v[j];
      s11 += x11 * v[j + 1];
      acc[j] += x00 * v0 + x10 * v1;
      acc[j + 1] += x01 * v0 + x11 * v1;
    }
    const y = a[qo + r];
    s10 += y * v0;
    acc[r] += s00 + s01;
    acc[r] += y * v1;
    acc[r + 1] += s10 + s11;
    r += 2;
  }
  if (r < n) {
    // A last single row.
    const ro = r * lda;
    const vr = v[r];
    let s0 = a[ro + r] * vr;
    let s1 = 0;
    for (let j = c0; j < r; j += 2) {
      const x0 = a[ro + j];
      const x1 = a[ro + j + 1];
      s0 += x0 * v[j];
      s1 += x1 * v[j + 1];
      acc[j] += x0 * vr;
      acc[j + 1] += x1 * vr;
    }
    acc[r] += s0 + s1;
  }
}
