// Sample a packaged gan_pack generator with onnxruntime-node and write the images as one strip:
// NAME.png (grey, RGB, or RGBA keeping the transparency), or PGM / PPM. What the model needs (noise size, classes and their names,
// image shape) comes from the package's manifest, NAME.json beside NAME.onnx (`ganpack pack`).
//
//   node sample.js --model ../../exported/mnist-cgan/mnist-cgan.onnx --label 3 --count 8 --seed 0 --out digits.pgm
//   node sample.js --model ../../exported/emoji-cgan/emoji-cgan.onnx --label smileys-emotion --count 8 --out faces.png
//   node sample.js --model M.onnx --seed 7 --truncation 0.7 --count 4 --out x.pgm   (default: the package's; 0: none)
//   node sample.js --model M.onnx --noise noise.json --labels 3,3 --out x.pgm   (noise: [[noise_dim floats], ...])
//   node sample.js --model stylegan.onnx --seed 7 --psi 0.7 --count 4 --out x.pgm   (StyleGAN-family packages)
//
// The noise is gan_pack's portable noise (../shared/samples.mjs): a seed gives the same images here as
// `ganpack sample --seed` and the web page.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import * as ort from 'onnxruntime-node';
import { encodePng } from '../shared/png.mjs';
import { manifestPaths, pixelStrip, portableNoise, psiFeed, sessionModel, truncationFor } from '../shared/samples.mjs';

const FLAGS = ['model', 'count', 'seed', 'label', 'labels', 'out', 'truncation', 'noise', 'psi'];
const MAX_COUNT = 1024;                   // images in one strip (one onnxruntime call)
const MAX_NOISE_BYTES = 64 << 20;         // a --noise file

function parseArgs(argv) {
  const args = { out: 'sample.pgm' };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i].replace(/^--/, '');
    if (!argv[i].startsWith('--') || !FLAGS.includes(flag)) throw new Error(`unknown option ${argv[i]}: use ${FLAGS.map((f) => `--${f}`).join(', ')}`);
    if (i + 1 >= argv.length || argv[i + 1].startsWith('--')) throw new Error(`${argv[i]} needs a value`);
    args[flag] = argv[i + 1];
  }
  if (!args.model) throw new Error('--model PATH.onnx is required');
  return args;
}

// A whole number written in decimal digits, within low..high; anything else (abc, 0x10, 1e3, ' ') is refused.
function wholeNumber(text, flag, low, high) {
  const value = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!(value >= low && value <= high)) throw new Error(`${flag} must be a whole number in ${low}..${high}, not ${JSON.stringify(text)}`);
  return value;
}

// The manifest's facts this program relies on, checked: a manifest is a file someone else may have written.
function checkManifest(manifest) {
  const whole = (v, low, high) => Number.isInteger(v) && v >= low && v <= high;
  const shape = manifest.image_shape;
  const problems = [];
  if (!whole(manifest.noise_dim, 1, 65536)) problems.push('noise_dim is not a whole number in 1..65536');
  if (!whole(manifest.num_classes, 0, 100000)) problems.push('num_classes is not a whole number in 0..100000');
  if (!(Array.isArray(shape) && shape.length === 3 && [1, 3, 4].includes(shape[0]) && whole(shape[1], 1, 4096)
    && whole(shape[2], 1, 4096))) problems.push('image_shape is not [C, H, W] with C 1, 3 or 4 and sides up to 4096');
  if (!(Array.isArray(manifest.class_names) && manifest.class_names.every((name) => typeof name === 'string')))
    problems.push('class_names is not a list of names');
  if (!(manifest.contract && Array.isArray(manifest.contract.inputs))) problems.push('contract.inputs is missing');
  if (problems.length) throw new Error(`the manifest is not one ganpack pack writes (${problems.join('; ')}): pack the model again`);
  return manifest;
}

function readManifest(model) {
  const path = manifestPaths(model).find((candidate) => existsSync(candidate));
  if (!path) throw new Error(`no manifest (${manifestPaths(model)[0]}) beside ${model}: package it with ganpack pack`);
  if (statSync(path).size > 1 << 20) throw new Error(`${path} is over 1 MiB: not a manifest ganpack pack writes`);
  return checkManifest(JSON.parse(readFileSync(path, 'utf8')));
}

