// The inference plan (stdo.plan): derived from the model map, as every client derives it, and executed on a
// frame.
//
// A run (model, shape, y, x, top, left, height, width) cuts the LR window of `shape` at (y, x), runs `model` on
// it, and keeps the SR pixels of the rectangle (top, left, height, width) (LR coordinates, times the scale). The
// kept rectangles of a frame tile it exactly once. `derivePlan` is stdo.plan.make_plan step for step, so that
// both players make the same runs from the same bundle (tests/test_web.py compares them run for run).

import { upscaleBicubic } from './bicubic.js';
import { BundleError } from './errors.js';

const MAX_SHAPES = 8;
const MAX_MARGIN = 256;

function need(cond, message) {
  if (!cond) throw new BundleError(`bad plan: ${message}`);
}

// floor(i * length / parts) for i = 0..parts (stdo.grid.edges)
function edges(length, parts) {
  return Array.from({ length: parts + 1 }, (_, i) => Math.floor((i * length) / parts));
}

// stdo.plan.base_shape: the window of the largest patch plus margins
function baseShape(rowEdges, colEdges, width, height, margin) {
  const largest = (e) => Math.max(...e.slice(1).map((v, i) => v - e[i]));
  return [Math.min(largest(rowEdges) + 2 * margin, height), Math.min(largest(colEdges) + 2 * margin, width)];
}

// stdo.plan.check_parameters: the shipped shapes and margin, checked against the grid
export function checkParameters(shapes, margin, { rows, cols, width, height }) {
  need(Number.isInteger(margin) && margin >= 0 && margin <= MAX_MARGIN,
    `margin must be an integer in 0..${MAX_MARGIN}, got ${JSON.stringify(margin)}`);
  need(Array.isArray(shapes) && shapes.length >= 1 && shapes.length <= MAX_SHAPES
    && shapes.every((s) => Array.isArray(s) && s.length === 2 && s.every((v) => Number.isInteger(v) && v >= 1)),
  `shapes must be 1..${MAX_SHAPES} [height, width] pairs`);
  need(shapes.every(([h, w]) => h <= height && w <= width), 'a shape is larger than the frame');
  const [bh, bw] = baseShape(edges(height, rows), edges(width, cols), width, height, margin);
  need(shapes.some(([h, w]) => h >= bh && w >= bw), `no shape holds one patch with its margin of ${margin} (${bh}x${bw} LR pixels)`);
}

// stdo.plan._rectangles: greedy same-model rectangles of patches [model, r0, c0, r1, c1] (r1, c1 exclusive)
function rectangles(map, rows, cols) {
  const covered = new Uint8Array(rows * cols);
  const out = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (covered[r * cols + c]) continue;
      const m = map[r * cols + c];
      let c1 = c + 1;
      while (c1 < cols && map[r * cols + c1] === m && !covered[r * cols + c1]) c1 += 1;
      let r1 = r + 1;
      const rowFree = (row) => {
        for (let k = c; k < c1; k++) if (map[row * cols + k] !== m || covered[row * cols + k]) return false;
        return true;
      };
      while (r1 < rows && rowFree(r1)) r1 += 1;
      for (let i = r; i < r1; i++) for (let k = c; k < c1; k++) covered[i * cols + k] = 1;
      out.push([m, r, c, r1, c1]);
    }
  }
  return out;
}

// stdo.plan._place: top (or left) of a window of `window` pixels holding [start - margin, start + size + margin)
function place(start, size, window, length, margin) {
  const lo = Math.max(start - margin, 0);
  const hi = Math.min(start + size + margin, length);
  return Math.min(Math.max(lo - Math.floor((window - (hi - lo)) / 2), 0), length - window);
}

