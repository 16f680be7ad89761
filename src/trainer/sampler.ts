// Deterministic batching: the examples of micro-batch g are a pure function of (seed, g). Every epoch is a fresh
// seeded permutation, so a resumed run only needs the step number to see exactly the data the original run would
// have seen next — no iterator state has to be saved.
import { Rng, mixSeed } from './rng';
import { IGNORE, type Example } from './data';

export interface Batch {
  /** [B, T] row-major token ids, padded with padId. */
  ids: Int32Array;
  /** [B, T] row-major targets, -100 on padding and prompt positions. */
  labels: Int32Array;
  batch: number;
  seqLen: number;
  /** Positions that carry loss (for tokens/s). */
  lossTokens: number;
}

export class BatchSampler {
  /** Fixed padded length for the whole run: equal shapes let the backend reuse compiled kernels. */
  readonly seqLen: number;
  private perms = new Map<number, number[]>();

  constructor(
    readonly examples: Example[],
    readonly batchSize: number,
    readonly seed: number,
    readonly padId: number,
    maxSeq: number,
  ) {
    if (examples.length === 0) throw new Error('BatchSampler: no examples');
    this.seqLen = Math.min(maxSeq, Math.max(...examples.map((e) => e.ids.length)));
  }

  /** The permutation of example indices for one epoch (cached; only the last two are kept). */
  private permutation(epoch: number): number[] {
    let p = this.perms.get(epoch);
    if (!p) {
      p = new Rng(mixSeed(this.seed, epoch)).shuffle(Array.from({ length: this.examples.length }, (_, i) => i));
      this.perms.set(epoch, p);
      for (const k of this.perms.keys()) if (k < epoch - 1) this.perms.delete(k);
    }
    return p;
  }

  /** The example indices of micro-batch g. */
  indices(g: number): number[] {
    const n = this.examples.length;
    const out: number[] = [];
    for (let i = 0; i < this.batchSize; i++) {
      const pos = g * this.batchSize + i;
      out.push(this.permutation(Math.floor(pos / n))[pos % n]);
    }
    return out;
  }

  /** Builds micro-batch g. */
  batch(g: number): Batch {
    const B = this.batchSize;
    const T = this.seqLen;
    const ids = new Int32Array(B * T).fill(this.padId);
    const labels = new Int32Array(B * T).fill(IGNORE);
    let lossTokens = 0;
    this.indices(g).forEach((ex, b) => {
      const e = this.examples[ex];
      const L = Math.min(T, e.ids.length);
      for (let t = 0; t < L; t++) {
        ids[b * T + t] = e.ids[t];
        labels[b * T + t] = e.labels[t];
        if (e.labels[t] !== IGNORE) lossTokens++;
      }
    });
    return { ids, labels, batch: B, seqLen: T, lossTokens };
  }
}
