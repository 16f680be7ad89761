// "MoRA: Merge Adapter into Base Model" (Explorer context menu on .safetensors files and adapter folders, and the
// palette) and "Merge Several Adapters…" (linear or TIES). Both accept (uri, options) so tests can drive them
// without any UI; the merge itself is src/adapters/merge.ts and runs under a cancellable progress notification.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { mergeAdapters, type MergeAdapterSpec, type MergeResult } from '../src/adapters/merge';
import { MergeError } from '../src/adapters/mergeError';
import { DEFAULT_OUTPUT_PATTERN, defaultOutputDir, localBaseOf } from '../src/adapters/mergeFiles';
import type { MergeMethod, OutputDtype } from '../src/adapters/mergePlan';
import { readAdapterConfig } from '../src/adapters/peftAdapter';
import { confirmReplace, toFsPath, withErrorReport } from './args';

/** What tests (or other commands) may pass instead of answering prompts. */
export interface MergeCommandOptions {
  base?: string;
  adapters?: (string | MergeAdapterSpec)[];
  out?: string;
  method?: MergeMethod;
  density?: number;
  dtype?: OutputDtype;
  /** Replace an existing output folder without asking. */
  force?: boolean;
}

const lastBaseKey = 'mora.merge.lastBase';
const adapterFoldersKey = 'mora.adapterFolders';
const isFile = (p: string) => fs.stat(p).then((s) => s.isFile(), () => false);
const exists = (p: string) => fs.stat(p).then(() => true, () => false);
const isAdapterDir = (dir: string) => isFile(path.join(dir, 'adapter_config.json'));

async function pickFolder(title: string, defaultPath?: string, many = false): Promise<string[] | undefined> {
  const picked = await vscode.window.showOpenDialog({
    title,
    canSelectFolders: true,
    canSelectFiles: false,
    canSelectMany: many,
    defaultUri: defaultPath ? vscode.Uri.file(defaultPath) : undefined,
    openLabel: 'Select',
  });
  return picked?.map((u) => u.fsPath);
}

/** A right-clicked path as (adapter folder | base model) — a .safetensors file is either an adapter's or a model's. */
async function classify(target: string): Promise<{ adapter?: string; base?: string }> {
  const dir = (await isFile(target)) ? path.dirname(target) : target;
  if (await isAdapterDir(dir)) return { adapter: dir };
  return { base: (await isFile(target)) && !(await exists(path.join(dir, 'config.json'))) ? target : dir };
}

/** The base model: given, recorded by the adapter as an existing local folder, or picked (remembered per workspace). */
async function resolveBase(ctx: vscode.ExtensionContext, adapterDir: string, given: string | undefined, programmatic: boolean): Promise<string | undefined> {
  if (given) return given;
  const recorded = await localBaseOf(adapterDir, (await readAdapterConfig(adapterDir)).base_model_name_or_path).catch(() => undefined);
  if (recorded) return recorded;
  if (programmatic) throw new MergeError('BadOption', `no base given and ${adapterDir} records no existing local base model folder`);
  const picked = await pickFolder('Base model folder to merge into', ctx.workspaceState.get<string>(lastBaseKey));
  if (picked?.[0]) await ctx.workspaceState.update(lastBaseKey, picked[0]);
  return picked?.[0];
}

function outputPattern(): string {
  return vscode.workspace.getConfiguration('mora.merge').get<string>('outputPattern') || DEFAULT_OUTPUT_PATTERN;
}

/** Runs the merge under a cancellable progress notification, at most 4 updates a second. */
async function runWithProgress(
  base: string,
  adapters: MergeAdapterSpec[],
  opts: MergeCommandOptions,
  programmatic: boolean,
): Promise<MergeResult | undefined> {
  const out = opts.out ?? defaultOutputDir(base, adapters.map((a) => a.dir), outputPattern());
  const force = await confirmReplace(out, opts.force === true, programmatic, (o) => new MergeError('OutputExists', `${o} already exists (pass force: true to replace it)`));
  if (force === undefined) return undefined;
  const label = adapters.map((a) => path.basename(a.dir)).join(' + ');
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `MoRA: merging ${label} into ${path.basename(base)}`, cancellable: true },
    async (progress, token) => {
      const ac = new AbortController();
      const sub = token.onCancellationRequested(() => ac.abort());
      let last = 0;
      let reported = 0;
      try {
        return await mergeAdapters({
          base, adapters, out, force, signal: ac.signal, method: opts.method, density: opts.density, dtype: opts.dtype,
          onProgress: (p) => {
            const now = Date.now();
            if (now - last < 250 && p.done < p.total) return;
            last = now;
            const pct = (100 * p.bytesDone) / Math.max(1, p.bytesTotal);
            progress.report({ increment: pct - reported, message: `${p.done}/${p.total} tensors · ${p.tensor}` });
            reported = pct;
          },
        });
      } finally {
        sub.dispose();
      }
    },
  );
  const open = 'Open Folder in New Window';
  void vscode.window
    .showInformationMessage(`MoRA: merged into ${result.out} (${result.mergedTensors}/${result.tensors} tensors changed, ${result.seconds.toFixed(1)} s)`, open)
    .then((a) => (a === open ? vscode.commands.executeCommand('vscode.openFolder', vscode.Uri.file(result.out), true) : undefined));
  return result;
}

/** Cancellation is not a failure: say so quietly (programmatic callers still get the rejection). */
async function merging(programmatic: boolean, body: () => Promise<MergeResult | undefined>): Promise<MergeResult | undefined> {
  try {
    return await withErrorReport('merge', programmatic, body);
  } catch (err) {
    if (err instanceof MergeError && err.kind === 'Cancelled') return undefined;
    throw err;
  }
}

