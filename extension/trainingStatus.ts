// The status bar item: the live run's step and loss while training, its outcome afterwards; click for the view.
import * as vscode from 'vscode';
import { runStore, type RunRecord } from './runStore';

export function registerTrainingStatus(ctx: vscode.ExtensionContext): vscode.Disposable {
  const store = runStore(ctx);
  const item = vscode.window.createStatusBarItem('mora.training', vscode.StatusBarAlignment.Left, 50);
  item.name = 'MoRA Training';
  item.command = 'mora.showTrainingView';
  let lastText = 0;

  const showRecord = (rec: RunRecord) => {
    switch (rec.state) {
      case 'starting':
        item.text = '$(loading~spin) MoRA starting…';
        break;
      case 'running':
        item.text = `$(sync~spin) MoRA ${rec.step}/${rec.config.steps}`;
        break;
      case 'done':
        item.text = '$(pass) MoRA done';
        break;
      case 'cancelled':
        item.text = '$(circle-slash) MoRA cancelled';
        break;
      case 'failed':
        item.text = '$(error) MoRA failed';
        break;
    }
    item.tooltip = `${rec.id}: ${rec.message ?? rec.state} — click for the training view`;
    item.backgroundColor = rec.state === 'failed' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
    item.show();
  };

  return vscode.Disposable.from(
    item,
    store.onDidChange((rec) => {
      if (rec && store.active?.record.id === rec.id) showRecord(rec);
    }),
    store.onDidProgress(({ run, point }) => {
      // The tooltip and text change at most twice a second, well under the trainer's 4 messages per second.
      const now = Date.now();
      if (now - lastText < 500) return;
      lastText = now;
      item.text = `$(sync~spin) MoRA ${point.step}/${run.record.config.steps} · loss ${point.loss.toFixed(3)}`;
      item.tooltip = `${Math.round(point.tokensPerSec)} tokens/s · ETA ${Math.round(point.etaSec)} s · ${run.record.backend}`;
      item.show();
    }),
  );
}
