import * as vscode from 'vscode';
import { registerExtractCommand } from './extractCommand';
import { registerMergeCommand } from './mergeCommand';
import { registerModelTree } from './modelTree';
import { initMoraJsonLocation } from './moraJsonFile';
import { registerRunsView } from './runsView';
import { stopAllRuns } from './runStore';
import { registerSpectrumPanel } from './spectrumPanel';
import { registerTinyModelCommand } from './tinyModelCommand';
import { registerTrainCommand } from './trainCommand';
import { registerTrainingStatus } from './trainingStatus';

// activate() only wires features; each feature lives in its own file and returns a Disposable.
export function activate(context: vscode.ExtensionContext): void {
  initMoraJsonLocation(context);
  context.subscriptions.push(
    registerModelTree(context),
    registerTinyModelCommand(),
    registerTrainCommand(context),
    registerRunsView(context),
    registerTrainingStatus(context),
    registerMergeCommand(context),
    registerExtractCommand(context),
    registerSpectrumPanel(context),
  );
}

// Closing the window stops a live trainer child cleanly (it saves a checkpoint, or is killed after a grace period).
export function deactivate(): Promise<void> {
  return stopAllRuns();
}
