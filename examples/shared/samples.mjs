// What the Node.js and browser examples share: the seeded noise, the image-to-pixel mapping and where
// a model's manifest lies. No dependencies, so Node imports it from disk and the page from the same server.

// A small seeded uniform generator in [0, 1) (mulberry32).
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// count x dim standard-normal values (Box-Muller). Not numpy's stream: pass Python's noise to match it.
export function gaussianNoise(count, dim, seed) {
  const uniform = mulberry32(seed);
  const noise = new Float32Array(count * dim);
  for (let i = 0; i < noise.length; i++) {
    const u = Math.max(uniform(), 1e-12);
    noise[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  }
  return noise;
}

// Images (count, C, H, W) in [-1, 1], C = 1 or 3 -> one strip (H, count * W, C) of bytes, the mapping of
// gan_pack.images.to_uint8.
export function pixelStrip(images, count, channels, height, width) {
  const strip = new Uint8Array(height * width * count * channels);
  for (let n = 0; n < count; n++)
    for (let c = 0; c < channels; c++)
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++) {
          const v = images[((n * channels + c) * height + y) * width + x];
          strip[(y * width * count + n * width + x) * channels + c] =
            Math.min(255, Math.max(0, Math.floor((v + 1) * 127.5 + 0.5)));
        }
  return strip;
}

// Where `ganpack pack` put the manifest of a model: NAME.json beside NAME.onnx (and beside its
// variants NAME.fp16.onnx, NAME.int8.onnx). The manifest holds what onnxruntime-node and -web cannot
// read from the model's metadata: noise_dim, num_classes, class_names, image_shape.
export function manifestPaths(model) {
  const stem = model.replace(/\.onnx$/, '');
  return [...new Set([`${stem}.json`, `${stem.replace(/\.(fp16|int8)$/, '')}.json`])];
}
