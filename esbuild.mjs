// One build for every entry point: the extension host bundle, the CLI, the child processes (trainer, spectrum and
// extract workers) and each webview.
// Usage: node esbuild.mjs [--watch] [--production]
import * as esbuild from 'esbuild';
import { cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

const common = {
  bundle: true,
  sourcemap: !production,
  minify: production,
  logLevel: 'info',
};

// Node bundles keep the native and optional tfjs packages external: they are loaded at run time in try/catch
// (the optional ones may be absent) and carry binaries that cannot be bundled.
const nodeExternal = [
  'vscode',
  '@tensorflow/tfjs-node',
  '@tensorflow/tfjs-node-gpu',
  'webgpu',
];

const nodeCommon = {
  ...common,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: nodeExternal,
};

const builds = [
  { ...nodeCommon, entryPoints: { extension: 'extension/extension.ts' }, outdir: 'dist' },
  { ...nodeCommon, entryPoints: { cli: 'src/cli/main.ts' }, outdir: 'dist', banner: { js: '#!/usr/bin/env node' } },
  // The model-running commands (TensorFlow.js) load from their own bundle, so the other commands start fast.
  { ...nodeCommon, entryPoints: { cliModel: 'src/cli/modelCommands.ts' }, outdir: 'dist' },
  { ...nodeCommon, entryPoints: { trainer: 'src/trainer/main.ts' }, outdir: 'dist' },
  { ...nodeCommon, entryPoints: { spectrumWorker: 'src/spectrum/worker.ts' }, outdir: 'dist' },
  { ...nodeCommon, entryPoints: { extractWorker: 'src/adapters/extractWorker.ts' }, outdir: 'dist' },
  { ...nodeCommon, entryPoints: { spectrumKernelWorker: 'src/spectrum/parallelKernelWorker.ts' }, outdir: 'dist' },
  {
    ...common,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    entryPoints: Object.fromEntries(
      readdirSync('webview')
        .filter((f) => /^[a-z][A-Za-z]*Main\.ts$/.test(f))
        .map((f) => [`webview/${f.replace(/Main\.ts$/, '')}`, `webview/${f}`]),
    ),
    outdir: 'dist',
    loader: { '.css': 'css' },
  },
];

// The wasm backend loads its .wasm binaries from disk next to the bundle.
function copyAssets() {
  mkdirSync('dist', { recursive: true });
  for (const f of readdirSync('node_modules/@tensorflow/tfjs-backend-wasm/dist')) {
    if (f.endsWith('.wasm')) cpSync(`node_modules/@tensorflow/tfjs-backend-wasm/dist/${f}`, `dist/${f}`);
  }
}

// A production build starts from an empty dist/ so no stale dev source maps end up in the .vsix.
if (production) rmSync('dist', { recursive: true, force: true });
copyAssets();
if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