function compareRuns(a, b) {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

// stdo.plan.plan_frame: runs [model, shape, y, x, top, left, h, w] of one frame's model map, sorted
function planFrame(map, g, margin, shapes) {
  const areas = shapes.map(([h, w]) => h * w);
  const order = shapes.map((_, i) => i).sort((a, b) => areas[a] - areas[b] || a - b);
  const runs = [];
  const todo = rectangles(map, g.rows, g.cols);
  while (todo.length) {
    const [m, r0, c0, r1, c1] = todo.pop();
    const top = g.rowEdges[r0];
    const left = g.colEdges[c0];
    const h = g.rowEdges[r1] - top;
    const w = g.colEdges[c1] - left;
    const nh = Math.min(top + h + margin, g.height) - Math.max(top - margin, 0);
    const nw = Math.min(left + w + margin, g.width) - Math.max(left - margin, 0);
    const fit = order.find((i) => shapes[i][0] >= nh && shapes[i][1] >= nw);
    if (fit === undefined) { // halve along the longer side (checkParameters made sure one patch fits)
      if (r1 - r0 >= c1 - c0 && r1 - r0 > 1) {
        const mid = Math.floor((r0 + r1) / 2);
        todo.push([m, r0, c0, mid, c1], [m, mid, c0, r1, c1]);
      } else {
        need(c1 - c0 > 1, `no shape holds one patch with its margin of ${margin}`);
        const mid = Math.floor((c0 + c1) / 2);
        todo.push([m, r0, c0, r1, mid], [m, r0, mid, r1, c1]);
      }
      continue;
    }
    const [sh, sw] = shapes[fit];
    runs.push([m, fit, place(top, h, sh, g.height, margin), place(left, w, sw, g.width, margin), top, left, h, w]);
  }
  const full = shapes.findIndex(([h, w]) => h === g.height && w === g.width);
  if (full >= 0) { // a model whose windows cost more than the frame runs once on the whole frame
    for (const m of new Set(runs.map((r) => r[0]))) {
      const mine = runs.filter((r) => r[0] === m);
      if (mine.reduce((sum, r) => sum + areas[r[1]], 0) > areas[full]) {
        const rest = runs.filter((r) => r[0] !== m);
        runs.length = 0;
        runs.push(...rest, ...mine.map((r) => [m, full, 0, 0, ...r.slice(4)]));
      }
    }
  }
  return runs.sort(compareRuns);
}

// What stdo.plan.digest hashes: little-endian int32, the scale, framePlan [T], then the runs row by row [N, 9].
export function planBytes({ framePlan, runs }, scale) {
  const bytes = new Uint8Array(4 * (1 + framePlan.length + runs.length));
  const view = new DataView(bytes.buffer);
  view.setInt32(0, scale, true);
  framePlan.forEach((v, i) => view.setInt32(4 * (1 + i), v, true));
  runs.forEach((v, i) => view.setInt32(4 * (1 + framePlan.length + i), v, true));
  return bytes;
}

// The plan of a model map (Uint8Array [T, rows, cols]), as stdo.plan.make_plan makes it: one frame plan per
// distinct frame map, numbered in the order frames first use them. Returns {framePlan: Int32Array [T], shapes,
// margin, runs: Int32Array [N, 9] (FIELDS of stdo.plan, the Python plan's rows), windows, batches} where
// windows[p] lists the distinct windows of frame plan p with the rectangles each keeps, and batches[p] the same
// windows grouped by model and shape: each group is one model run of a batch of windows, as the Python player
// makes it.
export function derivePlan(modelMap, { frames, rows, cols, width, height, shapes, margin }) {
  checkParameters(shapes, margin, { rows, cols, width, height });
  const g = { rows, cols, width, height, rowEdges: edges(height, rows), colEdges: edges(width, cols) };
  const size = rows * cols;
  const framePlan = new Int32Array(frames);
  const numbered = new Map();
  const planRuns = [];
  for (let t = 0; t < frames; t++) {
    const map = modelMap.subarray(t * size, (t + 1) * size);
    const key = map.join(',');
    if (!numbered.has(key)) {
      numbered.set(key, numbered.size);
      planRuns.push(planFrame(map, g, margin, shapes));
    }
    framePlan[t] = numbered.get(key);
  }
  const total = planRuns.reduce((sum, r) => sum + r.length, 0);
  const runs = new Int32Array(total * 9);
  const windows = planRuns.map((list, p) => {
    const byWindow = new Map();
    for (const [model, shape, y, x, top, left, h, w] of list) {
      const key = `${model},${shape},${y},${x}`;
      if (!byWindow.has(key)) byWindow.set(key, { model, shape, y, x, kept: [] });
      byWindow.get(key).kept.push([top, left, h, w]);
    }
    return [...byWindow.values()];
  });
  let i = 0;
  planRuns.forEach((list, p) => list.forEach((run) => { runs.set([p, ...run], 9 * i); i += 1; }));
  return { framePlan, shapes, margin, runs, windows, batches: windows.map(groupByModelAndShape) };
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
  if (plan === null) { // a plain bundle: no model, the stream upsampled as stdo.resample.upscale_bicubic does
    const began = performance.now();
    const frame = upscaleBicubic(lr, width, height, scale, out);
    if (timing) {
      timing.run_ms = timing.run_ms || 0;
      timing.copy_ms = (timing.copy_ms || 0) + performance.now() - began;
    }
    return frame;
  }
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
