// Upscales a dropped (or ?image=URL) picture with a packaged gan_pack image model and onnxruntime-web, in
// tiles with blended seams as `ganpack apply` cuts them (../shared/tiles.mjs). The model is
// exported/emoji-sr-x4/, or ?model=PATH (relative to this page); its scale, channels and size rules come
// from the package's manifest. When done, window.ganpack holds {pixels, width, height, channels}.
import { manifestPaths } from '../shared/samples.mjs';
import { browserInflate, decodePng } from '../shared/png.mjs';
import { applyTiled, imageSpec } from '../shared/tiles.mjs';

ort.env.wasm.wasmPaths = new URL('node_modules/onnxruntime-web/dist/', location.href).href;
ort.env.wasm.numThreads = 1;
const DEFAULT_MODEL = '../../exported/emoji-sr-x4/emoji-sr-x4.onnx';
const MAX_PIXELS = 1 << 22;               // input pixels a page takes (2048x2048)

async function readManifest(model) {
  for (const path of manifestPaths(model)) {
    const response = await fetch(path);
    if (response.ok) return response.json();
  }
  throw new Error(`no manifest (${manifestPaths(model)[0]}) beside ${model}: package it with ganpack pack`);
}

// A PNG's own pixels (straight alpha, the colour under it kept); JPEG and WebP through a canvas, as RGB
// where opaque.
async function pixelsOf(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  if (bytes[0] === 0x89 && bytes[1] === 0x50) {
    const image = await decodePng(bytes, 'the image', browserInflate, MAX_PIXELS);
    showInput(image);
    return image;
  }
  const bitmap = await createImageBitmap(blob, { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  if (bitmap.width * bitmap.height > MAX_PIXELS) throw new Error(`the image is ${bitmap.width}x${bitmap.height}, over the ${MAX_PIXELS} pixels this page takes`);
  const canvas = document.getElementById('input');
  [canvas.width, canvas.height] = [bitmap.width, bitmap.height];
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  let opaque = true;
  for (let i = 3; i < rgba.length; i += 4) if (rgba[i] !== 255) { opaque = false; break; }
  if (!opaque) return { data: new Uint8Array(rgba), height: bitmap.height, width: bitmap.width, channels: 4 };
  const rgb = new Uint8Array(bitmap.width * bitmap.height * 3);
  for (let k = 0; k < bitmap.width * bitmap.height; k++) rgb.set(rgba.subarray(4 * k, 4 * k + 3), 3 * k);
  return { data: rgb, height: bitmap.height, width: bitmap.width, channels: 3 };
}

function showInput(image) {
  draw(image, 'input');
}

function draw({ data, height, width, channels }, id = 'view') {
  const canvas = document.getElementById(id);
  [canvas.width, canvas.height] = [width, height];
  const ctx = canvas.getContext('2d');
  const frame = ctx.createImageData(width, height);
  for (let k = 0; k < width * height; k++) {
    const p = data.subarray(k * channels, (k + 1) * channels);
    frame.data.set(channels === 1 ? [p[0], p[0], p[0], 255] : channels === 3 ? [p[0], p[1], p[2], 255] : p, 4 * k);
  }
  ctx.putImageData(frame, 0, 0);
  if (id === 'view') window.ganpack = { pixels: Array.from(data), width, height, channels };
}

async function upscale(session, spec, blob) {
  const status = document.getElementById('status');
  const image = await pixelsOf(blob);
  const tile = Number(document.getElementById('tile').value);
  status.textContent = `upscaling ${image.width}x${image.height} in tiles of ${tile}…`;
  const started = performance.now();
  const run = async (chw, h, w) => (await session.run({ image: new ort.Tensor('float32', chw, [1, spec.in_channels, h, w]) })).images.data;
  const out = await applyTiled(run, spec, image.data, image.height, image.width, image.channels, tile, Math.min(8, tile >> 2));
  draw(out);
  status.textContent = `${out.width}x${out.height} (${spec.scale}x) in ${((performance.now() - started) / 1000).toFixed(1)} s`;
}

async function main() {
  const params = new URLSearchParams(location.search);
  const model = params.get('model') || DEFAULT_MODEL;
  document.getElementById('model').textContent = model;
  const spec = imageSpec(await readManifest(model));
  const session = await ort.InferenceSession.create(model);
  document.getElementById('status').textContent = `ready: a ${spec.scale}x model; drop an image`;
  if (params.has('tile')) document.getElementById('tile').value = params.get('tile');
  const take = (blob) => upscale(session, spec, blob).catch((error) => { document.getElementById('status').textContent = `error: ${error.message}`; });
  document.getElementById('file').addEventListener('change', (event) => take(event.target.files[0]));
  const drop = document.getElementById('drop');
  drop.addEventListener('dragover', (event) => event.preventDefault());
  drop.addEventListener('drop', (event) => { event.preventDefault(); take(event.dataTransfer.files[0]); });
  if (params.has('image')) await upscale(session, spec, await (await fetch(params.get('image'))).blob());
  window.ganpackDone = true;
}

main().catch((error) => {
  document.getElementById('status').textContent = `error: ${error.message}`;
  window.ganpackError = String(error);
});
