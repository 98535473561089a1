// The page: load the bundle named by ?bundle= (default bundle/), decode its LR stream, and play
// it by the inference plan with the chosen runtime and precision: LR (browser upscaling) and
// stdo side by side, with fps and the frame number. A bad bundle shows its message, nothing plays.

import { readBundle } from './bundle.js';
import { decodeVideo, streamVideo } from './decode.js';
import { derivePlan, executePlan } from './plan.js';
import { hasWebGpu, openRunner, threadCount } from './runtimes.js';
import { planarToRgba, rgbToPlanar, rgbToRgba } from './yuv.js';

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

// LiteRT.js runs some files on one thread when its workers are taken (runtimes.js): the stats line says so.
const threadedNote = (run) => (run.threaded && run.threaded.withThreads < run.threaded.files
  ? ` (${run.threaded.withThreads} of ${run.threaded.files} model files)` : '');

// Playback on the clip's clock: frame t is due at t / fps from the start. The stream is decoded a few frames
// ahead of the player (streamVideo), so start-up and memory do not grow with the clip. A frame whose slot has
// passed before its turn is dropped, and counted, rather than slowing the clock (the last frame is always
// shown). Play / pause; the time bar seeks (decoding from the keyframe before the chosen frame).
const player = { playing: false, generation: 0, frame: 0, dropped: 0 };
const srDelayMs = Number(new URLSearchParams(location.search).get('sr_delay_ms') || 0); // tests: a slow model

async function play(bundle, from) {
  const generation = ++player.generation; // a seek or pause ends the loop of an earlier generation
  player.playing = true;
  $('play').textContent = 'Pause';
  try {
    const backend = $('backend').value;
    const precision = $('precision').value;
    const run = await runner(bundle);
    const { width, height, scale, frames } = bundle;
    const fps = bundle.manifest.fps || 25;
    const bicubic = $('bicubic').getContext('2d');
    const sr = $('sr').getContext('2d');
    const lrCanvas = new OffscreenCanvas(width, height);
    // One buffer of each kind for the whole playback: the loop allocates nothing per frame.
    const lrImage = new ImageData(width, height);
    const srImage = new ImageData(width * scale, height * scale);
    const planar = new Float32Array(3 * width * height);
    const frame = new Float32Array(3 * width * height * scale * scale);
    const buffers = new Map();
    const timing = {};
    const v = bundle.manifest.video;
    const t0 = performance.now();
    let busy = 0;
    let shown = 0;
    for await (const { index: t, rgb } of streamVideo(bundle.video, { matrix: v.matrix, range: v.range, width,
      height, start: from })) {
      if (generation !== player.generation) return;
      const due = t0 + (1000 * (t - from)) / fps;
      if (performance.now() > due + 1000 / fps && t < frames - 1) { // its slot is over: drop it
        player.dropped += 1;
        continue;
      }
      rgbToRgba(rgb, width, height, lrImage.data);
      lrCanvas.getContext('2d').putImageData(lrImage, 0, 0);
      bicubic.imageSmoothingQuality = 'high';
      bicubic.drawImage(lrCanvas, 0, 0, width * scale, height * scale);
      const started = performance.now();
      const out = await executePlan(bundle.plan, t, rgbToPlanar(rgb, width, height, planar), width, height, scale, run,
        { out: frame, buffers, timing });
      if (srDelayMs) await new Promise((r) => setTimeout(r, srDelayMs));
      busy += performance.now() - started;
      shown += 1;
      planarToRgba(out, width * scale, height * scale, srImage.data);
      sr.putImageData(srImage, 0, 0);
      player.frame = t;
      $('seek').value = String(t);
      $('stats').textContent = `frame ${t + 1}/${frames}  ${((1000 * shown) / busy).toFixed(1)} fps  `
        + `dropped ${player.dropped}  ` + (bundle.plain ? served(bundle)
        : `${backend} ${precision}, ${threadCount()} thread(s)${threadedNote(run)}, `
          + `runtime ${Math.round((100 * timing.run_ms) / busy)}% of SR time`);
      const wait = due - performance.now();
      await new Promise((r) => (wait > 4 ? setTimeout(r, wait) : requestAnimationFrame(r)));
      if (generation !== player.generation) return;
    }
    player.frame = 0; // played to the end: Play starts over
  } catch (e) {
    showError(e);
  } finally {
    if (generation === player.generation) {
      player.playing = false;
      $('play').textContent = 'Play';
    }
  }
}

