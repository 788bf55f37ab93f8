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

function crc32(bytes) {
  let crc = ~0;
  for (const byte of bytes) { crc ^= byte; for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1)); }
  return ~crc >>> 0;
}

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length), view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

// PNG, 8 bits per channel, no filter: colour type 0 (grey), 2 (RGB) or 6 (RGBA, straight alpha), from
// HWC pixels. `deflate(bytes)` is the platform's zlib (Node's deflateSync).
export function encodePng(data, width, height, channels, deflate) {
  const header = new Uint8Array(13), view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header[8] = 8;
  header[9] = { 1: 0, 3: 2, 4: 6 }[channels];
  const row = width * channels, rows = new Uint8Array(height * (row + 1));
  for (let y = 0; y < height; y++) rows.set(data.subarray(y * row, (y + 1) * row), y * (row + 1) + 1);
  const parts = [new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', header),
    chunk('IDAT', new Uint8Array(deflate(rows))), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => { out.set(p, at); return at + p.length; }, 0);
  return out;
}
