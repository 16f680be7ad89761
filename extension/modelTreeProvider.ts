// The Model view's data: the module tree of the opened model (built from safetensors headers only), the current
// target selection, and a summary item with the trainable-parameter count for the chosen method and r.
import * as vscode from 'vscode';
import {
  findNode,
  formatCount,
  isLayerStack,
  linearModules,
  moduleTrainableParams,
  summarizeSelection,
  type MethodSpec,
  type ModuleNode,
  type OpenedModuleTree,
} from '../src/model/moduleTree';
import { moraRank } from '../src/adapters';

/** The model folder (or the lone .safetensors file) that was opened, with its module tree. */
export type LoadedModel = OpenedModuleTree;

/** The synthetic first row of the tree. */
export interface SummaryNode {
  kind: 'summary';
}
export type ModelTreeNode = ModuleNode | SummaryNode;
export const summaryNode: SummaryNode = { kind: 'summary' };

const isSummary = (n: ModelTreeNode): n is SummaryNode => (n as SummaryNode).kind === 'summary';

export class ModelTreeProvider implements vscode.TreeDataProvider<ModelTreeNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<ModelTreeNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  model: LoadedModel | undefined;
  selected = new Set<string>();
  spec: MethodSpec = { method: 'mora', r: 8, moraType: 6 };
  /** mora.json problems, shown on the summary row so a bad hand edit is visible. */
  problems: string[] = [];

  refresh(): void {
    this.changed.fire(undefined);
  }

  dispose(): void {
    this.changed.dispose();
  }

  /** Linear module paths below (and including) a node. */
  linearUnder(node: ModuleNode): string[] {
    return linearModules(node).map((l) => l.path);
  }

  getChildren(node?: ModelTreeNode): ModelTreeNode[] {
    if (!this.model) return [];
    if (!node) return [summaryNode, ...this.model.root.children];
    return isSummary(node) ? [] : node.children;
  }

  getParent(node: ModelTreeNode): ModelTreeNode | undefined {
    if (isSummary(node) || !this.model || !node.path.includes('.')) return undefined;
    const parentPath = node.path.slice(0, node.path.lastIndexOf('.'));
    return this.findByPath(parentPath);
  }

  /** The node at a dotted path; the root ('') is no module of its own. */
  findByPath(p: string): ModuleNode | undefined {
    return this.model && p !== '' ? findNode(this.model.root, p) : undefined;
  }

  getTreeItem(node: ModelTreeNode): vscode.TreeItem {
    return isSummary(node) ? this.summaryItem() : this.moduleItem(node);
  }

  private specLabel(): string {
    return this.spec.method === 'mora' ? `MoRA r=${this.spec.r} type ${this.spec.moraType}` : `LoRA r=${this.spec.r}`;
  }

  private summaryItem(): vscode.TreeItem {
    const s = summarizeSelection(this.model!.root, this.selected, this.spec);
    const item = new vscode.TreeItem(`Trainable: ${formatCount(s.trainable)} (${s.percent.toFixed(3)}%)`);
    item.id = 'mora.summary';
    item.description = s.modules ? `${this.specLabel()} · ${s.modules} modules` : `${this.specLabel()} · tick modules or apply a preset`;
    item.iconPath = new vscode.ThemeIcon(this.problems.length ? 'warning' : 'symbol-numeric');
    const md = new vscode.MarkdownString();
    md.appendMarkdown(`**${s.trainable.toLocaleString('en-US')}** trainable parameters of **${s.total.toLocaleString('en-US')}** `);
    md.appendMarkdown(`(${s.percent.toFixed(4)}%) for ${s.modules} selected modules, ${this.specLabel()}.\n\n`);
    md.appendMarkdown(this.spec.method === 'mora' ? 'MoRA trains one square matrix of r̂² per module.' : 'LoRA trains (in + out)·r per module.');
    if (this.problems.length) md.appendMarkdown(`\n\n**mora.json problems:**\n\n${this.problems.map((p) => `- ${p}`).join('\n')}`);
    md.appendMarkdown('\n\nClick to change the method and r.');
    item.tooltip = md;
    item.contextValue = 'moraSummary';
    item.command = { command: 'mora.setMethod', title: 'Change method and r' };
    return item;
  }

  private moduleItem(node: ModuleNode): vscode.TreeItem {
    const hasChildren = node.children.length > 0;
    // Stacks of repeated layers stay open; each layer starts collapsed so 32 layers make a short list.
    const parentIsStack = (() => {
      const parent = this.getParent(node);
      return parent !== undefined && !isSummary(parent) && isLayerStack(parent);
    })();
    const state = !hasChildren
      ? vscode.TreeItemCollapsibleState.None
      : parentIsStack
        ? vscode.TreeItemCollapsibleState.Collapsed
        : vscode.TreeItemCollapsibleState.Expanded;
    const item = new vscode.TreeItem(node.name, state);
    item.id = `module:${node.path}`;
    const parts: string[] = [];
    if (isLayerStack(node)) parts.push(`×${node.children.length} layers`);
    if (node.linear) parts.push(`${node.linear.inFeatures}→${node.linear.outFeatures}`);
    parts.push(formatCount(node.params));
    if (node.linearCount > 0) {
      const under = this.linearUnder(node);
      const n = under.filter((p) => this.selected.has(p)).length;
      const all = n === under.length;
      item.checkboxState = all ? vscode.TreeItemCheckboxState.Checked : vscode.TreeItemCheckboxState.Unchecked;
      if (!node.linear && n > 0 && !all) parts.push(`${n}/${under.length} selected`);
    }
    item.description = parts.join(' · ');
    item.tooltip = this.tooltip(node);
    item.contextValue = node.linear ? 'moraModule.linear' : node.linearCount > 0 ? 'moraModule.group' : 'moraModule';
    item.iconPath = new vscode.ThemeIcon(
      node.linear ? 'symbol-field' : isLayerStack(node) ? 'layers' : hasChildren ? 'symbol-namespace' : 'symbol-constant',
    );
    return item;
  }

  private tooltip(node: ModuleNode): vscode.MarkdownString {
    const md = new vscode.MarkdownString();
    md.appendMarkdown(`**${node.path}**\n\n`);
    if (node.linear) {
      const l = node.linear;
      md.appendMarkdown(`Linear ${l.inFeatures} → ${l.outFeatures}${l.fanInFanOut ? ' (Conv1D, weight stored [in, out])' : ''}\n\n`);
    }
    if (node.tensors.length) {
      md.appendMarkdown('| tensor | shape | dtype | params |\n|---|---|---|---:|\n');
      for (const t of node.tensors) md.appendMarkdown(`| ${t.name} | [${t.shape.join(', ')}] | ${t.dtype} | ${t.params.toLocaleString('en-US')} |\n`);
      md.appendMarkdown('\n');
    }
    md.appendMarkdown(`${node.params.toLocaleString('en-US')} parameters`);
    if (node.linearCount > 0 && !node.linear) md.appendMarkdown(` · ${node.linearCount} linear modules`);
    if (node.linear) {
      const added = moduleTrainableParams(node.linear, this.spec);
      const rank = this.spec.method === 'mora' ? `r̂ = ${moraRank(node.linear.inFeatures, node.linear.outFeatures, this.spec.r, this.spec.moraType)}, ` : '';
      md.appendMarkdown(`\n\n${this.specLabel()}: ${rank}${added.toLocaleString('en-US')} trainable parameters`);
    }
    return md;
  }
}
