// The bundle's model files as runners: ONNX Runtime Web (.onnx, any window shape) or LiteRT.js
// (.tflite, a signature per plan shape), both on WebAssembly with SIMD, with threads when the page
// is cross-origin isolated. A runner maps (model, shape index, input Float32Array [n, 3, h, w] in
// [0, 1], n) to the SR windows Float32Array [n, 3, s*h, s*w]: ONNX models take the n windows as one batch,
// a TFLite file's signature of that shape (fixed input [1, 3, h, w]) runs them one after another into one reused
// output buffer.
// runner.release() frees what the runner holds (ONNX sessions; LiteRT.js's compiled models stay, see below); the
// runner is unusable after it. A LiteRT.js runner says in runner.threaded how many of its files run on threads.

import * as ort from 'onnxruntime-web';
import { loadAndCompile, loadLiteRt, Tensor } from '@litertjs/core';

import { signatureName } from './bundle.js';
import { BundleError } from './errors.js';

export const BACKENDS = { onnxruntime: 'onnx', litert: 'tflite', webgpu: 'onnx' };

export const hasWebGpu = () => 'gpu' in navigator;

export function threadCount() {
  return globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
}

let liteRtLoaded = null;
// LiteRT.js's threaded build starts navigator.hardwareConcurrency worker threads with the page, and a compiled model
// run on n threads holds n - 1 of them for good: one compiled past that runs on one thread whatever it asks for
// (measured: the third and fourth of four two-thread models ran at one-thread speed), and deleting a compiled model
// of the threaded build hangs the page once three exist. So the page compiles each file once (cached by its
// sha256 and thread count), never deletes one, and gives threads to the files that do the most work first.
let liteRtWorkers = 0;
const liteRtCompiled = new Map(); // 'sha256 threads asked for' -> {compiledModel, numThreads: the threads it got}

function filesOf(bundle, format, precision) {
  return bundle.manifest.models.map((model, i) => {
    const files = model.files.filter((f) => f.format === format && f.precision === precision);
    if (files.length === 0) {
      throw new BundleError(`the bundle has no ${format} ${precision} model for model ${i}: export it with `
        + `stdo-export --format ${format}${precision === 'fp32' ? '' : ` --quantize ${precision}`}`);
    }
    return files;
  });
}

async function onnxRunner(bundle, precision, threads, gpu = false) {
  let runtime = ort;
  if (gpu) {
    if (!hasWebGpu()) throw new Error('this browser has no WebGPU (navigator.gpu): choose ONNX Runtime Web or LiteRT.js');
    runtime = await import('onnxruntime-web/webgpu');
  }
  runtime.env.wasm.wasmPaths = new URL('../node_modules/onnxruntime-web/dist/', import.meta.url).href;
  runtime.env.wasm.numThreads = threads;
  const sessions = [];
  for (const [file] of filesOf(bundle, 'onnx', precision)) {
    const bytes = new Uint8Array(await bundle.file(file));
    sessions.push(await runtime.InferenceSession.create(bytes, { executionProviders: [gpu ? 'webgpu' : 'wasm'] }));
  }
  const run = async (model, shape, input, n = 1) => {
    const [h, w] = bundle.plan.shapes[shape];
    const out = await sessions[model].run({ lr: new runtime.Tensor('float32', input, [n, 3, h, w]) });
    return gpu ? out.sr.getData() : out.sr.data;
  };
  run.release = async () => {
    for (const session of sessions) await session.release();
  };
  return run;
}

// The models the plan runs, each with the LR pixels it runs over the clip, the most first.
function modelsByWork(plan) {
  const uses = new Float64Array(plan.batches.length); // frames per frame plan
  for (const p of plan.framePlan) uses[p] += 1;
  const pixels = new Map(); // model -> LR pixels
  plan.batches.forEach((groups, p) => {
    for (const { model, shape, windows } of groups) {
      const [h, w] = plan.shapes[shape];
      pixels.set(model, (pixels.get(model) || 0) + uses[p] * windows.length * h * w);
    }
  });
  return [...pixels.keys()].sort((a, b) => pixels.get(b) - pixels.get(a));
}

async function liteRtRunner(bundle, precision, threads) {
  if (!liteRtLoaded) {
    liteRtWorkers = threads > 1 ? navigator.hardwareConcurrency || 1 : 0;
    liteRtLoaded = loadLiteRt(new URL('../node_modules/@litertjs/core/wasm/', import.meta.url).href, { threads: threads > 1 });
  }
  await liteRtLoaded;
  const files = filesOf(bundle, 'tflite', precision).map(([file]) => file);
  const names = bundle.plan.shapes.map(signatureName);
  const compiled = []; // [model], the models the plan runs
  const runsOn = []; // threads each compiled file runs on, in order of work
  for (const model of modelsByWork(bundle.plan)) {
    const file = files[model];
    const key = `${file.sha256} ${threads}`; // the threads asked for; the entry holds those it got
    if (!liteRtCompiled.has(key)) {
      const numThreads = threads > 1 && liteRtWorkers >= threads - 1 ? threads : 1;
      if (numThreads > 1) liteRtWorkers -= numThreads - 1;
      const bytes = new Uint8Array(await bundle.file(file));
      const compiledModel = await loadAndCompile(bytes, { accelerator: 'wasm', cpuOptions: { numThreads } });
      liteRtCompiled.set(key, { compiledModel, numThreads });
    }
    const { compiledModel, numThreads } = liteRtCompiled.get(key);
    const missing = names.filter((name) => !(name in compiledModel.signatures));
    if (missing.length > 0) {
      throw new BundleError(`the bundle's tflite ${precision} file of model ${model} has no signature for the plan's `
        + `window shapes ${missing.join(', ')}: export it again with stdo-export`);
    }
    compiled[model] = compiledModel;
    runsOn.push(numThreads);
  }
  const scale = bundle.scale;
  const outputs = new Map(); // 'shape n' -> the reused output buffer of n windows
  const run = async (model, shape, input, n = 1) => {
    const [h, w] = bundle.plan.shapes[shape];
    const size = 3 * h * w;
    const outSize = size * scale * scale;
    const key = `${shape} ${n}`;
    if (!outputs.has(key)) outputs.set(key, new Float32Array(n * outSize));
    const result = outputs.get(key);
    for (let i = 0; i < n; i++) {
      const tensor = new Tensor(input.subarray(i * size, (i + 1) * size), [1, 3, h, w]);
      const [out] = await compiled[model].run(names[shape], tensor);
      result.set(out.toTypedArray(), i * outSize); // a view of LiteRT's memory, copied before it is freed
      tensor.delete();
      out.delete();
    }
    return result;
  };
  run.release = async () => {}; // the compiled models stay, cached for the page (above)
  run.threaded = { files: runsOn.length, withThreads: runsOn.filter((n) => n > 1).length };
  return run;
}

// A runner for the bundle's files of one backend and precision.
export async function openRunner(bundle, backend, precision, threads = threadCount()) {
  if (!(backend in BACKENDS)) throw new Error(`unknown backend ${backend}: use ${Object.keys(BACKENDS).join(' or ')}`);
  if (bundle.plain) { // no model to fetch or run: the plan executes bicubic upsampling itself
    const none = async () => { throw new Error('a bundle without models has nothing to run'); };
    return Object.assign(none, { release: async () => {}, threaded: null });
  }
  if (backend === 'litert') return liteRtRunner(bundle, precision, threads);
  return onnxRunner(bundle, precision, threads, backend === 'webgpu');
}
