// Decoded 4:2:0 planes to RGB with the stream's own matrix and range: the arithmetic of
// stdo.colour.yuv_to_rgb (bilinear chroma with H.264's default siting: co-sited with even luma
// columns, halfway between luma rows), so the web player sees the frames the Python side sees.

const KR_KB = { bt601: [0.299, 0.114], bt709: [0.2126, 0.0722], bt2020: [0.2627, 0.0593] };

function roundHalfEven(v) { // numpy's rint
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// Chroma plane [ch, cw] -> Float32Array [h, w], bilinear, H.264 default siting.
function upsample(c, cw, ch, w, h) {
  const tall = new Float32Array(cw * h);
  for (let j = 0; j < ch; j++) {
    const up = Math.max(j - 1, 0);
    const down = Math.min(j + 1, ch - 1);
    for (let i = 0; i < cw; i++) {
      const v = c[j * cw + i];
      if (2 * j < h) tall[2 * j * cw + i] = Math.fround(0.75 * v + 0.25 * c[up * cw + i]);
      if (2 * j + 1 < h) tall[(2 * j + 1) * cw + i] = Math.fround(0.75 * v + 0.25 * c[down * cw + i]);
    }
  }
  const out = new Float32Array(w * h);
  for (let r = 0; r < h; r++) {
    for (let i = 0; i < cw; i++) {
      const v = tall[r * cw + i];
      const right = tall[r * cw + Math.min(i + 1, cw - 1)];
      if (2 * i < w) out[r * w + 2 * i] = v;
      if (2 * i + 1 < w) out[r * w + 2 * i + 1] = Math.fround(0.5 * (v + right));
    }
  }
  return out;
}

// Y [h*w], U and V [(h/2)*(w/2)] (I420, tightly packed) -> Uint8Array RGB interleaved [h, w, 3].
export function i420ToRgb(y, u, v, width, height, matrix, fullRange) {
  if (!(matrix in KR_KB)) throw new Error(`unsupported colour matrix ${matrix}`);
  const [kr, kb] = KR_KB[matrix];
  const kg = 1 - kr - kb;
  const [offset, ySpan, cSpan] = fullRange ? [0, 255, 255] : [16, 219, 224];
  const cw = (width + 1) >> 1;
  const ch = (height + 1) >> 1;
  const cb = upsample(u, cw, ch, width, height);
  const cr = upsample(v, cw, ch, width, height);
  // the inverse of stdo.stream._matrix_rows, times 255
  const rCr = 255 * 2 * (1 - kr);
  const bCb = 255 * 2 * (1 - kb);
  const gCb = -255 * (2 * kb * (1 - kb)) / kg;
  const gCr = -255 * (2 * kr * (1 - kr)) / kg;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const yy = Math.fround((y[i] - offset) / ySpan) * 255;
    const b = Math.fround((cb[i] - 128) / cSpan);
    const r = Math.fround((cr[i] - 128) / cSpan);
    rgb[3 * i] = Math.min(255, Math.max(0, roundHalfEven(Math.fround(yy + rCr * r))));
    rgb[3 * i + 1] = Math.min(255, Math.max(0, roundHalfEven(Math.fround(yy + gCb * b + gCr * r))));
    rgb[3 * i + 2] = Math.min(255, Math.max(0, roundHalfEven(Math.fround(yy + bCb * b))));
  }
  return rgb;
}

// Interleaved uint8 RGB [h, w, 3] -> planar Float32Array [3, h, w] in [0, 1] (what the models take), into
// `out` when given (a player reuses one buffer per frame size).
export function rgbToPlanar(rgb, width, height, out = new Float32Array(3 * width * height)) {
  const n = width * height;
  for (let i = 0; i < n; i++) {
    out[i] = rgb[3 * i] / 255;
    out[n + i] = rgb[3 * i + 1] / 255;
    out[2 * n + i] = rgb[3 * i + 2] / 255;
  }
  return out;
}

// Planar float [3, h, w] in [0, 1] -> RGBA bytes for an ImageData, rounded like the Python player; into `out`
// when given.
export function planarToRgba(planar, width, height, out = new Uint8ClampedArray(4 * width * height)) {
  const n = width * height;
  for (let i = 0; i < n; i++) {
    out[4 * i] = roundHalfEven(planar[i] * 255);
    out[4 * i + 1] = roundHalfEven(planar[n + i] * 255);
    out[4 * i + 2] = roundHalfEven(planar[2 * n + i] * 255);
    out[4 * i + 3] = 255;
  }
  return out;
}

// Interleaved uint8 RGB [h, w, 3] -> RGBA bytes (alpha 255) for an ImageData, into `out` when given.
export function rgbToRgba(rgb, width, height, out = new Uint8ClampedArray(4 * width * height)) {
  for (let i = 0, j = 0; i < 3 * width * height; i += 3, j += 4) {
    out[j] = rgb[i];
    out[j + 1] = rgb[i + 1];
    out[j + 2] = rgb[i + 2];
    out[j + 3] = 255;
  }
  return out;
}
