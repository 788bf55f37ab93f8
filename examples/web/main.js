// Samples exported/mnist-cgan.onnx (or, with ?model=PATH, any MNIST-shaped cGAN with 100-d noise, e.g.
// one made by `ganpack export generator.pth --from tutorial-cgan`) with onnxruntime-web and draws
// the images on a canvas, 1 canvas pixel per image pixel (the CSS scales it up). Noise: standard normal from ../shared/samples.mjs
// seeded by the seed box, or, with ?noise=FILE.json ([[100 floats], ...]) and ?labels=0,3,5, exactly
// the noise a caller gives (the tests use that to compare with Python). When done, window.ganpack
// holds {pixels, width, height} read back from the canvas.
import { gaussianNoise, greyStrip } from '../shared/samples.mjs';

// ort is the global that ort.wasm.min.js (a classic script, loaded first) defines.
ort.env.wasm.wasmPaths = new URL('node_modules/onnxruntime-web/dist/', location.href).href;
ort.env.wasm.numThreads = 1;
const DEFAULT_MODEL = '../../exported/mnist-cgan.onnx';
const NOISE_DIM = 100;

function draw(images, count, height, width) {
  const canvas = document.getElementById('view');
  canvas.width = width * count;
  canvas.height = height;
  const ctx = canvas.getContext('2d');
  const frame = ctx.createImageData(width * count, height);
  greyStrip(images, count, height, width).forEach((grey, i) => frame.data.set([grey, grey, grey, 255], 4 * i));
  ctx.putImageData(frame, 0, 0);
  canvas.style.width = `${Math.min(56 * count, 1120)}px`;
  const back = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const pixels = Array.from({ length: canvas.width * canvas.height }, (_, i) => back[4 * i]);
  window.ganpack = { pixels, width: canvas.width, height: canvas.height };
}

async function inputs(params) {
  if (params.has('noise')) {
    const rows = await (await fetch(params.get('noise'))).json();
    const labels = params.get('labels').split(',').map(Number);
    return { noise: Float32Array.from(rows.flat()), labels, count: rows.length };
  }
  const count = Number(document.getElementById('count').value);
  const digit = Number(document.getElementById('digit').value);
  const seed = Number(document.getElementById('seed').value);
  return { noise: gaussianNoise(count, NOISE_DIM, seed), labels: Array(count).fill(digit), count };
}

async function sample(session, params) {
  const { noise, labels, count } = await inputs(params);
  const feeds = {
    noise: new ort.Tensor('float32', noise, [count, NOISE_DIM]),
    labels: new ort.Tensor('int64', BigInt64Array.from(labels.map(BigInt)), [count]),
  };
  const started = performance.now();
  const { images } = await session.run(feeds);
  const [, , height, width] = images.dims;
  draw(images.data, count, height, width);
  document.getElementById('status').textContent =
    `${count} image(s) of digit(s) ${[...new Set(labels)].join(', ')} in ${(performance.now() - started).toFixed(1)} ms`;
}

async function main() {
  const select = document.getElementById('digit');
  for (let d = 0; d < 10; d++) select.add(new Option(String(d), String(d)));
  select.value = '3';
  const params = new URLSearchParams(location.search);
  const model = params.get('model') || DEFAULT_MODEL;
  document.getElementById('model').textContent = model;
  const session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'] });
  document.getElementById('go').onclick = () => sample(session, new URLSearchParams());
  await sample(session, params);
  window.ganpackDone = true;
}

main().catch((error) => {
  document.getElementById('status').textContent = `error: ${error.message}`;
  window.ganpackError = String(error);
});
