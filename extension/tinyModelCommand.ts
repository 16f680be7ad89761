// "Generate Tiny Demo Model…": writes a small random LLaMA / Qwen2 / GPT-2 folder (src/model/tinyModel.ts) into
// the workspace and opens it in the Model view, so a first run needs no download.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { makeTinyModel, type TinyModelOptions } from '../src/model/tinyModel';
import { calledProgrammatically, toFsPath, withErrorReport, workspaceDir } from './args';

const exists = (p: string) => fs.stat(p).then(() => true, () => false);

class TinyModelError extends Error {
  override name = 'TinyModelError';
  constructor(readonly kind: 'exists' | 'no-folder', message: string) {
    super(message);
  }
}

async function firstFreeName(dir: string, base: string): Promise<string> {
  for (let i = 0; ; i++) {
    const p = path.join(dir, i ? `${base}-${i + 1}` : base);
    if (!(await exists(p))) return p;
  }
}

async function ask(): Promise<{ out: string; opts: Partial<TinyModelOptions> } | undefined> {
  const archPick = await vscode.window.showQuickPick(
    [
      { label: 'llama', detail: 'RMSNorm, RoPE, SwiGLU, q/k/v/o_proj + gate/up/down_proj' },
      { label: 'qwen2', detail: 'LLaMA layout with q/k/v bias, tied embeddings' },
      { label: 'gpt2', detail: 'LayerNorm, learned positions, fused c_attn (Conv1D weights)' },
    ],
    { title: 'Tiny demo model: architecture' },
  );
  if (!archPick) return undefined;
  const dir = workspaceDir();
  if (!dir) throw new TinyModelError('no-folder', 'open a folder first: the demo model is written into the workspace');
  const suggested = await firstFreeName(dir, `tiny-${archPick.label}`);
  const out = await vscode.window.showInputBox({ title: 'Tiny demo model: output folder', value: suggested, validateInput: (s) => (s.trim() ? undefined : 'required') });
  return out ? { out: out.trim(), opts: { arch: archPick.label as TinyModelOptions['arch'] } } : undefined;
}

export function registerTinyModelCommand(): vscode.Disposable {
  // (folder?: Uri | path, opts?: Partial<TinyModelOptions> & { open?: boolean }) → Promise<folder path>.
  return vscode.commands.registerCommand('mora.makeTinyModel', (target?: unknown, options?: Partial<TinyModelOptions> & { open?: boolean }) =>
    withErrorReport('generating the tiny model', calledProgrammatically([target, options]), async () => {
      let out = toFsPath(target);
      let opts: Partial<TinyModelOptions> = { ...(options ?? {}) };
      delete (opts as { open?: boolean }).open;
      if (!out) {
        const dir = workspaceDir();
        if (options && dir) out = await firstFreeName(dir, `tiny-${opts.arch ?? 'llama'}`);
        else {
          const answer = await ask();
          if (!answer) return undefined;
          out = answer.out;
          opts = { ...answer.opts, ...opts };
        }
      }
      if (!path.isAbsolute(out)) out = path.resolve(workspaceDir() ?? process.cwd(), out);
      if (await exists(out)) throw new TinyModelError('exists', `${out} already exists; choose a new folder`);
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `MoRA: writing ${path.basename(out)}…` }, () => makeTinyModel(out!, opts));
      if (options?.open !== false) await vscode.commands.executeCommand('mora.openModel', vscode.Uri.file(out));
      return out;
    }),
  );
}
