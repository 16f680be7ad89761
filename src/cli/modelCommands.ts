// The commands that run a model through TensorFlow.js. They form a bundle of their own (dist/cliModel.js) that
// cli.js loads only when one of them runs: parsing TensorFlow.js alone is ≈ 150 ms that every other command would pay.
export { demoCommand } from './demo';
export { evalUuidCommand } from './evalUuid';
