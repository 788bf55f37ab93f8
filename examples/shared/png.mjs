// A PNG decoder for the examples (8-bit gray, gray + alpha, RGB or RGBA; not interlaced), in plain
// JavaScript, so that the browser gets an image's straight alpha and the colour under it as the file
// holds them (a canvas would premultiply). `inflate(bytes)` is the platform's zlib: Node's inflateSync,
// or the browser's DecompressionStream. The size is checked from the header before anything is inflated.
export async function decodePng(bytes, where, inflate, maxPixels = 1 << 24) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 33 || view.getUint32(0) !== 0x89504e47) throw new Error(`${where} is not a PNG`);
  const text = (at) => String.fromCharCode(...bytes.subarray(at, at + 4));
  let at = 8, header = null;
  const idat = [];
  while (at + 8 <= bytes.length) {
    const length = view.getUint32(at), type = text(at + 4);
    if (at + 12 + length > bytes.length) throw new Error(`${where} is damaged or truncated`);
    const body = bytes.subarray(at + 8, at + 8 + length);
    if (type === 'IHDR') header = { width: view.getUint32(at + 8), height: view.getUint32(at + 12), depth: body[8], color: body[9], interlace: body[12] };
    if (type === 'IDAT') idat.push(body);
    if (type === 'IEND') break;
    at += 12 + length;
  }
  if (!header || !idat.length) throw new Error(`${where} is damaged or truncated`);
  const { width, height, depth, color, interlace } = header;
  const inChannels = { 0: 1, 2: 3, 4: 2, 6: 4 }[color];
  if (depth !== 8 || !inChannels || interlace) throw new Error(`${where}: only 8-bit, non-interlaced gray, RGB and RGBA PNGs are read here (convert it)`);
  if (width * height > maxPixels) throw new Error(`${where} is ${width}x${height}, over the ${maxPixels} pixels this example takes`);
  const joined = new Uint8Array(idat.reduce((n, part) => n + part.length, 0));
  idat.reduce((offset, part) => { joined.set(part, offset); return offset + part.length; }, 0);
  const row = width * inChannels, pixels = new Uint8Array(height * row);
  let raw;
  try { raw = await inflate(joined, height * (row + 1)); } catch { throw new Error(`${where} is damaged or truncated`); }
  if (raw.length !== height * (row + 1)) throw new Error(`${where} is damaged or truncated`);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (row + 1)], line = raw.subarray(y * (row + 1) + 1, (y + 1) * (row + 1));
    for (let x = 0; x < row; x++) {
      const a = x >= inChannels ? pixels[y * row + x - inChannels] : 0, b = y ? pixels[(y - 1) * row + x] : 0;
      const c = x >= inChannels && y ? pixels[(y - 1) * row + x - inChannels] : 0;
      const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
      const predictor = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][filter];
      if (predictor === undefined) throw new Error(`${where} is damaged (row filter ${filter})`);
      pixels[y * row + x] = (line[x] + predictor) & 255;
    }
  }
  if (inChannels !== 2) return { data: pixels, height, width, channels: inChannels };
  const rgba = new Uint8Array(width * height * 4);                  // gray + alpha -> RGBA
  for (let k = 0; k < width * height; k++) rgba.set([pixels[2 * k], pixels[2 * k], pixels[2 * k], pixels[2 * k + 1]], 4 * k);
  return { data: rgba, height, width, channels: 4 };
}

// The browser's inflate: zlib data through DecompressionStream('deflate').
export async function browserInflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
