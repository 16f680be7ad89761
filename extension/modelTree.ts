// The Model view: open a model (headers only), tick target modules, apply presets, and keep the selection in
// the workspace's mora.json. Every command takes arguments so the integration tests can drive it without UI.
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  isPresetId,
  openModuleTree,
  presets,
  presetSelection,
  sameTypeInAllLayers,
  selectionToTargets,
  summarizeSelection,
  targetsToSelection,
  type LinearInfo,
  type MethodSpec,
  type ModuleNode,
  type PresetId,
  type SelectionSummary,
} from '../src/model/moduleTree';
import { relativeToWorkspace, type MoraJson } from '../src/model/trainingConfig';
import { calledProgrammatically, toFsPath, withErrorReport } from './args';
import { configBaseDir, readMoraJson, updateMoraJson, watchMoraJson } from './moraJsonFile';
import { ModelTreeProvider, type ModelTreeNode } from './modelTreeProvider';

/** What mora.openModel and mora.describeModelTree return. */
export interface ModelTreeSnapshot {
  model: string | undefined;
  /** Names of the tree's top-level modules, e.g. ['lm_head', 'model']. */
  topLevel: string[];
  linear: string[];
  selected: string[];
  targets: string[];
  spec: MethodSpec;
  summary: SelectionSummary | undefined;
}

/** PEFT target_modules for mora.json; an empty selection removes the key (mora.json never holds an empty list). */
function targetsOf(linear: LinearInfo[], selected: ReadonlySet<string>): string[] | undefined {
  const t = selectionToTargets(linear, selected);
  return t.length ? t : undefined;
}

/** Method and r for the summary: mora.json first, then the settings. */
function specOf(json: MoraJson): MethodSpec {
  const c = vscode.workspace.getConfiguration('mora');
  const base: MethodSpec = { method: c.get('defaultMethod') === 'lora' ? 'lora' : 'mora', r: c.get<number>('defaultRank', 8), moraType: c.get('defaultMoraType') === 1 ? 1 : 6 };
  return { method: json.method ?? base.method, r: json.r ?? base.r, moraType: json.moraType ?? base.moraType };
}

