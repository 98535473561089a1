// The page: load the bundle named by ?bundle= (default bundle/), decode its LR stream, and play
// it by the inference plan with the chosen runtime and precision: LR (browser upscaling) and
// stdo side by side, with fps and the frame number. A bad bundle shows its message, nothing plays.

import { readBundle } from './bundle.js';
import { decodeVideo } from './decode.js';
import { executePlan } from './plan.js';
import { openRunner, threadCount } from './runtimes.js';
import { planarToRgba, rgbToPlanar } from './yuv.js';

const $ = (id) => document.getElementById(id);

function showError(e) {
  $('error').textContent = e.message || String(e);
  $('error').hidden = false;
}

const runners = new Map(); // 'backend precision' -> runner: each variant's files fetched and checked once

async function runner(bundle) {
  const key = `${$('backend').value} ${$('precision').value}`;
  if (!runners.has(key)) runners.set(key, await openRunner(bundle, $('backend').value, $('precision').value));
  return runners.get(key);
}

async function play(bundle, frames) {
  $('play').disabled = true;
  try {
    const backend = $('backend').value;
    const precision = $('precision').value;
    const run = await runner(bundle);
    const { width, height, scale } = bundle;
    const bicubic = $('bicubic').getContext('2d');
    const sr = $('sr').getContext('2d');
    const lrCanvas = new OffscreenCanvas(width, height);
    let busy = 0;
    for (let t = 0; t < frames.length; t++) {
      const rgba = new Uint8ClampedArray(width * height * 4);
      for (let i = 0; i < width * height; i++) {
        rgba.set(frames[t].subarray(3 * i, 3 * i + 3), 4 * i);
        rgba[4 * i + 3] = 255;
      }
      lrCanvas.getContext('2d').putImageData(new ImageData(rgba, width, height), 0, 0);
      bicubic.imageSmoothingQuality = 'high';
      bicubic.drawImage(lrCanvas, 0, 0, width * scale, height * scale);
      const t0 = performance.now();
      const out = await executePlan(bundle.plan, t, rgbToPlanar(frames[t], width, height), width, height, scale, run);
      busy += performance.now() - t0;
      sr.putImageData(new ImageData(planarToRgba(out, width * scale, height * scale), width * scale, height * scale), 0, 0);
      $('stats').textContent = `frame ${t + 1}/${frames.length}  ${(1000 * (t + 1) / busy).toFixed(1)} fps  `
        + `${backend} ${precision}, ${threadCount()} thread(s)`;
      await new Promise(requestAnimationFrame);
    }
  } catch (e) {
    showError(e);
  } finally {
    $('play').disabled = false;
  }
}

// An APK built for one variant (android_demo/app/build.sh) says which in variant.json beside the page: only that
// runtime's WebAssembly files and that precision's model files are inside, so the switch offers only them.
async function carriedVariant() {
  try {
    const response = await fetch(new URL('variant.json', location.href));
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

function keepOnly(select, value) {
  if (!value) return;
  for (const option of [...select.options]) if (option.value !== value) option.remove();
  select.value = value;
}

async function main() {
  const base = new URLSearchParams(location.search).get('bundle') || 'bundle/';
  const variant = await carriedVariant();
  if (variant) {
    keepOnly($('backend'), variant.backend);
    keepOnly($('precision'), variant.precision);
  }
  let bundle;
  let frames;
  try {
    bundle = await readBundle(base);
    const v = bundle.manifest.video;
    frames = await decodeVideo(bundle.video, { matrix: v.matrix, range: v.range, width: bundle.width, height: bundle.height });
    await runner(bundle); // the default variant's model files, checked before anything plays
  } catch (e) {
    showError(e);
    $('play').disabled = true;
    return;
  }
  for (const id of ['bicubic', 'sr']) {
    $(id).width = bundle.width * bundle.scale;
    $(id).height = bundle.height * bundle.scale;
  }
  $('stats').textContent = `${bundle.frames} frames, ${bundle.width}x${bundle.height} -> x${bundle.scale}, `
    + `${bundle.manifest.models.length} model(s); ${threadCount()} thread(s)`;
  $('play').onclick = () => play(bundle, frames);
}

// What tests and benchmarks drive (playwright): the same functions the page uses.
globalThis.stdo = { readBundle, decodeVideo, openRunner, executePlan, rgbToPlanar, planarToRgba, threadCount };
if (!new URLSearchParams(location.search).has('test')) main();
