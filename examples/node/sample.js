// Sample a packaged gan_pack generator with onnxruntime-node and write the images as one strip:
// NAME.png (grey, RGB, or RGBA keeping the transparency), or PGM / PPM. What the model needs (noise size, classes and their names,
// image shape) comes from the package's manifest, NAME.json beside NAME.onnx (`ganpack pack`).
//
//   node sample.js --model ../../exported/mnist-cgan/mnist-cgan.onnx --label 3 --count 8 --seed 0 --out digits.pgm
//   node sample.js --model M.onnx --seed 7 --truncation 0.7 --count 4 --out x.pgm   (default: the package's; 0: none)
//   node sample.js --model M.onnx --noise noise.json --labels 3,3 --out x.pgm   (noise: [[noise_dim floats], ...])
//   node sample.js --model stylegan.onnx --seed 7 --psi 0.7 --count 4 --out x.pgm   (StyleGAN-family packages)
//
// The noise is gan_pack's portable noise (../shared/samples.mjs): a seed gives the same images here as
// `ganpack sample --seed` and the web page.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import * as ort from 'onnxruntime-node';
import { manifestPaths, pixelStrip, portableNoise, psiFeed, sessionModel, truncationFor } from '../shared/samples.mjs';

function parseArgs(argv) {
  const args = { count: 1, seed: 0, label: 0, out: 'sample.pgm' };
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!args.model) throw new Error('--model PATH.onnx is required');
  return args;
}

function readManifest(model) {
  const path = manifestPaths(model).find((candidate) => existsSync(candidate));
  if (!path) throw new Error(`no manifest (${manifestPaths(model)[0]}) beside ${model}: package it with ganpack pack`);
  return JSON.parse(readFileSync(path, 'utf8'));
}

// The strip as a file by its name: NAME.png (grey, RGB or RGBA with its alpha), or NAME.pgm / NAME.ppm.
function encode(out, images, count, [channels, height, width]) {
  const strip = pixelStrip(images, count, channels, height, width);
  if (out.toLowerCase().endsWith('.png')) return toPng(strip, width * count, height, channels);
  if (channels === 4) throw new Error(`${out}: images with transparency need --out NAME.png (PGM/PPM have no alpha)`);
  const magic = channels === 3 ? 'P6' : 'P5';
  return Buffer.concat([Buffer.from(`${magic}\n${width * count} ${height}\n255\n`), Buffer.from(strip)]);
}

function crc32(bytes) {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

function pngChunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

// PNG, 8 bits per channel, no filter: colour type 0 (grey), 2 (RGB) or 6 (RGBA, straight alpha).
function toPng(strip, width, height, channels) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8;
  header[9] = { 1: 0, 3: 2, 4: 6 }[channels];
  const row = width * channels;
  const rows = Buffer.alloc(height * (row + 1));
  for (let y = 0; y < height; y++) rows.set(strip.subarray(y * row, (y + 1) * row), y * (row + 1) + 1);
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(rows)), pngChunk('IEND', Buffer.alloc(0))]);
}

// A mistake (a missing file, a bad flag) is one line on stderr and exit code 2, as in ganpack.
async function main() {
  const args = parseArgs(process.argv.slice(2));
  const manifest = readManifest(args.model);
  const model = readFileSync(args.model);
  const session = await ort.InferenceSession.create(sessionModel(manifest, model));
  let noise, count;
  if (args.noise) {
    const rows = JSON.parse(readFileSync(args.noise, 'utf8'));
    count = rows.length;
    noise = Float32Array.from(rows.flat());
  } else {
    count = Number(args.count);
    noise = portableNoise(Number(args.seed), 0, count, manifest.noise_dim, truncationFor(manifest, args.truncation));
  }
  const feeds = { noise: new ort.Tensor('float32', noise, [count, manifest.noise_dim]) };
  let labels = [];
  if (manifest.num_classes > 0) {
    labels = args.labels ? args.labels.split(',').map(Number) : Array(count).fill(Number(args.label));
    const bad = labels.find((label) => !(label >= 0 && label < manifest.num_classes));
    if (bad !== undefined) throw new Error(`label ${bad} is out of range: classes 0..${manifest.num_classes - 1}`);
    feeds.labels = new ort.Tensor('int64', BigInt64Array.from(labels.map(BigInt)), [count]);
  }
  const psi = psiFeed(manifest, args.psi);
  if (psi) feeds.psi = new ort.Tensor('float32', psi, [1]);
  const { images } = await session.run(feeds);
  writeFileSync(args.out, encode(args.out, images.data, count, manifest.image_shape));
  const names = [...new Set(labels)].map((label) => manifest.class_names[label]).join(', ');
  console.log(`wrote ${args.out} (${count} image(s) of ${manifest.image_shape.join('x')}${names ? `: ${names}` : ''})`);
}

try {
  await main();
} catch (error) {
  console.error(`error: ${error.message.split('\n')[0]}`);
  process.exit(2);
}
