// An image model (an upscaler, a restorer) on an image of any size, as gan_pack's runtime runs it
// (gan_pack/runtime/image_model.py): cut into overlapping tiles whose seams are blended by linear
// weights across each overlap, each tile padded (mirrored) up to the model's size rules and cropped back.
// Channels: an RGB model given RGBA runs the colour, then the alpha as gray RGB, and joins them; a gray
// image given to an RGB model is spread to RGB. Used by the Node example (apply.js) and the web page.

// [start, end) of each tile along one axis: `tile` long, neighbours sharing `overlap`, the last ending at `length`.
export function axisTiles(length, tile, overlap) {
  if (tile <= 0 || length <= tile) return [[0, length]];
  const spans = [];
  for (let s = 0; s < length - tile; s += tile - overlap) spans.push([s, s + tile]);
  spans.push([length - tile, length]);
  return spans;
}

// One tile's blending weight along an axis, in output pixels (the weights of overlapping tiles sum to 1).
export function ramp(spans, i, scale) {
  const [start, end] = spans[i];
  const weight = new Float32Array((end - start) * scale).fill(1);
  if (i > 0 && spans[i - 1][1] > start) {
    const n = (spans[i - 1][1] - start) * scale;
    for (let k = 0; k < n; k++) weight[k] = (k + 0.5) / n;
  }
  if (i + 1 < spans.length && spans[i + 1][0] < end) {
    const n = (end - spans[i + 1][0]) * scale;
    for (let k = 0; k < n; k++) weight[weight.length - n + k] = Math.min(weight[weight.length - n + k], (n - k - 0.5) / n);
  }
  return weight;
}

// The smallest size at or above (h, w) that the spec's size rules take.
export function padded(spec, h, w) {
  if (spec.fixed) return [spec.fixed, spec.fixed];
  const m = spec.multiple_of, up = (x) => Math.max(Math.ceil(x / m) * m, Math.ceil(spec.minimum / m) * m);
  const [ph, pw] = [up(h), up(w)];
  return spec.square ? [Math.max(ph, pw), Math.max(ph, pw)] : [ph, pw];
}

// The spec of an image package's manifest (format gan_pack.image-package/1), checked.
export function imageSpec(manifest) {
  const s = manifest && manifest.spec, whole = (v, lo, hi) => Number.isInteger(v) && v >= lo && v <= hi;
  if (!(manifest && manifest.format === 'gan_pack.image-package/1' && s && whole(s.scale, 1, 16)
    && whole(s.in_channels, 1, 4) && whole(s.out_channels, 1, 4) && whole(s.multiple_of, 1, 1024)
    && whole(s.minimum, 1, 4096) && (s.fixed === null || whole(s.fixed, 1, 4096))))
    throw new Error('the manifest is not an image model\'s package (gan_pack.image-package/1): pack it with ganpack pack');
  return s;
}

// `run(chw Float32Array, h, w)` -> Promise of the model's (C', h*s, w*s) Float32Array. `image`: HWC
// Uint8Array of `channels`. Returns { data (HWC Uint8Array), height, width, channels }.
export async function applyTiled(run, spec, image, height, width, channels, tile = 256, overlap = 8) {
  if (spec.fixed && Math.max(height, width) > spec.fixed) throw new Error(`this model takes images of at most ${spec.fixed}x${spec.fixed}`);
  const want = spec.in_channels, s = spec.scale;
  const pick = (c) => (y, x) => image[(y * width + x) * channels + c];
  let passes, outChannels;                                   // each pass: in_channels readers of the image
  if (channels === want) { passes = [[...Array(want).keys()].map(pick)]; outChannels = spec.out_channels; }
  else if (want === 3 && channels === 4) { passes = [[0, 1, 2].map(pick), [3, 3, 3].map(pick)]; outChannels = 4; }
  else if (want === 3 && channels === 1) { passes = [[0, 0, 0].map(pick)]; outChannels = 3; }
  else if (want === 4) { passes = [[0, channels === 1 ? 0 : 1, channels === 1 ? 0 : 2].map(pick).concat([() => 255])]; outChannels = 3; }
  else throw new Error(`this model takes ${want} channels; an image of ${channels} cannot be given to it`);
  if (spec.fixed || spec.tiling === 'internal') tile = 0;
  const rows = axisTiles(height, tile, overlap), cols = axisTiles(width, tile, overlap);
  const W = width * s, H = height * s, depth = spec.out_channels * passes.length;
  const acc = new Float32Array(H * W * depth), total = new Float32Array(H * W);
  for (let i = 0; i < rows.length; i++) {
    const wy = ramp(rows, i, s), [y0, y1] = rows[i];
    for (let j = 0; j < cols.length; j++) {
      const wx = ramp(cols, j, s), [x0, x1] = cols[j], th = y1 - y0, tw = x1 - x0;
      const [ph, pw] = padded(spec, th, tw);
      for (let p = 0; p < passes.length; p++) {
        const chw = new Float32Array(want * ph * pw);
        for (let c = 0; c < want; c++) {
          for (let y = 0; y < ph; y++) {
            const sy = y < th ? y : (ph - th < th ? 2 * th - 2 - y : th - 1);          // mirrored, or the edge
            for (let x = 0; x < pw; x++) {
              const sx = x < tw ? x : (pw - tw < tw ? 2 * tw - 2 - x : tw - 1);
              chw[(c * ph + y) * pw + x] = passes[p][c](y0 + sy, x0 + sx) / 255;
            }
          }
        }
        const out = await run(chw, ph, pw), oh = ph * s, ow = pw * s;
        for (let c = 0; c < spec.out_channels; c++) {
          for (let y = 0; y < th * s; y++) {
            for (let x = 0; x < tw * s; x++) {
              const w = wy[y] * wx[x], at = ((y0 * s + y) * W + x0 * s + x);
              acc[at * depth + p * spec.out_channels + c] += out[(c * oh + y) * ow + x] * w;
              if (p === 0 && c === 0) total[at] += w;
            }
          }
        }
      }
    }
  }
  const data = new Uint8Array(H * W * outChannels), clip = (v) => Math.min(255, Math.max(0, Math.floor(v * 255 + 0.5)));
  for (let k = 0; k < H * W; k++) {
    const base = k * depth, t = Math.max(total[k], 1e-12);
    for (let c = 0; c < Math.min(outChannels, spec.out_channels); c++) data[k * outChannels + c] = clip(acc[base + c] / t);
    if (passes.length === 2) data[k * outChannels + 3] = clip((acc[base + 3] + acc[base + 4] + acc[base + 5]) / (3 * t));
  }
  return { data, height: H, width: W, channels: outChannels };
}
