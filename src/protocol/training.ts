// The host↔training-webview boundary. The panel shows one run at a time: the host sends a snapshot on
// `training/init` (also after the webview is revived or re-focused) and then streams points and status.
// Every message is `area/verb`; the comment on each says which way it travels.

export type RunState = 'starting' | 'running' | 'done' | 'cancelled' | 'failed';
export const runStates: readonly RunState[] = ['starting', 'running', 'done', 'cancelled', 'failed'];

/** One point of the live curves. */
export interface ProgressPoint {
  step: number;
  loss: number;
  lr: number;
  tokensPerSec: number;
  etaSec: number;
  memoryMb: number;
}

/** What the panel header shows about the run. */
export interface RunSummary {
  id: string;
  model: string;
  data: string;
  method: 'mora' | 'lora';
  moraType: 1 | 6;
  r: number;
  totalSteps: number;
  out: string;
  backend: string;
  state: RunState;
  /** Final or error message, when the run has ended. */
  message?: string;
}

/** host → webview */
export type HostToTraining =
  | { type: 'training/init'; run: RunSummary | null; points: ProgressPoint[]; logs: string[] } // host → webview: full snapshot
  | { type: 'training/progress'; point: ProgressPoint; totalSteps: number; backend: string } // host → webview: ≤ 4 per second
  | { type: 'training/status'; run: RunSummary } // host → webview: state or backend changed
  | { type: 'training/log'; line: string }; // host → webview: one Output channel line

/** webview → host */
export type TrainingToHost =
  | { type: 'training/ready' } // webview → host: script loaded, send the snapshot
  | { type: 'training/cancel'; runId: string } // webview → host: stop the run (it saves, then ends as cancelled)
  | { type: 'training/inspect'; runId: string } // webview → host: open the spectrum view of the run's adapter
  | { type: 'training/merge'; runId: string } // webview → host: merge the run's adapter into its base model
  | { type: 'training/reveal'; runId: string }; // webview → host: reveal the output folder

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
/** Loss may legitimately be NaN or Infinity when a run diverges; it is still a number. */
const num = (x: unknown): x is number => typeof x === 'number';

export function isProgressPoint(x: unknown): x is ProgressPoint {
  return (
    isObject(x) && finite(x.step) && num(x.loss) && num(x.lr) && num(x.tokensPerSec) && num(x.etaSec) && num(x.memoryMb)
  );
}

export function isRunSummary(x: unknown): x is RunSummary {
  return (
    isObject(x) &&
    typeof x.id === 'string' &&
    typeof x.model === 'string' &&
    typeof x.out === 'string' &&
    (x.method === 'mora' || x.method === 'lora') &&
    finite(x.r) &&
    finite(x.totalSteps) &&
    typeof x.backend === 'string' &&
    runStates.includes(x.state as RunState)
  );
}

/** Validates a message arriving at the webview from the host. */
export function isHostToTraining(x: unknown): x is HostToTraining {
  if (!isObject(x)) return false;
  switch (x.type) {
    case 'training/init':
      return (
        (x.run === null || isRunSummary(x.run)) &&
        Array.isArray(x.points) &&
        x.points.every(isProgressPoint) &&
        Array.isArray(x.logs) &&
        x.logs.every((l) => typeof l === 'string')
      );
    case 'training/progress':
      return isProgressPoint(x.point) && finite(x.totalSteps) && typeof x.backend === 'string';
    case 'training/status':
      return isRunSummary(x.run);
    case 'training/log':
      return typeof x.line === 'string';
    default:
      return false;
  }
}

/** Validates a message arriving at the host from the webview; anything else is dropped. */
export function isTrainingToHost(x: unknown): x is TrainingToHost {
  if (!isObject(x)) return false;
  switch (x.type) {
    case 'training/ready':
      return true;
    case 'training/cancel':
    case 'training/inspect':
    case 'training/merge':
    case 'training/reveal':
      return typeof x.runId === 'string' && x.runId.length > 0 && x.runId.length < 200;
    default:
      return false;
  }
}
