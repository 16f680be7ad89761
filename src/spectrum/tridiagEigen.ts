// Eigenvalues of a symmetric tridiagonal matrix by the root-free QL/QR iteration of Pal, Walker and Kahan (the method
// of LAPACK dsterf). It runs on the squared off-diagonals e_i², so the inner loop has one division pair and no square
// root per element, where the QL in linalg.ts needs a √(x² + y²) and two divisions: about 2× faster on the Gram
// tridiagonals of the MoRA coupled blocks (616 values). Used for eigenvalues only; the Golub–Kahan fallback of the
// bidiagonal SVD keeps the QL, whose absolute deflation test handles its zero diagonal.
//
// The sweep is a latency chain through p and γ. Written as dsterf does, each element waits for two divisions in a
// row (c = p/r, then p' = γ²/c); here one reciprocal 1/(r·p) gives c, s, γ and p' by multiplications (γ = N·p/(r·p),
// p' = N²/(r·p) with N = p·(α − σ) − e²·γ_old = r·γ), which makes the Gram tridiagonals' eigenvalues about 30% faster.
// The products reach the sixth power of the entries, so every block is scaled to a largest entry near 1, and an
// element whose r·p leaves [1e−280, 1e280] (p = 0 included) takes dsterf's formulas instead.
//
// Accuracy is the same as that QL: absolute, about eps·‖T‖ per eigenvalue (both deflate on a relative test next to
// the neighbouring diagonals or an absolute one next to ‖T‖; the eigenvalues of a tridiagonal reduced from a dense
// matrix carry that absolute error anyway).

const EPS = 2.220446049250313e-16;
const EPS2 = EPS * EPS;
/** The one-reciprocal sweep runs while r·p lies inside [RP_MIN, RP_MAX], so N² and 1/(r·p) stay finite and normal. */
const RP_MIN = 1e-280;
const RP_MAX = 1e280;
/** Iterations per eigenvalue before giving up (LAPACK uses 30). */
const MAX_IT = 30;

/** Eigenvalues of [[a, b], [b, c]] (LAPACK dlae2): [larger, smaller]. */
export function eig2(a: number, b: number, c: number): [number, number] {
  const sm = a + c;
  const df = a - c;
  const adf = Math.abs(df);
  const tb = b + b;
  const ab = Math.abs(tb);
  const [acmx, acmn] = Math.abs(a) > Math.abs(c) ? [a, c] : [c, a];
  // rt = √(df² + 4b²) without overflow.
  const rt = adf > ab ? adf * Math.sqrt(1 + (ab / adf) ** 2) : adf < ab ? ab * Math.sqrt(1 + (adf / ab) ** 2) : ab * Math.SQRT2;
  if (sm < 0) {
    const rt2 = 0.5 * (sm - rt);
    // The other root from the product of the roots, avoiding cancellation.
    return [rt2 === 0 ? 0.5 * (sm + rt) : (acmx / rt2) * acmn - (b / rt2) * b, rt2];
  }
  if (sm > 0) {
    const rt1 = 0.5 * (sm + rt);
    return [rt1, (acmx / rt1) * acmn - (b / rt1) * b];
  }
  return [0.5 * rt, -0.5 * rt];
}

/**
 * Eigenvalues of the symmetric tridiagonal matrix with diagonal d (n) and off-diagonal e (n − 1), descending.
 * Inputs are not modified. Returns null when the iteration does not converge (30 iterations per value on average),
 * so callers can fall back to the QL with square roots.
 */
export function tridiagonalEigenvaluesPwk(dIn: ArrayLike<number>, eIn: ArrayLike<number>): Float64Array | null {
  const n = dIn.length;
  const d = Float64Array.from(dIn);
  if (n <= 1) return d;
  const e = new Float64Array(n); // e[i] couples i and i + 1; squared per block below
  for (let i = 0; i < n - 1; i++) e[i] = eIn[i];
  let anorm = 0;
  for (let i = 0; i < n; i++) anorm = Math.max(anorm, Math.abs(d[i]) + Math.abs(e[i]) + (i > 0 ? Math.abs(e[i - 1]) : 0));
  // The absolute deflation test of linalg.ts's QL: |e| ≤ eps·‖T‖ (squared inside a scaled block below; an
  // overflow to Infinity there only says that the whole block lies below that bound, which is then true).
  const absTol = EPS * anorm;
  const maxIt = MAX_IT * n;
  let jtot = 0;
  let l1 = 0;
  while (l1 < n) {
    if (l1 > 0) e[l1 - 1] = 0;
    // Split off the unreduced block [l1, m] (relative test on the unsquared values).
    let m = l1;
    for (; m < n - 1; m++) {
      const em = Math.abs(e[m]);
      if (em <= Math.sqrt(Math.abs(d[m])) * Math.sqrt(Math.abs(d[m + 1])) * EPS || em <= absTol) {
        e[m] = 0;
        break;
      }
    }
    const lsv = l1;
    const lendsv = m;
    l1 = m + 1;
    if (m === lsv) continue;
    let bmax = 0;
    for (let i = lsv; i <= lendsv; i++) bmax = Math.max(bmax, Math.abs(d[i]), i < lendsv ? Math.abs(e[i]) : 0);
    if (bmax === 0) continue;
    // Scale to a largest entry near 1 (LAPACK's ssfmin/ssfmax play a looser version of this role), so e² and the
    // sweep's products up to N² neither overflow nor underflow. A power of two, so scaling is exact. Below 2^−1023.5
    // (a subnormal bmax) 2^k itself overflows: it is then applied as 2^1000 times the rest.
    const k = -Math.round(Math.log2(bmax));
    const pre = k > 1023 ? 2 ** 1000 : 1;
    const scale = 2 ** (k > 1023 ? k - 1000 : k);
    for (let i = lsv; i <= lendsv; i++) {
      d[i] = d[i] * pre * scale;
      if (i < lendsv) e[i] = (e[i] * pre * scale) ** 2;
    }
    const a2 = (absTol * pre * scale) ** 2;
    // The iteration converges at the end it starts from, so it should start at the smaller one: QL when that is the
    // top, QR otherwise. QR on a block is QL on the block reversed, operation for operation, so a block whose small
    // end is at the bottom is reversed in place (its eigenvalues do not care) and takes the same QL.
    if (Math.abs(d[lendsv]) < Math.abs(d[lsv])) reverseBlock(d, e, lsv, lendsv);
    const ok = qlBlock(d, e, lsv, lendsv, a2, maxIt - jtot);
    if (ok < 0) return null;
    jtot += ok;
    if (k !== 0) for (let i = lsv; i <= lendsv; i++) d[i] = d[i] / scale / pre;
  }
  return d.sort().reverse();
}