// The variants the page can play, in the order stdo.bundle.VARIANT_PREFERENCE gives them (its web formats), and
// the runtime that plays each format.
const PREFERENCE = [['onnx', 'int8'], ['onnx', 'fp32'], ['tflite', 'int8'], ['tflite', 'fp16'], ['tflite', 'fp32']];
const RUNTIME = { onnx: 'onnxruntime', tflite: 'litert' };

// What a variant downloads for its models: each file's update where it is coded, else the file.
function variantBytes(bundle, format, precision) {
  let total = 0;
  for (const model of bundle.manifest.models) {
    for (const f of model.files) if (f.format === format && f.precision === precision) total += (f.update || f).bytes;
  }
  return total;
}

function hasVariant(bundle, format, precision) {
  return bundle.manifest.models.every((m) => m.files.some((f) => f.format === format && f.precision === precision));
}

// The variant the page plays first: the bundle's recommended one (what its report counts), or where the bundle
// lacks it or the page cannot run it, the first of PREFERENCE the bundle has, with a note saying so.
function defaultVariant(bundle) {
  const rec = bundle.manifest.recommended;
  if (rec && RUNTIME[rec.format] && hasVariant(bundle, rec.format, rec.precision)) {
    return { backend: RUNTIME[rec.format], precision: rec.precision, note: '' };
  }
  const [format, precision] = PREFERENCE.find(([f, p]) => hasVariant(bundle, f, p)) || PREFERENCE[0];
  const note = rec ? `the bundle's recommended ${rec.format} ${rec.precision} is ${RUNTIME[rec.format] ? 'not in it'
    : 'not playable in a browser'}: playing ${format} ${precision}` : '';
  return { backend: RUNTIME[format], precision, note };
}

// Each precision option says what it downloads with the chosen runtime.
function labelPrecisions(bundle) {
  const format = { onnxruntime: 'onnx', webgpu: 'onnx', litert: 'tflite' }[$('backend').value];
  for (const option of $('precision').options) {
    const has = hasVariant(bundle, format, option.value);
    option.textContent = has ? `${option.value} (${(variantBytes(bundle, format, option.value) / 1024).toFixed(1)} KB)`
      : `${option.value} (not in the bundle)`;
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

// What the bundle plays: its models, or without any the stream upsampled (at x1, the HR stream as it decodes).
function served(bundle) {
  if (!bundle.plain) return `${bundle.manifest.models.length} model(s)`;
  return bundle.scale === 1 ? 'no model: the HR stream' : 'no model: bicubic upsampling';
}

function keepOnly(select, value) {
  if (!value) return;
  for (const option of [...select.options]) if (option.value !== value) option.remove();
  select.value = value;
}

async function main() {
  const base = new URLSearchParams(location.search).get('bundle') || 'bundle/';
  if (!hasWebGpu()) $('backend').querySelector('option[value="webgpu"]').remove(); // the WASM paths remain
  const variant = await carriedVariant();
  if (variant) {
    keepOnly($('backend'), variant.backend);
    keepOnly($('precision'), variant.precision);
  }
  let bundle;
  let note = '';
  try {
    bundle = await readBundle(base); // reads the stream's header and sample table; nothing is decoded before Play
    if (!variant && !bundle.plain) {
      const chosen = defaultVariant(bundle);
      $('backend').value = chosen.backend;
      $('precision').value = chosen.precision;
      note = chosen.note;
      labelPrecisions(bundle);
      $('backend').addEventListener('change', () => labelPrecisions(bundle));
    }
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
    + `${served(bundle)}; ${threadCount()} thread(s)${note ? `; ${note}` : ''}`;
  $('seek').max = String(bundle.frames - 1);
  $('seek').disabled = false;
  $('play').onclick = () => {
    if (player.playing) { // pause where it is
      player.generation += 1;
      player.playing = false;
      $('play').textContent = 'Play';
    } else {
      player.dropped = 0;
      play(bundle, player.frame);
    }
  };
  $('seek').oninput = () => {
    player.frame = Number($('seek').value);
    if (player.playing) play(bundle, player.frame);
  };
}

// What tests and benchmarks drive (playwright): the same functions the page uses.
globalThis.stdo = {
  readBundle, decodeVideo, streamVideo, openRunner, hasWebGpu, derivePlan, executePlan, rgbToPlanar, planarToRgba,
  threadCount,
};
if (!new URLSearchParams(location.search).has('test')) main();
