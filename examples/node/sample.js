// Sample an exported gan_pack generator with onnxruntime-node and write the images as one PGM strip.
//
//   node sample.js --model ../../exported/mnist-cgan.onnx --label 3 --count 8 --seed 0 --out digits.pgm
//   node sample.js --model M.onnx --noise noise.json --labels 3,3 --out x.pgm   (noise: [[100 floats], ...])
//
// The noise here is standard normal from a small seeded generator (../shared/samples.mjs), not
// numpy's: pass --noise to reproduce Python's images exactly.
import { readFileSync, writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { gaussianNoise, greyStrip } from '../shared/samples.mjs';

function parseArgs(argv) {
  const args = { count: 1, seed: 0, label: 0, out: 'sample.pgm', 'noise-dim': 100 };
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!args.model) throw new Error('--model PATH.onnx is required');
  return args;
}

function toPgm(images, count, height, width) {
  const header = Buffer.from(`P5\n${width * count} ${height}\n255\n`);
  return Buffer.concat([header, Buffer.from(greyStrip(images, count, height, width))]);
}

const args = parseArgs(process.argv.slice(2));
const session = await ort.InferenceSession.create(args.model);
const noiseDim = Number(args['noise-dim']);
let noise, count;
if (args.noise) {
  const rows = JSON.parse(readFileSync(args.noise, 'utf8'));
  count = rows.length;
  noise = Float32Array.from(rows.flat());
} else {
  count = Number(args.count);
  noise = gaussianNoise(count, noiseDim, Number(args.seed));
}
const feeds = { noise: new ort.Tensor('float32', noise, [count, noise.length / count]) };
if (session.inputNames.includes('labels')) {
  const labels = args.labels ? args.labels.split(',').map(Number) : Array(count).fill(Number(args.label));
  feeds.labels = new ort.Tensor('int64', BigInt64Array.from(labels.map(BigInt)), [count]);
}
const { images } = await session.run(feeds);
const [, , height, width] = images.dims;
writeFileSync(args.out, toPgm(images.data, count, height, width));
console.log(`wrote ${args.out} (${count} image(s) of ${height}x${width})`);
