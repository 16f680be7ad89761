// Deterministic pseudo-random numbers for reproducible randomized SVD, tests and benchmarks.

/** mulberry32: a small, fast 32-bit generator returning uniforms in [0, 1). */
export function mulberry(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One standard normal sample by Box–Muller from a uniform generator. */
export function randn(rnd: () => number): number {
  const u = 1 - rnd(); // (0, 1]: keeps log finite
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
}
