// Samples a packaged gan_pack generator with onnxruntime-web and draws the images on a canvas, 1 canvas
// pixel per image pixel (the CSS scales it up). The model is exported/mnist-cgan/mnist-cgan.onnx, or
// ?model=PATH (relative to this page) for any package; what it needs (noise size, class names, image
// shape) comes from the package's manifest, NAME.json beside NAME.onnx. Noise: gan_pack's portable
// noise (../shared/samples.mjs), so a seed gives the images `ganpack sample --seed` gives; the boxes
// (or ?seed=7&label=3&count=4&truncation=0.7, and ?psi=0.7 for a StyleGAN) choose them. ?noise=FILE.json ([[noise_dim floats], ...])
// with ?labels=0,3,5 takes a caller's own noise. "walk" plays `ganpack interpolate --gif`'s loop
// (?walk=F draws its frame F). When done, window.ganpack holds {pixels, width, height, channels,
// classNames} read back from the page.
import {
  manifestPaths, pixelStrip, portableNoise, psiFeed, sessionModel, slerp, takesPsi, truncationFor,
} from '../shared/samples.mjs';

const WALK = { points: 4, frames: 60, fps: 20 };

// ort is the global that ort.wasm.min.js (a classic script, loaded first) defines.
ort.env.wasm.wasmPaths = new URL('node_modules/onnxruntime-web/dist/', location.href).href;
ort.env.wasm.numThreads = 1;
const DEFAULT_MODEL = '../../exported/mnist-cgan/mnist-cgan.onnx';

async function readManifest(model) {
  for (const path of manifestPaths(model)) {
    const response = await fetch(path);
    if (response.ok) return response.json();
  }
  throw new Error(`no manifest (${manifestPaths(model)[0]}) beside ${model}: package it with ganpack pack`);
}

function draw(images, count, [channels, height, width], classNames) {
  const canvas = document.getElementById('view');
  canvas.width = width * count;
  canvas.height = height;
  const ctx = canvas.getContext('2d');
  const frame = ctx.createImageData(width * count, height);
  const strip = pixelStrip(images, count, channels, height, width);
  for (let i = 0; i < width * count * height; i++) {
    const pixel = channels === 1 ? [strip[i], strip[i], strip[i], 255]
      : channels === 3 ? [...strip.subarray(3 * i, 3 * i + 3), 255] : strip.subarray(4 * i, 4 * i + 4);
    frame.data.set(pixel, 4 * i);        // RGBA: the canvas shows the page's checkerboard through it
  }
  ctx.putImageData(frame, 0, 0);
  canvas.style.width = `${Math.min(56 * count, 1120)}px`;
  canvas.classList.toggle('alpha', channels === 4);
  const back = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const pixels = [];
  for (let i = 0; i < canvas.width * canvas.height; i++)
    for (let c = 0; c < channels; c++) pixels.push(back[4 * i + c]);
  window.ganpack = { pixels, width: canvas.width, height: canvas.height, channels, classNames };
}

// The truncation threshold in use (null: none): the package's default or ?truncation= at first (exact,
// whatever the slider's step), then the slider's, whose right end means no truncation.
let threshold = null;

async function inputs(params, manifest) {
  if (params.has('noise')) {
    const rows = await (await fetch(params.get('noise'))).json();
    const labels = params.has('labels') ? params.get('labels').split(',').map(Number) : [];
    return { noise: Float32Array.from(rows.flat()), labels, count: rows.length };
  }
  const count = Number(document.getElementById('count').value);
  const label = Number(document.getElementById('label').value);
  const seed = Number(document.getElementById('seed').value);
  const labels = manifest.num_classes ? Array(count).fill(label) : [];
  return { noise: portableNoise(seed, 0, count, manifest.noise_dim, threshold), labels, count };
}

async function run(session, manifest, noise, labels, count) {
  const feeds = { noise: new ort.Tensor('float32', noise, [count, manifest.noise_dim]) };
  if (manifest.num_classes) feeds.labels = new ort.Tensor('int64', BigInt64Array.from(labels.map(BigInt)), [count]);
  const psi = psiFeed(manifest, takesPsi(manifest) ? document.getElementById('style-psi').value : null);
  if (psi) feeds.psi = new ort.Tensor('float32', psi, [1]);
  return (await session.run(feeds)).images.data;
}

