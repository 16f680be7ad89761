// The interactive part of "Train MoRA adapter": a short QuickPick loop prefilled from mora.json and the settings.
// The first row starts the run; every other row edits one value. Returns undefined when the user backs out.
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { TrainConfig } from '../src/protocol/trainer';

type Draft = Partial<TrainConfig>;

interface Row extends vscode.QuickPickItem {
  action: 'start' | keyof TrainConfig;
}

const numeric: Partial<Record<keyof TrainConfig, { label: string; integer: boolean; min: number }>> = {
  r: { label: 'Rank r', integer: true, min: 1 },
  steps: { label: 'Steps', integer: true, min: 1 },
  lr: { label: 'Learning rate', integer: false, min: Number.MIN_VALUE },
  batch: { label: 'Batch size', integer: true, min: 1 },
  seq: { label: 'Sequence length', integer: true, min: 2 },
};

function methodLabel(d: Draft): string {
  return d.method === 'lora' ? 'LoRA' : `MoRA type ${d.moraType ?? 6} (${(d.moraType ?? 6) === 6 ? 'RoPE rotation' : 'sharing'})`;
}

function rows(d: Draft): Row[] {
  const t = d.targets === undefined ? '(defaults)' : typeof d.targets === 'string' ? d.targets : d.targets.join(', ');
  return [
    { action: 'start', label: '$(play) Start training', detail: `${d.steps ?? '?'} steps → ${d.out ?? '?'}` },
    { action: 'model', label: 'Model', description: d.model ?? 'required' },
    { action: 'data', label: 'Data', description: d.data ?? 'required', detail: 'a .jsonl / .txt file, or uuid:N for the UUID memorization task' },
    { action: 'method', label: 'Method', description: methodLabel(d) },
    { action: 'r', label: 'Rank r', description: String(d.r ?? '') },
    { action: 'targets', label: 'Targets', description: t, detail: 'pick them in the MoRA Model view' },
    { action: 'steps', label: 'Steps', description: String(d.steps ?? '') },
    { action: 'lr', label: 'Learning rate', description: String(d.lr ?? '') },
    { action: 'batch', label: 'Batch size', description: String(d.batch ?? '') },
    { action: 'seq', label: 'Sequence length', description: String(d.seq ?? '') },
    { action: 'out', label: 'Output folder', description: d.out ?? '' },
  ];
}

async function pickPath(title: string, folders: boolean, current?: string): Promise<string | undefined> {
  const picked = await vscode.window.showOpenDialog({
    title,
    canSelectFolders: folders,
    canSelectFiles: !folders,
    defaultUri: current ? vscode.Uri.file(folders ? current : path.dirname(current)) : undefined,
  });
  return picked?.[0]?.fsPath;
}

async function editRow(action: keyof TrainConfig, d: Draft): Promise<Draft | undefined> {
  const spec = numeric[action];
  if (spec) {
    const v = await vscode.window.showInputBox({
      title: spec.label,
      value: String(d[action] ?? ''),
      validateInput: (s) => {
        const n = Number(s);
        if (s.trim() === '' || !Number.isFinite(n) || n < spec.min) return `a number ≥ ${spec.min === Number.MIN_VALUE ? '0 (exclusive)' : spec.min}`;
        return spec.integer && !Number.isInteger(n) ? 'an integer' : undefined;
      },
    });
    return v === undefined ? undefined : { ...d, [action]: Number(v) };
  }
  switch (action) {
    case 'model': {
      const p = await pickPath('Model folder (config.json + *.safetensors)', true, d.model);
      return p ? { ...d, model: p } : undefined;
    }
    case 'data': {
      const pick = await vscode.window.showQuickPick(
        [
          { label: 'uuid:64', detail: 'built-in task: memorize 64 UUID pairs (the paper’s memorization probe)' },
          { label: 'Choose a file…', detail: '.jsonl with {"text"} or {"prompt","completion"} lines, or plain .txt' },
        ],
        { title: 'Training data' },
      );
      if (!pick) return undefined;
      if (pick.label.startsWith('uuid')) return { ...d, data: 'uuid:64' };
      const p = await pickPath('Training data file', false, d.data);
      return p ? { ...d, data: p } : undefined;
    }
    case 'method': {
      const pick = await vscode.window.showQuickPick(
        [
          { label: 'MoRA type 6', detail: 'RoPE-rotation compression (paper Eq. 9)', v: { method: 'mora', moraType: 6 } as const },
          { label: 'MoRA type 1', detail: 'sharing compression (paper Eq. 6), for large r', v: { method: 'mora', moraType: 1 } as const },
          { label: 'LoRA', detail: 'low-rank baseline', v: { method: 'lora' } as const },
        ],
        { title: 'Adapter method' },
      );
      return pick ? { ...d, ...pick.v } : undefined;
    }
    case 'targets':
      await vscode.commands.executeCommand('mora.model.focus');
      void vscode.window.showInformationMessage('MoRA: tick the target modules in the Model view, then run "Train MoRA Adapter" again.');
      return undefined;
    case 'out': {
      const v = await vscode.window.showInputBox({ title: 'Output adapter folder', value: d.out ?? '', validateInput: (s) => (s.trim() ? undefined : 'required') });
      return v === undefined ? undefined : { ...d, out: v.trim() };
    }
    default:
      return d;
  }
}

/** Lets the user review and edit the prefilled values; resolves with the final draft, or undefined on Escape. */
export async function trainWizard(initial: Draft): Promise<Draft | undefined> {
  let d = { ...initial };
  for (;;) {
    const pick = await vscode.window.showQuickPick(rows(d), {
      title: 'Train MoRA adapter',
      placeHolder: 'Start, or pick a value to change',
      ignoreFocusOut: true,
    });
    if (!pick) return undefined;
    if (pick.action === 'start') {
      if (d.model && d.data && d.out) return d;
      void vscode.window.showWarningMessage('MoRA: choose a model, training data and an output folder first.');
      continue;
    }
    const next = await editRow(pick.action, d);
    if (pick.action === 'targets') return undefined;
    if (next) d = next;
  }
}