// A class by its index (3) or by its name in the manifest (smileys-emotion).
function classIndex(text, manifest) {
  const named = manifest.class_names.indexOf(text);
  if (named >= 0) return named;
  if (!/^\d{1,9}$/.test(text)) throw new Error(`label ${JSON.stringify(text)} is neither a class index nor a class name (${manifest.class_names.slice(0, 10).join(', ')})`);
  const label = Number(text);
  if (label >= manifest.num_classes) throw new Error(`label ${label} is out of range: classes 0..${manifest.num_classes - 1}`);
  return label;
}

// --noise FILE: [[noise_dim numbers], ...], at most MAX_COUNT rows.
function readNoise(file, dim) {
  if (statSync(file).size > MAX_NOISE_BYTES) throw new Error(`--noise ${file} is over ${MAX_NOISE_BYTES >> 20} MiB`);
  const rows = JSON.parse(readFileSync(file, 'utf8'));
  if (!(Array.isArray(rows) && rows.length >= 1 && rows.length <= MAX_COUNT
    && rows.every((row) => Array.isArray(row) && row.length === dim && row.every(Number.isFinite))))
    throw new Error(`--noise ${file} must hold 1..${MAX_COUNT} rows of ${dim} finite numbers`);
  return { count: rows.length, noise: Float32Array.from(rows.flat()) };
}

// The strip as a file by its name: NAME.png (grey, RGB or RGBA with its alpha), or NAME.pgm / NAME.ppm.
function encode(out, images, count, [channels, height, width]) {
  const strip = pixelStrip(images, count, channels, height, width);
  if (out.toLowerCase().endsWith('.png')) return encodePng(strip, width * count, height, channels, deflateSync);
  if (channels === 4) throw new Error(`${out}: images with transparency need --out NAME.png (PGM/PPM have no alpha)`);
  const magic = channels === 3 ? 'P6' : 'P5';
  return Buffer.concat([Buffer.from(`${magic}\n${width * count} ${height}\n255\n`), Buffer.from(strip)]);
}

// The images of every row, BATCH at a time: onnxruntime's activations stay bounded however many are asked for.
const BATCH = 64;
async function runInBatches(session, manifest, noise, labels, count, psi) {
  const dim = manifest.noise_dim, values = manifest.image_shape.reduce((a, b) => a * b);
  const images = new Float32Array(count * values);
  for (let start = 0; start < count; start += BATCH) {
    const rows = Math.min(BATCH, count - start);
    const feeds = { noise: new ort.Tensor('float32', noise.subarray(start * dim, (start + rows) * dim), [rows, dim]) };
    if (manifest.num_classes > 0)
      feeds.labels = new ort.Tensor('int64', BigInt64Array.from(labels.slice(start, start + rows).map(BigInt)), [rows]);
    if (psi) feeds.psi = new ort.Tensor('float32', psi, [1]);
    images.set((await session.run(feeds)).images.data, start * values);
  }
  return images;
}

// A mistake (a missing file, a bad flag) is one line on stderr and exit code 2, as in ganpack.
async function main() {
  const args = parseArgs(process.argv.slice(2));
  const manifest = readManifest(args.model);
  const model = readFileSync(args.model);
  const session = await ort.InferenceSession.create(sessionModel(manifest, model));
  let noise, count;
  if (args.noise) {
    ({ count, noise } = readNoise(args.noise, manifest.noise_dim));
  } else {
    count = wholeNumber(args.count ?? '1', '--count', 1, MAX_COUNT);
    const seed = wholeNumber(args.seed ?? '0', '--seed', 0, 4294967295);
    noise = portableNoise(seed, 0, count, manifest.noise_dim, truncationFor(manifest, args.truncation));
  }
  let labels = [];
  if (manifest.num_classes > 0) {
    labels = args.labels ? args.labels.split(',').map((text) => classIndex(text, manifest))
      : Array(count).fill(classIndex(args.label ?? '0', manifest));
    if (labels.length !== count) throw new Error(`--labels gives ${labels.length} labels for ${count} images`);
  } else if (args.label !== undefined || args.labels !== undefined) {
    throw new Error('this model is unconditional (num_classes 0): drop --label/--labels');
  }
  const psi = psiFeed(manifest, args.psi);
  const images = await runInBatches(session, manifest, noise, labels, count, psi);
  writeFileSync(args.out, encode(args.out, images, count, manifest.image_shape));
  const names = [...new Set(labels)].map((label) => manifest.class_names[label]).join(', ');
  console.log(`wrote ${args.out} (${count} image(s) of ${manifest.image_shape.join('x')}${names ? `: ${names}` : ''})`);
}

try {
  await main();
} catch (error) {
  console.error(`error: ${error.message.split('\n')[0]}`);
  process.exit(2);
}
