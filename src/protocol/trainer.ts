// The host↔trainer boundary: the extension host (or the CLI) forks dist/trainer.js and talks to it over Node IPC.
// Every message is `area/verb`; the comment on each says which way it travels.

/** Which TensorFlow.js backend to use; 'auto' walks the ladder tfjs-node-gpu → tfjs-node → webgpu → wasm → cpu. */
export type BackendChoice = 'auto' | 'tfjs-node-gpu' | 'tfjs-node' | 'webgpu' | 'wasm' | 'cpu';
export const backendChoices: readonly BackendChoice[] = ['auto', 'tfjs-node-gpu', 'tfjs-node', 'webgpu', 'wasm', 'cpu'];

export type AdapterMethod = 'mora' | 'lora';

/** Everything one training run needs; the CLI flags and the extension's form both produce this. */
export interface TrainConfig {
  /** Hugging Face model folder (config.json, *.safetensors, tokenizer.json). */
  model: string;
  /** A .jsonl / .txt file, or `uuid:N` for the built-in UUID memorization task. */
  data: string;
  method: AdapterMethod;
  /** MoRA operator pair: 1 = sharing (Eq. 6), 6 = RoPE rotation (Eq. 9). Ignored for LoRA. */
  moraType: 1 | 6;
  /** LoRA rank; for MoRA the r used to derive r̂ = floor(sqrt((in+out)·r) + 0.5). */
  r: number;
  /** LoRA alpha (scaling alpha/r); MoRA uses scaling 1. */
  alpha: number;
  /** PEFT target_modules: suffix names, a regex string, or "all-linear". */
  targets: string[] | string;
  steps: number;
  lr: number;
  warmupSteps: number;
  schedule: 'cosine' | 'linear' | 'constant';
  weightDecay: number;
  /** Global gradient-norm clip; 0 disables. */
  clip: number;
  batch: number;
  gradAccum: number;
  seq: number;
  seed: number;
  /** Output adapter folder; checkpoints go to <out>/checkpoint-<step>. */
  out: string;
  /** Save a checkpoint every N optimizer steps; 0 saves only at the end. */
  checkpointEvery: number;
  /** A checkpoint folder to continue from (adapter weights and optimizer state). */
  resume?: string;
  backend: BackendChoice;
  skipBadLines: boolean;
}

/** host → trainer */
export type HostToTrainer =
  | { type: 'train/start'; config: TrainConfig } // host → trainer: begin a run
  | { type: 'train/cancel' }; // host → trainer: stop after the current step, save, then report train/done

/** trainer → host */
export type TrainerToHost =
  | { type: 'train/ready'; backend: string; notes: string[] } // trainer → host: backend chosen; one line per skipped rung
  | {
      // trainer → host: throttled to at most 4 per second
      type: 'train/progress';
      step: number;
      totalSteps: number;
      loss: number;
      lr: number;
      tokensPerSec: number;
      etaSec: number;
      backend: string;
      memoryMb: number;
    }
  | { type: 'train/log'; level: 'info' | 'warn' | 'error'; message: string } // trainer → host
  | { type: 'train/checkpoint'; step: number; dir: string } // trainer → host: a checkpoint folder is complete on disk
  | {
      // trainer → host: the run ended normally or by cancel; the adapter is in outDir
      type: 'train/done';
      outDir: string;
      steps: number;
      finalLoss: number;
      cancelled: boolean;
      metricsFile: string;
    }
  | { type: 'train/error'; name: string; kind?: string; message: string; stack?: string }; // trainer → host: fatal

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Validates a message arriving at the trainer; anything else is ignored with a log line. */
export function isHostToTrainer(x: unknown): x is HostToTrainer {
  if (!isObject(x)) return false;
  if (x.type === 'train/cancel') return true;
  return x.type === 'train/start' && isObject(x.config) && typeof x.config.model === 'string' && typeof x.config.out === 'string';
}

/** Validates a message arriving at the host from the child process. */
export function isTrainerToHost(x: unknown): x is TrainerToHost {
  if (!isObject(x) || typeof x.type !== 'string') return false;
  switch (x.type) {
    case 'train/ready':
      return typeof x.backend === 'string' && Array.isArray(x.notes);
    case 'train/progress':
      return typeof x.step === 'number' && typeof x.loss === 'number' && typeof x.totalSteps === 'number';
    case 'train/log':
      return typeof x.message === 'string' && (x.level === 'info' || x.level === 'warn' || x.level === 'error');
    case 'train/checkpoint':
      return typeof x.step === 'number' && typeof x.dir === 'string';
    case 'train/done':
      return typeof x.outDir === 'string' && typeof x.cancelled === 'boolean';
    case 'train/error':
      return typeof x.message === 'string' && typeof x.name === 'string';
    default:
      return false;
  }
}
