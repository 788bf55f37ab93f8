// What the Node.js and browser examples share: the seeded noise, the image-to-pixel mapping and where
// a model's manifest lies. No dependencies, so Node imports it from disk and the page from the same server.

// gan_pack's portable noise (gan_pack/core/noise.py and docs/noise.md define it): image k of a seed gets
// the same numbers in Python, Node and the browser, whatever the count or batch size.
function mix(x) {                    // lowbias32, on uint32
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

function key(seed, k) {
  const high = Math.floor(k / 4294967296) >>> 0, low = (k % 4294967296) >>> 0;
  return mix((mix((mix((seed ^ 0x9e3779b9) >>> 0) ^ high) >>> 0) ^ low) >>> 0);
}

function normal(k, c) {              // key k, counter c
  const bits = (i) => mix((k ^ mix(((2 * c + i) ^ 0x632be5ab) >>> 0)) >>> 0);
  const u1 = ((bits(0) >>> 8) + 0.5) / 16777216, u2 = ((bits(1) >>> 8) + 0.5) / 16777216;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

// count x dim standard normals of images start .. start + count - 1 of `seed`; with `truncation`,
// components beyond +-truncation are drawn again (at most 256 times, then clipped).
export function portableNoise(seed, start, count, dim, truncation = null) {
  const noise = new Float32Array(count * dim);
  for (let n = 0; n < count; n++) {
    const k = key(seed >>> 0, start + n);
    for (let j = 0; j < dim; j++) {
      let z = normal(k, j);
      for (let attempt = 1; truncation !== null && Math.abs(z) > truncation && attempt <= 256; attempt++)
        z = normal(k, (j + dim * attempt) >>> 0);
      if (truncation !== null && Math.abs(z) > truncation) z = Math.sign(z) * truncation;
      noise[n * dim + j] = z;
    }
  }
  return noise;
}

// The truncation threshold to sample with: `given` when given (0: none), else the package's default
// (its manifest's `truncation`, which `ganpack pack --truncation` records; null: none), as in gan_pack.
export function truncationFor(manifest, given) {
  if (given === undefined || given === null || given === '') {
    const own = manifest.truncation ?? null;
    if (own !== null && !(typeof own === 'number' && own >= 0.1 && own < Infinity))
      throw new Error(`the manifest's truncation ${typeof own === 'number' ? String(own) : JSON.stringify(own)} is not a number >= 0.1: pack the model again`);
    return own;
  }
  const value = decimal(given);
  if (value === 0) return null;
  if (!(value >= 0.1 && value < Infinity)) throw new Error(`truncation must be a number >= 0.1 (or 0 for none), not ${given}`);
  return value;
}

// A number written in decimal (0.7, -1, 2.5e-1) from a flag or a field; anything else (' ', 0x10, Infinity) is NaN,
// where Number() would read ' ' as 0 and 0x10 as 16.
export function decimal(text) {
  if (typeof text === 'number') return text;
  return /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(String(text)) ? Number(text) : NaN;
}

// The point a fraction t of the way from a to b along the great circle (gan_pack.walk.slerp_at).
export function slerp(a, b, t) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  const omega = Math.acos(Math.min(1, Math.max(-1, dot / Math.sqrt(na * nb))));
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++)
    out[i] = omega < 1e-6 ? (1 - t) * a[i] + t * b[i]
      : (Math.sin((1 - t) * omega) * a[i] + Math.sin(t * omega) * b[i]) / Math.sin(omega);
  return out;
}

// Images (count, C, H, W) in [-1, 1], C = 1, 3 or 4 -> one strip (H, count * W, C) of bytes, the mapping of
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

// The psi feed of a StyleGAN-family package (its manifest's contract lists a psi input): one float for
// every image, 1 (no truncation) unless `psi` is given; null for other models, where psi is a mistake.
export function psiFeed(manifest, psi) {
  const given = !(psi === undefined || psi === null || psi === '');
  if (!takesPsi(manifest)) {
    if (given) throw new Error('--psi is for StyleGAN-family packages; this model has no psi input');
    return null;
  }
  const value = given ? decimal(psi) : 1;
  if (!(Math.abs(value) <= 2)) throw new Error(`psi must be a number in -2..2, not ${JSON.stringify(String(psi))}`);
  return Float32Array.of(value);
}

export function takesPsi(manifest) {
  return manifest.contract.inputs.some((input) => input.name === 'psi');
}

// The model's bytes as onnxruntime-node and -web must load them: a psi model with psi made feedable.
export function sessionModel(manifest, bytes) {
  return takesPsi(manifest) ? feedableInput(bytes, 'psi') : bytes;
}

// The model's bytes with the default of input `name` (an initializer of that name) removed, so that the
// input can be fed: onnxruntime-node and -web feed only the inputs a session lists, and a session does
// not list an input that has a default. Protobuf wire format: ModelProto.graph is field 7,
// GraphProto.initializer field 5, TensorProto.name field 8.
export function feedableInput(model, name) {
  const bytes = new Uint8Array(model);
  const parts = [];
  for (const f of protoFields(bytes)) {
    if (f.field !== 7 || f.wire !== 2) {
      parts.push(bytes.subarray(f.start, f.end));
      continue;
    }
    const graph = bytes.subarray(f.dataStart, f.dataEnd);
    const kept = protoFields(graph)
      .filter((g) => !(g.field === 5 && g.wire === 2 && tensorName(graph.subarray(g.dataStart, g.dataEnd)) === name))
      .map((g) => graph.subarray(g.start, g.end));
    const length = kept.reduce((total, part) => total + part.length, 0);
    parts.push(Uint8Array.from([...varint(7 * 8 + 2), ...varint(length)]), ...kept);
  }
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function readVarint(bytes, pos) {
  let value = 0, scale = 1, byte;
  do {
    if (pos >= bytes.length) throw new Error('the model is not an ONNX file (truncated protobuf)');
    byte = bytes[pos++];
    value += (byte & 0x7f) * scale;
    scale *= 128;
  } while (byte & 0x80);
  return [value, pos];
}

function varint(value) {
  const out = [];
  do {
    const low = value % 128;
    value = Math.floor(value / 128);
    out.push(value ? low | 0x80 : low);
  } while (value);
  return out;
}

function protoFields(bytes) {
  const fields = [];
  let pos = 0;
  while (pos < bytes.length) {
    const start = pos;
    let key, length;
    [key, pos] = readVarint(bytes, pos);
    const field = Math.floor(key / 8), wire = key % 8;
    let dataStart = pos;
    if (wire === 0) [, pos] = readVarint(bytes, pos);
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      [length, pos] = readVarint(bytes, pos);
      dataStart = pos;
      pos += length;
    } else throw new Error('the model is not an ONNX file (unknown protobuf wire type)');
    if (pos > bytes.length) throw new Error('the model is not an ONNX file (truncated protobuf)');
    fields.push({ field, wire, start, end: pos, dataStart, dataEnd: pos });
  }
  return fields;
}

function tensorName(tensor) {
  const name = protoFields(tensor).find((f) => f.field === 8 && f.wire === 2);
  return name ? new TextDecoder().decode(tensor.subarray(name.dataStart, name.dataEnd)) : '';
}
