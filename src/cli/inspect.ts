import { promises as fs } from 'node:fs';
import type { Command } from './command';
import { parseFlags, UsageError } from './command';
import { ModelWeights, numel, SafetensorsError, type TensorInfo } from '../safetensors';

const usage = `usage: mora inspect FILE|DIR [--json]

Prints a safetensors header after full validation: every tensor's name, dtype, shape and byte size, the tensor
count, the total number of parameters and the metadata. FILE is a .safetensors file or a
model.safetensors.index.json; DIR is a model folder (sharded or not). Tensor data is never read.

flags:
  --json               print one machine-readable JSON object instead of a table
`;

interface InspectRow {
  name: string;
  dtype: string;
  shape: number[];
  bytes: number;
  params: number;
  shard: string;
}

export interface InspectReport {
  path: string;
  shards: { path: string; fileSize: number; metadata: Record<string, string> | null }[];
  indexTotalSize: number | null;
  tensorCount: number;
  totalParams: number;
  totalBytes: number;
  dtypes: Record<string, number>;
  tensors: InspectRow[];
}

/** Gathers everything `inspect` prints; validation errors propagate as SafetensorsError. */
export async function inspectWeights(target: string): Promise<InspectReport> {
  const w = await ModelWeights.open(target);
  try {
    const row = (name: string, info: TensorInfo): InspectRow => ({
      name,
      dtype: info.dtype,
      shape: info.shape,
      bytes: info.dataOffsets[1] - info.dataOffsets[0],
      params: numel(info.shape),
      shard: w.shardOf(name),
    });
    const tensors = w.names().map((n) => row(n, w.info(n)));
    const dtypes: Record<string, number> = {};
    for (const t of tensors) dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + t.params;
    return {
      path: target,
      shards: w.shards.map((s) => ({ path: s, fileSize: w.file(s).header.fileSize, metadata: w.file(s).metadata })),
      indexTotalSize: w.index?.totalSize ?? null,
      tensorCount: tensors.length,
      totalParams: tensors.reduce((a, t) => a + t.params, 0),
      totalBytes: tensors.reduce((a, t) => a + t.bytes, 0),
      dtypes,
      tensors,
    };
  } finally {
    await w.close();
  }
}

function formatTable(r: InspectReport): string {
  const lines: string[] = [];
  const sharded = r.shards.length > 1 || r.indexTotalSize !== null;
  for (const s of r.shards) {
    lines.push(`${s.path}  (${s.fileSize} bytes)`);
    const meta = s.metadata ? Object.entries(s.metadata).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ') : '(none)';
    lines.push(`  metadata: ${meta}`);
  }
  if (r.indexTotalSize !== null) lines.push(`index total_size: ${r.indexTotalSize}`);
  lines.push('');
  const shapes = r.tensors.map((t) => `[${t.shape.join(', ')}]`);
  const wName = Math.max(4, ...r.tensors.map((t) => t.name.length));
  const wShape = Math.max(5, ...shapes.map((s) => s.length));
  lines.push(`${'name'.padEnd(wName)}  dtype    ${'shape'.padEnd(wShape)}  ${'bytes'.padStart(12)}${sharded ? '  shard' : ''}`);
  r.tensors.forEach((t, i) => {
    const shard = sharded ? `  ${t.shard.split(/[\\/]/).pop()}` : '';
    lines.push(`${t.name.padEnd(wName)}  ${t.dtype.padEnd(7)}  ${shapes[i].padEnd(wShape)}  ${String(t.bytes).padStart(12)}${shard}`);
  });
  lines.push('');
  const byDtype = Object.entries(r.dtypes).map(([d, n]) => `${d}: ${n}`).join(', ');
  lines.push(`${r.tensorCount} tensors, ${r.totalParams} parameters (${byDtype || 'none'}), ${r.totalBytes} bytes of data`);
  return lines.join('\n');
}

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'validate and print a safetensors header (file, index or model folder)',
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { json: { type: 'boolean' } }, true);
    if (positionals.length !== 1) throw new UsageError('expected exactly one FILE or DIR');
    const target = positionals[0];
    await fs.stat(target).catch(() => {
      throw new SafetensorsError('NoWeights', `${target}: no such file or folder`);
    });
    const report = await inspectWeights(target);
    process.stdout.write((values.json ? JSON.stringify(report, null, 2) : formatTable(report)) + '\n');
    return 0;
  },
};