export function registerModelTree(ctx: vscode.ExtensionContext): vscode.Disposable {
  const provider = new ModelTreeProvider();
  const view = vscode.window.createTreeView<ModelTreeNode>('mora.model', { treeDataProvider: provider, manageCheckboxStateManually: true, showCollapseAll: true });
  const disposables: vscode.Disposable[] = [provider, view];

  const snapshot = (): ModelTreeSnapshot => {
    const m = provider.model;
    return {
      model: m?.dir,
      topLevel: m?.root.children.map((c) => c.name) ?? [],
      linear: m?.linear.map((l) => l.path) ?? [],
      selected: m ? m.linear.map((l) => l.path).filter((p) => provider.selected.has(p)) : [],
      targets: m ? selectionToTargets(m.linear, provider.selected) : [],
      spec: provider.spec,
      summary: m ? summarizeSelection(m.root, provider.selected, provider.spec) : undefined,
    };
  };

  const updateView = () => {
    provider.refresh();
    const s = snapshot();
    view.description = s.model ? path.basename(s.model) : undefined;
    void vscode.commands.executeCommand('setContext', 'mora.modelOpen', !!s.model);
  };

  /** Re-reads mora.json: method, r and the selection follow hand edits. */
  const syncFromJson = async () => {
    const { json, problems } = await readMoraJson();
    provider.spec = specOf(json);
    provider.problems = problems;
    if (provider.model && json.targets !== undefined) provider.selected = new Set(targetsToSelection(provider.model.linear, json.targets));
    updateView();
  };

  const saveSelection = async (selected: Set<string>) => {
    provider.selected = selected;
    updateView();
    if (provider.model) await updateMoraJson({ targets: targetsOf(provider.model.linear, selected) });
  };

  const setChecked = async (paths: string[], checked: boolean) => {
    if (!provider.model) throw new Error('no model is open in the MoRA Model view');
    const known = new Set(provider.model.linear.map((l) => l.path));
    const next = new Set(provider.selected);
    for (const p of paths) {
      // A group path ticks every linear module under it.
      const node = provider.findByPath(p);
      const under = node ? provider.linearUnder(node) : [];
      if (!known.has(p) && under.length === 0) throw new Error(`'${p}' is not a linear module or a group of them in ${provider.model.dir}`);
      for (const q of known.has(p) ? [p] : under) {
        if (checked) next.add(q);
        else next.delete(q);
      }
    }
    await saveSelection(next);
    return snapshot();
  };

  const openModel = async (target: unknown, opts: { save?: boolean } = {}): Promise<ModelTreeSnapshot | undefined> => {
    let p = toFsPath(target);
    if (!p) {
      const picked = await vscode.window.showOpenDialog({
        title: 'Open a Hugging Face model folder (or a .safetensors file)',
        canSelectFolders: true,
        canSelectFiles: true,
        filters: { Safetensors: ['safetensors', 'json'] },
        openLabel: 'Open Model',
      });
      p = picked?.[0]?.fsPath;
      if (!p) return undefined;
    }
    const model = await openModuleTree(p);
    provider.model = model;
    const { json } = await readMoraJson();
    const sameModel = json.model !== undefined && path.resolve(configBaseDir(), json.model) === path.resolve(model.dir);
    // Keep a saved selection for this model; a new model starts with nothing ticked (the user picks, or a preset).
    provider.selected = new Set(sameModel && json.targets !== undefined ? targetsToSelection(model.linear, json.targets) : []);
    await syncSpec();
    updateView();
    if (opts.save !== false) {
      await updateMoraJson({ model: relativeToWorkspace(model.dir, configBaseDir()), targets: targetsOf(model.linear, provider.selected) });
    }
    return snapshot();
  };

  const syncSpec = async () => {
    provider.spec = specOf((await readMoraJson()).json);
  };

  const pathOf = (x: unknown): string | undefined =>
    typeof x === 'string' ? x : typeof x === 'object' && x !== null && typeof (x as ModuleNode).path === 'string' ? (x as ModuleNode).path : undefined;

  disposables.push(
    view.onDidChangeCheckboxState((e) => {
      const byState = new Map<boolean, string[]>([[true, []], [false, []]]);
      for (const [node, state] of e.items) {
        const p = pathOf(node);
        if (p !== undefined) byState.get(state === vscode.TreeItemCheckboxState.Checked)!.push(p);
      }
      void withErrorReport('saving the selection', false, async () => {
        for (const [checked, paths] of byState) if (paths.length) await setChecked(paths, checked);
      });
    }),
    // (uri | path) from the Explorer menu and tests; no argument opens a picker. Returns a ModelTreeSnapshot.
    vscode.commands.registerCommand('mora.openModel', (target?: unknown, opts?: { save?: boolean }) =>
      withErrorReport('opening the model', calledProgrammatically([target]), () => openModel(target, opts ?? {})),
    ),
    // (moduleNode | path, checked = true): tick (or untick) this module type in every layer.
    vscode.commands.registerCommand('mora.selectModuleTypeInAllLayers', (node?: unknown, checked?: unknown) =>
      withErrorReport('selecting the module type', calledProgrammatically([node]), async () => {
        if (!provider.model) throw new Error('no model is open in the MoRA Model view');
        let p = pathOf(node);
        if (p === undefined) {
          const sel = view.selection[0];
          p = sel ? pathOf(sel) : undefined;
        }
        if (p === undefined) throw new Error('select a linear module in the MoRA Model view first');
        const all = sameTypeInAllLayers(provider.model.linear, p);
        if (all.length === 0) throw new Error(`'${p}' is not a linear module`);
        return setChecked(all, checked !== false);
      }),
    ),
    // (presetId?: 'attention-qv' | 'attention-all' | 'mlp' | 'all-linear'): replaces the selection.
    vscode.commands.registerCommand('mora.applyPreset', (preset?: unknown) =>
      withErrorReport('applying the preset', calledProgrammatically([preset]), async () => {
        if (!provider.model) throw new Error('no model is open in the MoRA Model view');
        let id: PresetId | undefined;
        if (preset === undefined) {
          const pick = await vscode.window.showQuickPick(presets.map((p) => ({ label: p.label, detail: p.detail, id: p.id })), { title: 'Target preset' });
          id = pick?.id;
          if (!id) return undefined;
        } else if (isPresetId(preset)) id = preset;
        else throw new Error(`unknown preset ${JSON.stringify(preset)}; expected one of ${presets.map((p) => p.id).join(', ')}`);
        await saveSelection(new Set(presetSelection(provider.model.linear, id)));
        return snapshot();
      }),
    ),
    // (paths: string | string[], checked: boolean): what ticking a checkbox does; for tests and keybindings.
    vscode.commands.registerCommand('mora.setModuleChecked', (paths: unknown, checked?: unknown) =>
      withErrorReport('saving the selection', true, () => setChecked(([] as unknown[]).concat(paths).map(String), checked !== false)),
    ),
    // ({ method?, r?, moraType? }?): the summary's method and r, saved in mora.json.
    vscode.commands.registerCommand('mora.setMethod', (spec?: Partial<MethodSpec>) =>
      withErrorReport('setting the method', calledProgrammatically([spec]), async () => {
        let next: Partial<MethodSpec> | undefined = spec;
        if (!next) next = await pickMethod(provider.spec);
        if (!next) return undefined;
        const merged = { ...provider.spec, ...next };
        if (!Number.isInteger(merged.r) || merged.r < 1) throw new Error(`r must be a positive integer, got ${merged.r}`);
        provider.spec = merged;
        updateView();
        await updateMoraJson({ method: merged.method, r: merged.r, moraType: merged.moraType });
        return snapshot();
      }),
    ),
    vscode.commands.registerCommand('mora.describeModelTree', () => snapshot()),
    watchMoraJson(() => void syncFromJson().catch(() => undefined)),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('mora')) void syncFromJson().catch(() => undefined);
    }),
  );

  // Restore the model recorded in mora.json, quietly: a moved or deleted model just leaves the view empty.
  void (async () => {
    const { json } = await readMoraJson();
    if (json.model) await openModel(path.resolve(configBaseDir(), json.model), { save: false });
    else await syncSpec();
    updateView();
  })().catch(() => updateView());

  return vscode.Disposable.from(...disposables);
}

async function pickMethod(current: MethodSpec): Promise<Partial<MethodSpec> | undefined> {
  const items = [
    { label: 'MoRA, type 6 (RoPE rotation)', spec: { method: 'mora', moraType: 6 } as const },
    { label: 'MoRA, type 1 (sharing)', spec: { method: 'mora', moraType: 1 } as const },
    { label: 'LoRA', spec: { method: 'lora' } as const },
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'Adapter method' });
  if (!pick) return undefined;
  const r = await vscode.window.showInputBox({
    title: 'Rank r',
    prompt: 'LoRA rank; MoRA derives r̂ = floor(sqrt((in+out)·r) + 0.5) from it',
    value: String(current.r),
    validateInput: (v) => (/^[1-9]\d*$/.test(v.trim()) ? undefined : 'a positive integer'),
  });
  if (r === undefined) return undefined;
  return { ...pick.spec, r: Number(r) };
}