/** Explorer menus call (uri, selectedUris[]) and the palette calls with nothing; tests pass an options object. */
const isOptions = (x: unknown): x is MergeCommandOptions => typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof vscode.Uri);

async function mergeOne(ctx: vscode.ExtensionContext, uri: unknown, second: unknown): Promise<MergeResult | undefined> {
  const programmatic = isOptions(second);
  const options: MergeCommandOptions = programmatic ? second : {};
  return merging(programmatic, async () => {
    const first = options.adapters?.[0];
    const target = toFsPath(uri);
    let { adapter, base } = target ? await classify(target) : {};
    adapter ??= typeof first === 'string' ? first : first?.dir;
    if (!adapter && !programmatic) adapter = (await pickFolder('Adapter folder to merge (holds adapter_config.json)'))?.[0];
    if (!adapter) {
      if (programmatic) throw new MergeError('BadOption', 'no adapter folder given');
      return undefined;
    }
    if (!(await isAdapterDir(adapter))) throw new MergeError('InvalidAdapter', `${adapter} has no adapter_config.json`);
    base = await resolveBase(ctx, adapter, options.base ?? base, programmatic);
    if (!base) return undefined;
    const weight = typeof first === 'object' ? first.weight : undefined;
    return runWithProgress(base, [{ dir: adapter, weight }], options, programmatic);
  });
}

async function mergeMany(ctx: vscode.ExtensionContext, uri: unknown, second: unknown): Promise<MergeResult | undefined> {
  // From the Explorer the second argument is the multi-selection; from tests it is the options object.
  const selection = Array.isArray(second) ? second.map(toFsPath).filter((p): p is string => !!p) : [];
  const programmatic = isOptions(second);
  const options: MergeCommandOptions = programmatic ? second : {};
  return merging(programmatic, async () => {
    let specs: MergeAdapterSpec[] = (options.adapters ?? []).map((a) => (typeof a === 'string' ? { dir: a } : a));
    if (specs.length === 0 && programmatic) throw new MergeError('BadOption', 'options.adapters is empty');
    if (specs.length === 0) {
      const dirs = selection.length > 0 ? selection : (toFsPath(uri) ? [toFsPath(uri)!] : []);
      const picked = dirs.length > 1 ? dirs : await pickFolder('Adapter folders to merge (select several)', dirs[0], true);
      if (!picked || picked.length === 0) return undefined;
      specs = picked.map((dir) => ({ dir }));
    }
    for (const s of specs) if (!(await isAdapterDir(s.dir))) throw new MergeError('InvalidAdapter', `${s.dir} has no adapter_config.json`);
    let { method, density } = options;
    if (!programmatic) {
      const m = await vscode.window.showQuickPick(
        [
          { label: 'linear', description: 'weighted sum of the ΔW' },
          { label: 'ties', description: 'trim to a density, elect the sign, disjoint mean' },
        ],
        { title: 'Merge method' },
      );
      if (!m) return undefined;
      method = m.label as MergeMethod;
      const weights = await vscode.window.showInputBox({
        title: `Weights for ${specs.map((s) => path.basename(s.dir)).join(', ')}`,
        value: specs.map(() => '1').join(', '),
        validateInput: (v) => (v.split(',').length === specs.length && v.split(',').every((x) => x.trim() !== '' && Number.isFinite(Number(x))) ? null : `${specs.length} comma-separated numbers`),
      });
      if (weights === undefined) return undefined;
      specs = specs.map((s, i) => ({ ...s, weight: Number(weights.split(',')[i]) }));
      if (method === 'ties') {
        const d = await vscode.window.showInputBox({
          title: 'TIES density (fraction of each ΔW kept)',
          value: '0.5',
          validateInput: (v) => (Number(v) >= 0 && Number(v) <= 1 ? null : 'a number in [0, 1]'),
        });
        if (d === undefined) return undefined;
        density = Number(d);
      }
    }
    const base = await resolveBase(ctx, specs[0].dir, options.base, programmatic);
    if (!base) return undefined;
    return runWithProgress(base, specs, { ...options, method, density }, programmatic);
  });
}

/** Publishes the workspace's adapter folders so the Explorer menu's when-clause can show the command on them. */
function trackAdapterFolders(): vscode.Disposable {
  let timer: NodeJS.Timeout | undefined;
  const scan = async () => {
    const files = await vscode.workspace.findFiles('**/adapter_config.json', '**/node_modules/**', 5000);
    const dirs = files.map((u) => vscode.Uri.joinPath(u, '..'));
    // Both spellings: resourcePath is the file system path, but older hosts compared the URI path.
    const keys = [...new Set(dirs.flatMap((d) => [d.fsPath, d.path]))];
    await vscode.commands.executeCommand('setContext', adapterFoldersKey, keys);
  };
  const rescan = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void scan(), 500);
  };
  void scan();
  const watcher = vscode.workspace.createFileSystemWatcher('**/adapter_config.json');
  return vscode.Disposable.from(
    watcher,
    watcher.onDidCreate(rescan),
    watcher.onDidDelete(rescan),
    vscode.workspace.onDidChangeWorkspaceFolders(rescan),
    { dispose: () => clearTimeout(timer) },
  );
}

export function registerMergeCommand(ctx: vscode.ExtensionContext): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.commands.registerCommand('mora.mergeAdapter', (uri?: unknown, second?: unknown) => mergeOne(ctx, uri, second)),
    vscode.commands.registerCommand('mora.mergeAdapters', (uri?: unknown, second?: unknown) => mergeMany(ctx, uri, second)),
    trackAdapterFolders(),
  );
}
