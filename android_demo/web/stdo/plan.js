// The inference plan (stdo.plan): decoding and checking plan.bin, and executing it on a frame.
//
// plan.bin (version 3), inflated: little-endian int32, the frame plan of each frame [T], then the runs
// column by column [9, N] = (plan, model, shape, y, x, top, left, height, width), sorted by frame plan. A run
// cuts the LR window of `shape` at (y, x), runs `model` on it, and keeps the SR pixels of the
// rectangle (top, left, height, width) (LR coordinates, times the scale). The kept rectangles
// of a frame plan tile the frame exactly once.

import { BundleError } from './errors.js';

const FIELDS = 9;
const MAX_SHAPES = 8;

function need(cond, message) {
  if (!cond) throw new BundleError(`bad plan: ${message}`);
}

function littleEndianInt32(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Int32Array(bytes.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt32(4 * i, true);
  return out;
}

// Check an inflated plan against its manifest entry and the bundle's geometry; returns
// {framePlan: Int32Array [T], shapes: [[h, w]...], margin, windows, batches} where windows[p] lists the
// distinct windows of frame plan p with the rectangles each keeps, and batches[p] the same windows grouped by
// model and shape: each group is one model run of a batch of windows, as the Python player makes it.
export function decodePlan(raw, { plans, runs, shapes, margin, frames, models, width, height }) {
  need(Array.isArray(shapes) && shapes.length >= 1 && shapes.length <= MAX_SHAPES
    && shapes.every((s) => Array.isArray(s) && s.length === 2 && s.every((v) => Number.isInteger(v) && v >= 1)),
  `shapes must be 1..${MAX_SHAPES} [height, width] pairs`);
  need(shapes.every(([h, w]) => h <= height && w <= width), 'a shape is larger than the frame');
  const values = littleEndianInt32(raw);
  const framePlan = values.subarray(0, frames);
  const table = values.subarray(frames);
  need(framePlan.every((p) => p >= 0 && p < plans), `a frame names a frame plan outside 0..${plans - 1}`);
  need(new Set(framePlan).size === plans, 'a frame plan no frame uses');
  const counts = new Int32Array((height + 1) * (width + 1));
  const windows = Array.from({ length: plans }, () => new Map());
  let previous = 0;
  for (let i = 0; i < runs; i++) {
    const [plan, model, shape, y, x, top, left, h, w] = Array.from({ length: FIELDS }, (_, f) => table[f * runs + i]);
    need(plan >= previous && plan < plans, `runs must be sorted by frame plan, in 0..${plans - 1}`);
    previous = plan;
    need(model >= 0 && model < models, `a run names a model outside 0..${models - 1}`);
    need(shape >= 0 && shape < shapes.length, 'a run names a shape the plan does not have');
    const [sh, sw] = shapes[shape];
    need(y >= 0 && x >= 0 && y + sh <= height && x + sw <= width, 'a window runs outside the frame');
    need(h > 0 && w > 0 && top >= y && left >= x && top + h <= y + sh && left + w <= x + sw, 'a kept rectangle leaves its window');
    need(Math.max(top - margin, 0) >= y && Math.max(left - margin, 0) >= x && Math.min(top + h + margin, height) <= y + sh
      && Math.min(left + w + margin, width) <= x + sw, `a window holds less than the plan's margin of ${margin} around its kept rectangle`);
    const key = `${model},${shape},${y},${x}`;
    if (!windows[plan].has(key)) windows[plan].set(key, { model, shape, y, x, kept: [] });
    windows[plan].get(key).kept.push([top, left, h, w]);
  }
  for (let p = 0; p < plans; p++) {
    need(windows[p].size > 0, 'a frame plan has no runs');
    counts.fill(0); // difference array: +1 over each kept rectangle, then every pixel must be 1
    for (const { kept } of windows[p].values()) {
      for (const [top, left, h, w] of kept) {
        counts[top * (width + 1) + left] += 1;
        counts[top * (width + 1) + left + w] -= 1;
        counts[(top + h) * (width + 1) + left] -= 1;
        counts[(top + h) * (width + 1) + left + w] += 1;
      }
    }
    for (let r = 0; r <= height; r++) { // prefix sums, rows then columns
      let run = 0;
      for (let c = 0; c <= width; c++) {
        run += counts[r * (width + 1) + c];
        counts[r * (width + 1) + c] = run + (r > 0 ? counts[(r - 1) * (width + 1) + c] : 0);
      }
    }
    for (let r = 0; r < height; r++) {
      for (let c = 0; c < width; c++) {
        need(counts[r * (width + 1) + c] === 1, `frame plan ${p} does not tile the frame exactly once`);
      }
    }
  }
  const lists = windows.map((m) => [...m.values()]);
  return { framePlan, shapes, margin, windows: lists, batches: lists.map(groupByModelAndShape) };
}

function groupByModelAndShape(windows) {
  const groups = new Map();
  for (const window of windows) {
    const key = `${window.model},${window.shape}`;
    if (!groups.has(key)) groups.set(key, { model: window.model, shape: window.shape, windows: [] });
    groups.get(key).windows.push(window);
  }
  return [...groups.values()];
}

// One Float32Array per (name, length), made once and reused: no per-frame allocation in the loop.
function scratch(buffers, name, length) {
  const key = `${name} ${length}`;
  if (!buffers.has(key)) buffers.set(key, new Float32Array(length));
  return buffers.get(key);
}

// Execute frame `t`'s plan. lr: Float32Array planar [3, height, width] in [0, 1];
// run(model, shape, input Float32Array [n, 3, sh, sw], n) -> Promise<Float32Array [n, 3, s*sh, s*sw]>: each
// group of windows of one model and shape is one call. Returns Float32Array planar [3, s*height, s*width] in
// [0, 1] (clamped as it is copied). Options: `out`, the frame buffer to fill (else a new one); `buffers`, a Map
// that keeps the window batches between frames; `timing`, an object whose run_ms and copy_ms grow by the time
// spent in the runtime and in this function's own copies; `batch: false` runs every window on its own (the
// benchmark's comparison).
export async function executePlan(plan, t, lr, width, height, scale, run,
  { out, buffers = new Map(), timing, batch = true } = {}) {
  const W = width * scale;
  const H = height * scale;
  const frame = out ?? new Float32Array(3 * H * W);
  const began = performance.now();
  let runMs = 0;
  const groups = batch ? plan.batches[plan.framePlan[t]]
    : plan.windows[plan.framePlan[t]].map((w) => ({ model: w.model, shape: w.shape, windows: [w] }));
  for (const { model, shape, windows } of groups) {
    const [sh, sw] = plan.shapes[shape];
    const n = windows.length;
    const size = 3 * sh * sw;
    const input = scratch(buffers, `in ${shape}`, n * size);
    windows.forEach(({ y, x }, i) => {
      for (let c = 0; c < 3; c++) {
        for (let r = 0; r < sh; r++) {
          const src = c * height * width + (y + r) * width + x;
          input.set(lr.subarray(src, src + sw), i * size + c * sh * sw + r * sw);
        }
      }
    });
    const started = performance.now();
    const sr = await run(model, shape, input, n);
    runMs += performance.now() - started;
    const ow = sw * scale;
    const oh = sh * scale;
    windows.forEach(({ y, x, kept }, i) => {
      const base = i * 3 * oh * ow;
      for (const [top, left, kh, kw] of kept) {
        const oy = (top - y) * scale;
        const ox = (left - x) * scale;
        const rowLength = kw * scale;
        for (let c = 0; c < 3; c++) {
          for (let r = 0; r < kh * scale; r++) {
            const src = base + c * oh * ow + (oy + r) * ow + ox;
            const dst = c * H * W + (top * scale + r) * W + left * scale;
            for (let k = 0; k < rowLength; k++) {
              const v = sr[src + k];
              frame[dst + k] = v < 0 ? 0 : v > 1 ? 1 : v;
            }
          }
        }
      }
    });
  }
  if (timing) {
    timing.run_ms = (timing.run_ms || 0) + runMs;
    timing.copy_ms = (timing.copy_ms || 0) + performance.now() - began - runMs;
  }
  return frame;
}
