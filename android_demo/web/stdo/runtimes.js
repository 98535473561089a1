// The bundle's model files as runners: ONNX Runtime Web (.onnx, any window shape) or LiteRT.js
// (.tflite, one file per plan shape), both on WebAssembly with SIMD, with threads when the page
// is cross-origin isolated. A runner maps (model, shape index, input Float32Array [n, 3, h, w] in
// [0, 1], n) to the SR windows Float32Array [n, 3, s*h, s*w]: ONNX models take the n windows as one batch,
// TFLite files (fixed input [1, 3, h, w]) run them one after another into one reused output buffer.

import * as ort from 'onnxruntime-web';
import { loadAndCompile, loadLiteRt, Tensor } from '@litertjs/core';

import { BundleError } from './errors.js';

export const BACKENDS = { onnxruntime: 'onnx', litert: 'tflite', webgpu: 'onnx' };

export const hasWebGpu = () => 'gpu' in navigator;

export function threadCount() {
  return globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
}

let liteRtLoaded = null;

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
  return async (model, shape, input, n = 1) => {
    const [h, w] = bundle.plan.shapes[shape];
    const out = await sessions[model].run({ lr: new runtime.Tensor('float32', input, [n, 3, h, w]) });
    return gpu ? out.sr.getData() : out.sr.data;
  };
}

async function liteRtRunner(bundle, precision, threads) {
  if (!liteRtLoaded) {
    liteRtLoaded = loadLiteRt(new URL('../node_modules/@litertjs/core/wasm/', import.meta.url).href, { threads: threads > 1 });
  }
  await liteRtLoaded;
  const compiled = []; // [model][shape index]
  for (const [i, files] of filesOf(bundle, 'tflite', precision).entries()) {
    const byShape = [];
    for (const [h, w] of bundle.plan.shapes) {
      const file = files.find((f) => f.input_shape[2] === h && f.input_shape[3] === w);
      if (!file) {
        throw new BundleError(`the bundle's tflite ${precision} files of model ${i} lack the plan's window ${h}x${w}: `
          + 'export it again with stdo-export');
      }
      byShape.push(await loadAndCompile(new Uint8Array(await bundle.file(file)),
        { accelerator: 'wasm', cpuOptions: { numThreads: threads } }));
    }
    compiled.push(byShape);
  }
  const scale = bundle.scale;
  const outputs = new Map(); // 'shape n' -> the reused output buffer of n windows
  return async (model, shape, input, n = 1) => {
    const [h, w] = bundle.plan.shapes[shape];
    const size = 3 * h * w;
    const outSize = size * scale * scale;
    const key = `${shape} ${n}`;
    if (!outputs.has(key)) outputs.set(key, new Float32Array(n * outSize));
    const result = outputs.get(key);
    for (let i = 0; i < n; i++) {
      const tensor = new Tensor(input.subarray(i * size, (i + 1) * size), [1, 3, h, w]);
      const [out] = await compiled[model][shape].run(tensor);
      result.set(out.toTypedArray(), i * outSize); // a view of LiteRT's memory, copied before it is freed
      tensor.delete();
      out.delete();
    }
    return result;
  };
}

// A runner for the bundle's files of one backend and precision.
export async function openRunner(bundle, backend, precision, threads = threadCount()) {
  if (!(backend in BACKENDS)) throw new Error(`unknown backend ${backend}: use ${Object.keys(BACKENDS).join(' or ')}`);
  if (backend === 'litert') return liteRtRunner(bundle, precision, threads);
  return onnxRunner(bundle, precision, threads, backend === 'webgpu');
}
