// Entry of the trainer child process (bundled as dist/trainer.js). The host forks it, sends train/start and
// possibly train/cancel; everything the run reports goes back over IPC as TrainerToHost messages.
import { isHostToTrainer, type TrainerToHost } from '../protocol/trainer';
import { runTraining } from './train';

function send(msg: TrainerToHost): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(msg, undefined, {}, () => resolve());
  });
}

/** Wires process messages to one training run; exits when the run ends (Dawn and tfjs could keep Node alive). */
export function serveTrainer(): void {
  let cancelled = false;
  let started = false;
  process.on('message', (msg: unknown) => {
    if (!isHostToTrainer(msg)) {
      void send({ type: 'train/log', level: 'warn', message: `ignored an unknown message: ${JSON.stringify(msg).slice(0, 200)}` });
      return;
    }
    if (msg.type === 'train/cancel') {
      cancelled = true;
      return;
    }
    if (started) {
      void send({ type: 'train/log', level: 'warn', message: 'a run is already in progress; train/start ignored' });
      return;
    }
    started = true;
    // IPC keeps message order; waiting on the last send before exiting makes sure train/done is delivered.
    let last: Promise<void> = Promise.resolve();
    const emit = (m: TrainerToHost) => {
      last = send(m);
    };
    runTraining(msg.config, { emit, isCancelled: () => cancelled }).then(
      async () => {
        await last;
        process.exit(0);
      },
      async (err: Error & { kind?: string }) => {
        await send({ type: 'train/error', name: err.name || 'Error', kind: err.kind, message: err.message, stack: err.stack });
        process.exit(1);
      },
    );
  });
  // A host that goes away without cancelling still gets its run saved: stop after the current step.
  process.on('disconnect', () => {
    cancelled = true;
    if (!started) process.exit(0);
  });
}

if (require.main === module) serveTrainer();