async function sample(session, manifest, params) {
  const { noise, labels, count } = await inputs(params, manifest);
  const started = performance.now();
  const images = await run(session, manifest, noise, labels, count);
  draw(images, count, manifest.image_shape, manifest.class_names);
  const names = [...new Set(labels)].map((label) => manifest.class_names[label]).join(', ');
  document.getElementById('status').textContent =
    `${count} image(s)${names ? ` of ${names}` : ''} in ${(performance.now() - started).toFixed(1)} ms`;
}

// Frame f of the loop through images 0..points-1 of the seed: one panel per class of a cGAN.
async function walkFrame(session, manifest, ends, frame) {
  const position = (frame * WALK.points) / WALK.frames, i = Math.floor(position);
  const z = slerp(ends.subarray(i * manifest.noise_dim, (i + 1) * manifest.noise_dim),
    ends.subarray(((i + 1) % WALK.points) * manifest.noise_dim, (((i + 1) % WALK.points) + 1) * manifest.noise_dim),
    position - i);
  const panels = Math.max(manifest.num_classes, 1);
  const noise = new Float32Array(panels * manifest.noise_dim);
  for (let p = 0; p < panels; p++) noise.set(z, p * manifest.noise_dim);
  const labels = manifest.num_classes ? [...Array(panels).keys()] : [];
  draw(await run(session, manifest, noise, labels, panels), panels, manifest.image_shape, manifest.class_names);
}

async function playWalk(session, manifest) {
  const seed = Number(document.getElementById('seed').value);
  const ends = portableNoise(seed, 0, WALK.points, manifest.noise_dim, threshold);
  for (let frame = 0; frame < WALK.frames; frame++) {
    const started = performance.now();
    await walkFrame(session, manifest, ends, frame);
    document.getElementById('status').textContent = `walk: frame ${frame + 1}/${WALK.frames}`;
    await new Promise((done) => setTimeout(done, Math.max(0, 1000 / WALK.fps - (performance.now() - started))));
  }
}

async function main() {
  const params = new URLSearchParams(location.search);
  const model = params.get('model') || DEFAULT_MODEL;
  const manifest = await readManifest(model);
  document.getElementById('model').textContent = model;
  document.getElementById('title').textContent =
    `gan_pack in the browser: ${manifest.name}`;
  const select = document.getElementById('label');
  manifest.class_names.forEach((name, i) => select.add(new Option(name, String(i))));
  select.value = String(Math.min(3, Math.max(manifest.num_classes - 1, 0)));
  document.getElementById('label-box').hidden = !manifest.num_classes;
  document.getElementById('psi-box').hidden = !takesPsi(manifest);
  if (params.has('psi')) document.getElementById('style-psi').value = params.get('psi');
  for (const name of ['seed', 'label', 'count'])
    if (params.has(name)) document.getElementById(name).value = params.get(name);
  const slider = document.getElementById('truncation');
  threshold = truncationFor(manifest, params.get('truncation'));
  slider.value = String(threshold ?? 3);
  const showThreshold = () => { document.getElementById('truncation-value').textContent = threshold ?? 'off'; };
  slider.oninput = () => {
    threshold = Number(slider.value) >= 3 ? null : Number(slider.value);
    showThreshold();
  };
  showThreshold();
  const bytes = new Uint8Array(await (await fetch(model)).arrayBuffer());
  const session = await ort.InferenceSession.create(sessionModel(manifest, bytes), { executionProviders: ['wasm'] });
  document.getElementById('go').onclick = () => sample(session, manifest, new URLSearchParams());
  document.getElementById('walk').onclick = () => playWalk(session, manifest);
  if (params.has('walk')) {
    const ends = portableNoise(Number(document.getElementById('seed').value), 0, WALK.points, manifest.noise_dim,
      threshold);
    await walkFrame(session, manifest, ends, Number(params.get('walk')));
  } else {
    await sample(session, manifest, params);
  }
  window.ganpackDone = true;
}

main().catch((error) => {
  document.getElementById('status').textContent = `error: ${error.message}`;
  window.ganpackError = String(error);
});
