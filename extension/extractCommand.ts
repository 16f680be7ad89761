// "MoRA: Extract Adapter from Fine-Tuned Model" (palette): the ΔW between a base model and its fine-tuned or merged
// version, written as a LoRA or MoRA adapter next to the tuned folder. Accepts (uri, options) so tests can drive it
// without any UI. The extraction itself (src/adapters/extract.ts) runs in a child process (dist/extractWorker.js,
// extractWorkerClient.ts) under a cancellable progress notification: a LoRA fit is seconds of synchronous linear
// algebra per tensor, which would freeze the extension host.
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AdapterDtype, ExtractResult } from '../src/adapters/extract';
import { ExtractError } from '../src/adapters/extractError';
import type { ExtractMethod, ExtractTargets } from '../src/adapters/extractPlan';
import type { MoraType } from '../src/adapters/mora';
import { confirmReplace, toFsPath, withErrorReport } from './args';
import { runExtractWorker } from './extractWorkerClient';

/** What tests (or other commands) may pass instead of answering prompts. */
export interface ExtractCommandOptions {
  base?: string;
  tuned?: string;
  out?: string;
  method?: ExtractMethod;
  r?: number;
  moraType?: MoraType;
  targets?: ExtractTargets;
  dtype?: AdapterDtype;
  /** Replace an existing output folder without asking. */
  force?: boolean;
}

const lastBaseKey = 'mora.extract.lastBase';
const isOptions = (x: unknown): x is ExtractCommandOptions => typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof vscode.Uri);

async function pickFolder(title: string, defaultPath?: string): Promise<string | undefined> {
  const picked = await vscode.window.showOpenDialog({
    title, canSelectFolders: true, canSelectFiles: false, canSelectMany: false, openLabel: 'Select',
    defaultUri: defaultPath ? vscode.Uri.file(defaultPath) : undefined,
  });
  return picked?.[0]?.fsPath;
}

/** Method and MoRA type in one pick. */
async function pickMethod(): Promise<{ method: ExtractMethod; moraType?: MoraType } | undefined> {
  const items = [
    { label: 'LoRA', description: 'best rank-r approximation of ΔW (SVD)', method: 'lora' as const },
    { label: 'MoRA type 6', description: 'least-squares square matrix, RoPE-rotated chunks', method: 'mora' as const, moraType: 6 as const },
    { label: 'MoRA type 1', description: 'least-squares square matrix, shared chunks', method: 'mora' as const, moraType: 1 as const },
  ];
  const picked = await vscode.window.showQuickPick(items, { title: 'Extract ΔW as' });
  return picked && { method: picked.method, moraType: picked.moraType };
}

async function pickRank(method: ExtractMethod): Promise<number | undefined> {
  const other = 'Other…';
  const hint = method === 'mora' ? 'the r that MoRA r̂ derives from' : 'LoRA rank';
  const picked = await vscode.window.showQuickPick(['4', '8', '16', '32', '64', other], { title: `r (${hint})` });
  if (picked === undefined) return undefined;
  if (picked !== other) return Number(picked);
  const typed = await vscode.window.showInputBox({
    title: `r (${hint})`, value: '8', validateInput: (v) => (Number.isInteger(Number(v)) && Number(v) >= 1 ? null : 'an integer ≥ 1'),
  });
  return typed === undefined ? undefined : Number(typed);
}

/** `<tuned>-lora-r8` / `<tuned>-mora6-r8`, next to the tuned folder. */
export function defaultExtractOut(tuned: string, method: ExtractMethod, r: number, moraType: MoraType = 6): string {
  const dir = path.resolve(tuned);
  const tag = method === 'mora' ? `mora${moraType}` : 'lora';
  return path.join(path.dirname(dir), `${path.basename(dir).replace(/\.safetensors$/, '')}-${tag}-r${r}`);
}

