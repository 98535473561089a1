// Bicubic upsampling by an integer scale, as stdo.resample.upscale_bicubic computes it (torch's antialiased
// bicubic, which is PIL's: the cubic kernel with a = -0.5, taps that fall outside the frame dropped and the rest
// renormalised, one pass along rows then one along columns, rounded to 0..255 like a display). What a plain
// bundle (no model) plays; at scale 1 it is the frame itself.

const A = -0.5;

function cubic(x) {
  const t = Math.abs(x);
  if (t < 1) return ((A + 2) * t - (A + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * A;
  return 0;
}

// For each of the `size * scale` outputs: the first input index and the normalised weights of its taps.
function taps(size, scale) {
  const out = [];
  for (let i = 0; i < size * scale; i++) {
    const center = (i + 0.5) / scale;
    const first = Math.max(Math.trunc(center - 2 + 0.5), 0);
    const last = Math.min(Math.trunc(center + 2 + 0.5), size);
    const weights = [];
    for (let j = first; j < last; j++) weights.push(Math.fround(cubic(j - center + 0.5)));
    const total = weights.reduce((a, b) => a + b, 0);
    out.push({ first, weights: weights.map((w) => Math.fround(w / total)) });
  }
  return out;
}

// Round half to even, as torch rounds.
function roundEven(v) {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// lr: planar float [3, height, width] in [0, 1] (rgbToPlanar's); returns planar float [3, H, W] in [0, 1].
export function upscaleBicubic(lr, width, height, scale, out) {
  const W = width * scale;
  const H = height * scale;
  const frame = out ?? new Float32Array(3 * H * W);
  if (scale === 1) {
    frame.set(lr.subarray(0, 3 * width * height));
    return frame;
  }
  const across = taps(width, scale);
  const down = taps(height, scale);
  const rows = new Float32Array(height * W); // one channel after the pass along rows
  for (let c = 0; c < 3; c++) {
    const plane = c * width * height;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < W; x++) {
        const { first, weights } = across[x];
        let v = 0;
        for (let k = 0; k < weights.length; k++) v = Math.fround(v + Math.fround(weights[k] * Math.round(lr[plane + y * width + first + k] * 255)));
        rows[y * W + x] = v;
      }
    }
    for (let y = 0; y < H; y++) {
      const { first, weights } = down[y];
      for (let x = 0; x < W; x++) {
        let v = 0;
        for (let k = 0; k < weights.length; k++) v = Math.fround(v + Math.fround(weights[k] * rows[(first + k) * W + x]));
        frame[c * H * W + y * W + x] = Math.min(Math.max(roundEven(v), 0), 255) / 255;
      }
    }
  }
  return frame;
}
