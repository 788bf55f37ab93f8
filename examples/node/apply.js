// Run a packaged gan_pack image model (an upscaler, a restorer) on a PNG with onnxruntime-node: tiles
// with blended seams (../shared/tiles.mjs, as `ganpack apply`), alpha kept, PNG out. What the model takes
// (scale, channels, size rules) comes from its package's manifest, NAME.json beside NAME.onnx.
//
//   node apply.js --model ../../exported/emoji-sr-x4/emoji-sr-x4.onnx --image small.png --out big.png [--tile 128]
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { deflateSync, inflateSync } from 'node:zlib';
import * as ort from 'onnxruntime-node';
import { manifestPaths } from '../shared/samples.mjs';
import { decodePng, encodePng } from '../shared/png.mjs';
import { applyTiled, imageSpec } from '../shared/tiles.mjs';

const FLAGS = ['model', 'image', 'out', 'tile', 'overlap'];
const MAX_PIXELS = 1 << 24;               // input pixels (4096x4096), checked from the header before inflating

function parseArgs(argv) {
  const args = { out: 'applied.png', tile: '256', overlap: '8' };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i].replace(/^--/, '');
    if (!argv[i].startsWith('--') || !FLAGS.includes(flag)) throw new Error(`unknown option ${argv[i]}: use ${FLAGS.map((f) => `--${f}`).join(', ')}`);
    if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`);
    args[flag] = argv[i + 1];
  }
  if (!args.model || !args.image) throw new Error('--model PATH.onnx and --image INPUT.png are required');
  for (const flag of ['tile', 'overlap']) {
    if (!/^\d{1,5}$/.test(args[flag])) throw new Error(`--${flag} must be a whole number, not ${JSON.stringify(args[flag])}`);
    args[flag] = Number(args[flag]);
  }
  if (args.tile && args.overlap * 2 >= args.tile) throw new Error(`--overlap ${args.overlap} must be under half of --tile ${args.tile}`);
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const path = manifestPaths(args.model).find((candidate) => existsSync(candidate));
  if (!path) throw new Error(`no manifest (${manifestPaths(args.model)[0]}) beside ${args.model}: package it with ganpack pack`);
  if (statSync(path).size > 1 << 20) throw new Error(`${path} is over 1 MiB: not a manifest ganpack pack writes`);
  const spec = imageSpec(JSON.parse(readFileSync(path, 'utf8')));
  if (!existsSync(args.image)) throw new Error(`${args.image} does not exist`);
  const inflate = (bytes, size) => inflateSync(bytes, { maxOutputLength: size });
  const image = await decodePng(new Uint8Array(readFileSync(args.image)), args.image, inflate, MAX_PIXELS);
  const session = await ort.InferenceSession.create(readFileSync(args.model));
  const run = async (chw, h, w) => (await session.run({ image: new ort.Tensor('float32', chw, [1, spec.in_channels, h, w]) })).images.data;
  const out = await applyTiled(run, spec, image.data, image.height, image.width, image.channels, args.tile, args.overlap);
  writeFileSync(args.out, encodePng(out.data, out.width, out.height, out.channels, deflateSync));
  console.log(`wrote ${args.out} (${out.width}x${out.height}, ${out.channels} channels, ${spec.scale}x)`);
}

try {
  await main();
} catch (error) {
  console.error(`error: ${error.message.split('\n')[0]}`);
  process.exit(2);
}