async function runWithProgress(
  ctx: vscode.ExtensionContext,
  o: Required<Pick<ExtractCommandOptions, 'base' | 'tuned' | 'out' | 'method' | 'r'>> & ExtractCommandOptions,
): Promise<ExtractResult> {
  const script = vscode.Uri.joinPath(ctx.extensionUri, 'dist', 'extractWorker.js').fsPath;
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `MoRA: extracting ${path.basename(o.tuned)} − ${path.basename(o.base)}`, cancellable: true },
    async (progress, token) => {
      let reported = 0;
      // The worker sends at most 4 progress messages a second (and always the last one).
      return runExtractWorker(
        script,
        { base: o.base, tuned: o.tuned, out: o.out, method: o.method, r: o.r, moraType: o.moraType, targets: o.targets, dtype: o.dtype, force: o.force },
        token,
        (p) => {
          const pct = (100 * p.done) / Math.max(1, p.total);
          progress.report({ increment: pct - reported, message: `${p.done}/${p.total} tensors · ${p.module}` });
          reported = pct;
        },
      );
    },
  );
}

/** Asks for (or takes from the options) everything the extraction needs, then runs it. */
async function extractWith(ctx: vscode.ExtensionContext, uri: unknown, opts: ExtractCommandOptions, programmatic: boolean): Promise<ExtractResult | undefined> {
  const tuned = opts.tuned ?? toFsPath(uri) ?? (programmatic ? undefined : await pickFolder('Fine-tuned or merged model folder'));
  if (!tuned) {
    if (programmatic) throw new ExtractError('BadOption', 'no tuned model folder given');
    return undefined;
  }
  let base = opts.base;
  if (!base && programmatic) throw new ExtractError('BadOption', 'no base model folder given');
  base ??= await pickFolder('Base model folder the tuned model started from', ctx.workspaceState.get<string>(lastBaseKey));
  if (!base) return undefined;
  if (!programmatic) await ctx.workspaceState.update(lastBaseKey, base);
  let { method, moraType, r } = opts;
  if (!method) {
    if (programmatic) method = 'lora';
    else {
      const m = await pickMethod();
      if (!m) return undefined;
      ({ method, moraType } = m);
    }
  }
  if (r === undefined) r = programmatic ? 8 : await pickRank(method);
  if (r === undefined) return undefined;
  const out = opts.out ?? defaultExtractOut(tuned, method, r, moraType);
  const force = await confirmReplace(out, opts.force === true, programmatic, (o) => new ExtractError('OutputExists', `${o} already exists (pass force: true to replace it)`));
  if (force === undefined) return undefined;
  const res = await runWithProgress(ctx, { ...opts, base, tuned, out, method, r, moraType, force });
  const open = 'Open adapter_config.json';
  void vscode.window
    .showInformationMessage(
      `MoRA: extracted ${res.extracted} modules into ${res.out} (overall relative error ${res.relError.toExponential(2)}, ${res.seconds.toFixed(1)} s)`,
      open,
    )
    .then((a) => (a === open ? vscode.window.showTextDocument(vscode.Uri.file(path.join(res.out, 'adapter_config.json'))) : undefined));
  return res;
}

/** The palette calls with nothing, the Explorer with a Uri; tests pass (uri, options) or just options. */
function extractCommand(ctx: vscode.ExtensionContext, uri: unknown, second: unknown): Promise<ExtractResult | undefined> {
  const programmatic = isOptions(second) || isOptions(uri);
  const opts: ExtractCommandOptions = isOptions(second) ? second : isOptions(uri) ? uri : {};
  return withErrorReport('extract', programmatic, async () => {
    try {
      return await extractWith(ctx, isOptions(uri) ? undefined : uri, opts, programmatic);
    } catch (err) {
      // Cancelling is not a failure for the user (no error toast); programmatic callers still get the rejection.
      if (err instanceof ExtractError && err.kind === 'Cancelled' && !programmatic) return undefined;
      throw err;
    }
  });
}

export function registerExtractCommand(ctx: vscode.ExtensionContext): vscode.Disposable {
  return vscode.commands.registerCommand('mora.extractAdapter', (uri?: unknown, second?: unknown) => extractCommand(ctx, uri, second));
}