/**
 * The shift of one sweep: the eigenvalue of the end 2×2 [[p0, √e2], [√e2, next]] closer to p0 (dsterf's σ), where
 * p0 is the diagonal the sweep converges at, e2 its squared coupling and next the diagonal beside it.
 */
function shift(p0: number, e2: number, next: number): number {
  const rte = Math.sqrt(e2);
  const sg = (next - p0) / (2 * rte);
  const r0 = Math.hypot(sg, 1);
  return p0 - rte / (sg + (sg >= 0 ? r0 : -r0));
}

/** The deflation test: is the squared coupling e2 of the neighbours dk, dk1 negligible? */
function negligible(e2: number, dk: number, dk1: number, abs2: number): boolean {
  return Math.abs(e2) <= EPS2 * Math.abs(dk * dk1) || e2 <= abs2;
}

// The deflation scan before each sweep (dsterf's: from the converging end towards the other, up to the first
// negligible coupling) used to cost a third as much as the sweeps themselves, reading every element the sweep had just
// written. The sweep now applies the same test to each coupling it finishes and records the ones that pass (rarely any)
// in `hits`, ordered towards the converging end; the next scan is then the last hit, or when there is none a scan that
// starts at the sweep's far end, where the coupling is already zero. A deflation changes only couplings beyond the new
// end, so hits past it are dropped and the rest stay exact. Same tests on the same values: the same m every time.

/** QL on rows l..lend (l < lend) of d and the squared e; returns the iterations used, or −1 past `budget`. */
function qlBlock(d: Float64Array, e: Float64Array, l: number, lend: number, abs2: number, budget: number): number {
  let it = 0;
  const hits = new Int32Array(lend - l + 1); // decreasing row indices k with negligible(e[k], d[k], d[k + 1])
  let nh = 0;
  let from = l; // no hit before `from` is recorded: scan on from there
  while (l <= lend) {
    while (nh > 0 && hits[nh - 1] < l) nh--;
    let m = nh > 0 ? hits[nh - 1] : Math.max(from, l);
    if (nh === 0) for (; m < lend; m++) if (negligible(e[m], d[m], d[m + 1], abs2)) break;
    if (m < lend) e[m] = 0;
    if (m === l) {
      l++; // d[l] converged
      continue;
    }
    if (m === l + 1) {
      [d[l], d[l + 1]] = eig2(d[l], Math.sqrt(e[l]), d[l + 1]);
      e[l] = 0;
      l += 2;
      continue;
    }
    if (++it > budget) return -1;
    // Wilkinson-style shift from the leading 2×2, then one root-free sweep from m up to l.
    const sg = shift(d[l], e[l], d[l + 1]);
    let c = 1;
    let s = 0;
    let gamma = d[m] - sg;
    let p = gamma * gamma;
    let dLast = 0; // d[i + 2], written by the previous step
    nh = 0;
    from = m;
    for (let i = m - 1; i >= l; i--) {
      const bb = e[i];
      const r = p + bb;
      const eNew = s * r;
      if (i !== m - 1) e[i + 1] = eNew;
      const alpha = d[i];
      const rp = r * p;
      let dNew: number;
      if (rp > RP_MIN && rp < RP_MAX) {
        // c = p/r, s = e²/r, γ = N/r and p' = γ²/c = N²/(r·p), all from one reciprocal.
        const inv = 1 / rp;
        const pinv = p * inv;
        c = p * pinv;
        s = bb * pinv;
        const nn = p * (alpha - sg) - bb * gamma;
        const g = nn * pinv;
        dNew = gamma + (alpha - g);
        gamma = g;
        p = nn * nn * inv;
      } else {
        // dsterf's form, which also covers p = 0 (c = 0: p' = c_old·e²).
        const oldc = c;
        c = p / r;
        s = bb / r;
        const oldgam = gamma;
        gamma = c * (alpha - sg) - s * oldgam;
        dNew = oldgam + (alpha - gamma);
        p = c !== 0 ? (gamma * gamma) / c : oldc * bb;
      }
      d[i + 1] = dNew;
      if (i !== m - 1 && negligible(eNew, dNew, dLast, abs2)) hits[nh++] = i + 1;
      dLast = dNew;
    }
    e[l] = s * p;
    d[l] = sg + gamma;
    if (negligible(e[l], d[l], dLast, abs2)) hits[nh++] = l;
  }
  return it;
}

/** Reverses rows l..lend of d and their couplings e[l..lend − 1]: the same matrix, seen from the other end. */
function reverseBlock(d: Float64Array, e: Float64Array, l: number, lend: number): void {
  d.subarray(l, lend + 1).reverse();
  e.subarray(l, lend).reverse();
}
