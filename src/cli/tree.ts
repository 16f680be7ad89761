import type { Command } from './command';
import { numberFlag, parseFlags, requireFlag, UsageError } from './command';
import { ModelWeights } from '../safetensors';
import { moraRank } from '../adapters';
import { parseTargets } from './train';
import {
  buildModuleTree,
  formatCount,
  isPresetId,
  linearModules,
  moduleTrainableParams,
  presetSelection,
  presets,
  summarizeSelection,
  targetsToSelection,
  type MethodSpec,
  type ModuleNode,
} from '../model/moduleTree';

const usage = `usage: mora tree --model DIR [--targets LIST|REGEX|all-linear | --preset NAME] [--method mora|lora] [--r N]
                 [--mora-type 1|6] [--json] [--full]

The Model view, headless: the module tree from the safetensors headers alone (no weights are read), the linear
modules an adapter can target, and for the selection the MoRA r̂ (or LoRA rank) and trainable parameters per module.

  --model DIR        model folder (model.safetensors or sharded with an index), or one .safetensors file
  --targets T        PEFT target_modules: comma list of names, a regex, or all-linear
  --preset NAME      ${presets.map((p) => p.id).join(' | ')}
  --method M         mora (default) | lora
  --r N              LoRA rank / MoRA r for r̂ = floor(sqrt((in+out)·r) + 0.5) (default 8)
  --mora-type 1|6    MoRA operator pair (default 6; type 6 makes r̂ even)
  --full             print every module of the tree with its tensors, not only the linear ones
  --json             machine-readable output
`;

function printTree(node: ModuleNode, depth: number, out: string[]): void {
  for (const c of node.children) {
    const tensors = c.tensors.map((t) => `${t.name} ${t.dtype}[${t.shape.join(',')}]`).join('  ');
    out.push(`${'  '.repeat(depth)}${c.name}  (${formatCount(c.params)})${tensors ? '  ' + tensors : ''}`);
    printTree(c, depth + 1, out);
  }
}

export const treeCommand: Command = {
  name: 'tree',
  summary: 'module tree from headers only, with MoRA r̂ / trainable parameters of a target selection',
  usage,
  async run(argv) {
    const { values } = parseFlags(argv, {
      model: { type: 'string' },
      targets: { type: 'string' },
      preset: { type: 'string' },
      method: { type: 'string' },
      r: { type: 'string' },
      'mora-type': { type: 'string' },
      json: { type: 'boolean' },
      full: { type: 'boolean' },
    });
    const method = values.method ?? 'mora';
    if (method !== 'mora' && method !== 'lora') throw new UsageError(`--method must be mora or lora, got '${method}'`);
    const moraType = numberFlag(values, 'mora-type', 6, { integer: true });
    if (moraType !== 1 && moraType !== 6) throw new UsageError(`--mora-type must be 1 or 6, got ${moraType}`);
    const spec: MethodSpec = { method, r: numberFlag(values, 'r', 8, { integer: true, min: 1 }), moraType };
    if (values.targets !== undefined && values.preset !== undefined) throw new UsageError('give --targets or --preset, not both');
    if (values.preset !== undefined && !isPresetId(values.preset)) {
      throw new UsageError(`--preset must be one of ${presets.map((p) => p.id).join(', ')}`);
    }

    const weights = await ModelWeights.open(requireFlag(values, 'model'));
    let root: ModuleNode;
    try {
      root = buildModuleTree(weights.names().map((n) => [n, weights.info(n)] as [string, { dtype: string; shape: number[] }]));
    } finally {
      await weights.close();
    }
    const linear = linearModules(root);
    const selected = new Set(
      values.preset !== undefined && isPresetId(values.preset)
        ? presetSelection(linear, values.preset)
        : values.targets !== undefined
          ? targetsToSelection(linear, parseTargets(values.targets))
          : [],
    );
    const rows = linear.map((l) => ({
      path: l.path,
      in: l.inFeatures,
      out: l.outFeatures,
      dtype: l.dtype,
      selected: selected.has(l.path),
      rank: spec.method === 'mora' ? moraRank(l.inFeatures, l.outFeatures, spec.r, spec.moraType) : spec.r,
      trainable: moduleTrainableParams(l, spec),
    }));
    const summary = summarizeSelection(root, selected, spec);

    if (values.json) {
      process.stdout.write(JSON.stringify({ spec, totalParams: root.params, linear: rows, summary }, null, 2) + '\n');
      return;
    }
    const lines: string[] = [];
    if (values.full) {
      printTree(root, 0, lines);
      lines.push('');
    }
    const rankLabel = spec.method === 'mora' ? 'r̂' : 'r';
    const w = Math.max(6, ...rows.map((r) => r.path.length));
    lines.push(`${'  module'.padEnd(w + 2)}  ${'in'.padStart(6)}  ${'out'.padStart(6)}  dtype  ${rankLabel.padStart(5)}  ${'trainable'.padStart(10)}`);
    for (const r of rows) {
      lines.push(`${r.selected ? '✓ ' : '  '}${r.path.padEnd(w)}  ${String(r.in).padStart(6)}  ${String(r.out).padStart(6)}  ${r.dtype.padEnd(5)}  ${String(r.rank).padStart(5)}  ${r.trainable.toLocaleString('en-US').padStart(10)}`);
    }
    const what = spec.method === 'mora' ? `MoRA type ${spec.moraType}, r=${spec.r}` : `LoRA r=${spec.r}`;
    lines.push(
      '',
      `${linear.length} linear modules, ${root.params.toLocaleString('en-US')} parameters; selected ${summary.modules} (${what}): ` +
        `${summary.trainable.toLocaleString('en-US')} trainable (${summary.percent.toFixed(3)}%)`,
    );
    process.stdout.write(lines.join('\n') + '\n');
  },
};
