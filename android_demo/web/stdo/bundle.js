// An stdo bundle read as untrusted input, the way stdo.bundle.read_bundle reads it:
// manifest schema and version, plain relative paths, declared sizes, the sha256 of every file
// fetched, the model map inflated with a bound and checked, and the inference plan derived from it and the
// manifest's plan parameters (checked). Anything else throws BundleError, and nothing is played.

import { BundleError } from './errors.js';
import { probeVideo } from './decode.js';
import { derivePlan, planBytes } from './plan.js';

export { BundleError };

export const FORMAT = 'stdo-bundle';
export const VERSION = 5;
export const MAP_CODING = 'by-patch-zlib';
const MAX_FILE_BYTES = 4 * 1024 ** 3;
const MAX_MANIFEST_BYTES = 1 << 20;
const MAX_FRAMES = 1 << 20;
const MAX_GRID = 1024;
const MAX_SIDE = 16384;
const MAX_MODELS = 255;
// stdo.runtimes.FORMATS: each format's precisions (the base first), the batch its files take, and the suffix of
// its file names. Every format is one file per model and precision (TFLite's holds a signature per plan window shape:
// signatureName).
const FILE_FORMATS = {
  torch: { precisions: ['fp32'], batch: null, suffix: '.pt' },
  onnx: { precisions: ['fp32', 'int8'], batch: null, suffix: '.onnx' },
  tflite: { precisions: ['fp32', 'fp16', 'int8'], batch: 1, suffix: '.tflite' },
  coreml: { precisions: ['fp16', 'int8'], batch: 1, suffix: '.mlpackage.zip' },
};
const FORMATS = Object.keys(FILE_FORMATS);
const CODECS = ['h264', 'hevc', 'av1'];
const MATRICES = ['bt601', 'bt709', 'bt2020', 'rgb'];

function need(cond, message) {
  if (!cond) throw new BundleError(`bad bundle: ${message}`);
}

function isInt(v) {
  return Number.isInteger(v) && typeof v === 'number';
}

function int(obj, key, lo, hi) {
  const v = obj[key];
  need(isInt(v) && lo <= v && v <= hi, `${key} must be an integer in ${lo}..${hi}, got ${JSON.stringify(v)}`);
  return v;
}

function object(obj, key) {
  const v = obj && typeof obj === 'object' ? obj[key] : undefined;
  need(v !== null && typeof v === 'object' && !Array.isArray(v), `${key} must be an object`);
  return v;
}

export async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

function safePath(entry, what) {
  const rel = entry.path;
  need(typeof rel === 'string' && rel !== '', `${what}: path must be a non-empty string`);
  need(!rel.startsWith('/') && !rel.includes('\\') && !rel.includes(':'), `${what}: path ${JSON.stringify(rel)} must be relative`);
  need(rel.split('/').every((p) => p !== '' && p !== '.' && p !== '..'), `${what}: path ${JSON.stringify(rel)} must not use . or ..`);
  return rel;
}

// The bytes of a manifest entry's file, checked against its declared size and sha256.
async function fetchChecked(base, entry, what) {
  need(entry !== null && typeof entry === 'object', `${what} must be an object`);
  const rel = safePath(entry, what);
  const size = int(entry, 'bytes', 0, MAX_FILE_BYTES);
  need(typeof entry.sha256 === 'string' && /^[0-9a-f]{64}$/.test(entry.sha256), `${what}: sha256 must be 64 hex digits`);
  let response;
  try {
    response = await fetch(new URL(rel, base));
  } catch (e) {
    throw new BundleError(`bad bundle: ${what}: ${rel} could not be fetched (${e.message})`);
  }
  need(response.ok, `${what}: ${rel} is missing`);
  const buffer = await response.arrayBuffer();
  need(buffer.byteLength === size, `${what}: ${rel} is ${buffer.byteLength} bytes, manifest says ${size}`);
  need((await sha256Hex(buffer)) === entry.sha256, `${what}: ${rel} fails its sha256 check (tampered or corrupt)`);
  return buffer;
}

// zlib (RFC 1950) data, inflated to exactly `expected` bytes: anything longer is refused
// as soon as it passes the bound (no zip bomb), anything shorter or damaged too.
export async function inflate(buffer, expected, what) {
  const out = new Uint8Array(expected);
  let filled = 0;
  try {
    const reader = new Blob([buffer]).stream().pipeThrough(new DecompressionStream('deflate')).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (filled + value.length > expected) {
        await reader.cancel();
        throw new BundleError(`bad bundle: ${what} holds more than the ${expected} bytes expected`);
      }
      out.set(value, filled);
      filled += value.length;
    }
  } catch (e) {
    if (e instanceof BundleError) throw e;
    throw new BundleError(`bad bundle: ${what} is not zlib data`);
  }
  need(filled === expected, `${what} holds ${filled} bytes, expected ${expected}`);
  return out;
}

// The priors this player carries (assets beside the page: ../priors/priors.json and their files), which a
// bundle's coded model files are rebuilt from (stdo.updates: segments of the file XORed with ranges of the
// prior's file, deflated).
const PRIORS = new URL('../priors/', location.href);
const CODING = 'segment-xor-deflate';
const MAX_OPS = 1 << 16;
const OP_BYTES = 8; // uint32 length, int32 base offset (-1: a literal)
let carried = null;

async function carriedBases() {
  if (carried === null) {
    carried = new Map();
    try {
      const response = await fetch(new URL('priors.json', PRIORS));
      if (response.ok) {
        for (const prior of Object.values(await response.json())) {
          for (const b of prior.bases || []) carried.set(b.sha256, b);
        }
      }
    } catch (e) { /* no priors carried: a coded bundle is refused below */ }
  }
  return carried;
}

// A coded model file: its update fetched and checked, inflated to the size its ops table and the file declare
// (bounded), every segment checked to lie inside the file and the prior's file and XORed with it, and the
// rebuilt file checked against its sha256.
async function rebuild(base, entry, what) {
  const size = int(entry, 'bytes', 1, MAX_FILE_BYTES);
  need(typeof entry.sha256 === 'string' && /^[0-9a-f]{64}$/.test(entry.sha256), `${what}: sha256 must be 64 hex digits`);
  need(entry.update.coding === CODING, `${what}.update: coding must be ${CODING}`);
  const ops = int(entry.update, 'ops', 1, Math.min(MAX_OPS, size));
  const prior = (await carriedBases()).get(entry.update.base);
  if (!prior) {
    throw new BundleError(`the bundle's models update a prior this player does not carry (base file ${String(entry.update.base).slice(0, 12)}...): `
      + 'use the player of the stdo that made the bundle, or export it with --update off');
  }
  const limit = 2 * prior.bytes + (64 << 10); // stdo.bundle.max_rebuilt_bytes
  need(size <= limit, `${what}: a file of ${size} bytes cannot be an update of a ${prior.bytes}-byte prior file (at most ${limit})`);
  const update = await fetchChecked(base, entry.update, `${what}.update`);
  const priorBytes = new Uint8Array(await fetchChecked(PRIORS, prior, 'prior'));
  const raw = await inflate(update, ops * OP_BYTES + size, `${what}.update`);
  const table = new DataView(raw.buffer, 0, ops * OP_BYTES);
  const data = raw.subarray(ops * OP_BYTES);
  let at = 0;
  for (let k = 0; k < ops; k++) {
    const length = table.getUint32(k * OP_BYTES, true);
    const offset = table.getInt32(k * OP_BYTES + 4, true);
    need(at + length <= size, `${what}.update: its segments run past the file's ${size} bytes`);
    if (offset !== -1) {
      need(offset >= 0 && offset + length <= priorBytes.length, `${what}.update names bytes outside the prior's file (made for another prior)`);
      for (let i = 0; i < length; i++) data[at + i] ^= priorBytes[offset + i];
    }
    at += length;
  }
  need(at === size, `${what}.update: its segments do not add up to the file's ${size} bytes`);
  need((await sha256Hex(data)) === entry.sha256, `${what}.update does not rebuild ${entry.path} (tampered, or made for another prior)`);
  return data.slice().buffer;
}

function checkVideo(video, lrSize, frames) {
  need(CODECS.includes(video.codec), `video: codec must be one of ${CODECS.join(', ')}`);
  need(MATRICES.includes(video.matrix) && ['limited', 'full'].includes(video.range),
    'video: matrix and range must name the stream\'s colour (bt601/bt709/bt2020/rgb, limited/full)');
  need(video.width === lrSize[0] && video.height === lrSize[1],
    `video: ${video.width}x${video.height} does not match lr_size ${JSON.stringify(lrSize)}`);
  need(video.frames === frames, `video: ${JSON.stringify(video.frames)} frames, the manifest says ${frames}`);
  need(['profile', 'pix_fmt'].every((k) => typeof video[k] === 'string' && video[k].length <= 64),
    'video: profile and pix_fmt must be short strings');
}

// The smallest patch side a grid may have at x`scale` (stdo.bundle.min_patch: stdo-cluster's rule).
const minPatch = (scale) => Math.floor((2 * (scale + 4)) / scale) + 1;

// stdo.runtimes.FileFormat.filename: a file's name says its model, format and precision.
function fileName(format, index, precision) {
  const f = FILE_FORMATS[format];
  const tag = precision === f.precisions[0] ? '' : `_${precision}`;
  return `models/model${index}${tag}${f.suffix}`;
}

// stdo.runtimes.signature_name: the signature of a TFLite file that takes windows [h, w].
export const signatureName = ([h, w]) => `w${h}x${w}`;

function checkModels(models, claim) {
  models.forEach((model, i) => {
    need(model !== null && typeof model === 'object' && model.model === i, `models[${i}] must be model ${i}`);
    need(Array.isArray(model.files) && model.files.length > 0, `models[${i}].files must be a non-empty list`);
    model.files.forEach((entry, j) => {
      const what = `models[${i}].files[${j}]`;
      need(entry !== null && typeof entry === 'object', `${what} must be an object`);
      need(FORMATS.includes(entry.format), `${what}: format must be one of ${FORMATS.join(', ')}`);
      const f = FILE_FORMATS[entry.format];
      need(f.precisions.includes(entry.precision), `${what}: precision of a ${entry.format} file must be one of ${f.precisions.join(', ')}`);
      const shape = entry.input_shape;
      need(Array.isArray(shape) && shape.length === 4 && shape.every((v) => v === null || (isInt(v) && v >= 1 && v <= MAX_SIDE)),
        `${what}: input_shape must be 4 sizes (null where dynamic)`);
      const expected = JSON.stringify([f.batch, 3, null, null]);
      need(JSON.stringify(shape) === expected, `${what}: input_shape of a ${entry.format} file must be ${expected}`);
      safePath(entry, what);
      const name = fileName(entry.format, i, entry.precision);
      need(entry.path === name, `${what}: a ${entry.format} ${entry.precision} file of model ${i} is '${name}', not ${JSON.stringify(entry.path)}`);
      claim(name, what);
      int(entry, 'bytes', 0, MAX_FILE_BYTES);
      if (entry.update !== undefined && entry.update !== null) {
        need(typeof entry.update === 'object', `${what}.update must be an object`);
        safePath(entry.update, `${what}.update`);
      }
    });
  });
}

// Read a bundle from `base` (a URL ending in '/'). Returns {base, manifest, modelMap, plan, video,
// file(entry)}: video is the LR stream's bytes; file() fetches and checks one model file.
export async function readBundle(base) {
  base = new URL(base, location.href);
  let response;
  try {
    response = await fetch(new URL('manifest.json', base));
  } catch (e) {
    throw new BundleError(`bad bundle: manifest.json could not be fetched (${e.message})`);
  }
  need(response.ok, `${base} has no manifest.json`);
  const text = await response.text();
  need(text.length <= MAX_MANIFEST_BYTES, `manifest.json is larger than ${MAX_MANIFEST_BYTES} bytes`);
  let manifest;
  try {
    manifest = JSON.parse(text);
  } catch (e) {
    throw new BundleError('bad bundle: manifest.json is not JSON');
  }
  need(manifest !== null && typeof manifest === 'object' && manifest.format === FORMAT, `manifest.json is not a ${FORMAT} manifest`);
  need(manifest.version === VERSION, `version ${JSON.stringify(manifest.version)} is not ${VERSION}: update the web player`);

  const models = manifest.models;
  need(Array.isArray(models) && models.length <= MAX_MODELS, `models must list 0..${MAX_MODELS} models`);
  const plain = models.length === 0; // the stream alone: bicubic upsampling, at scale 1 the HR stream as it decodes
  const scale = int(manifest, 'scale', plain ? 1 : 2, 8);
  const lrSize = manifest.lr_size;
  need(Array.isArray(lrSize) && lrSize.length === 2 && lrSize.every((v) => isInt(v) && v >= 1 && v <= MAX_SIDE),
    'lr_size must be [width, height]');
  const [width, height] = lrSize;
  const frames = int(manifest, 'frames', 1, MAX_FRAMES);
  const grid = object(manifest, 'grid');
  const patch = minPatch(scale); // a patch is at least this many LR pixels a side
  const cols = int(grid, 'cols', 1, Math.min(MAX_GRID, Math.max(1, Math.floor(width / patch))));
  const rows = int(grid, 'rows', 1, Math.min(MAX_GRID, Math.max(1, Math.floor(height / patch))));
  int(grid, 'margin', 0, 1024);
  need(typeof manifest.fps === 'number' && manifest.fps > 0 && manifest.fps <= 1000, 'fps must be in (0, 1000]');

  const recommended = manifest.recommended; // a name only: a client without that variant plays the next it has
  need(recommended === undefined || recommended === null || (typeof recommended === 'object'
    && Object.hasOwn(FILE_FORMATS, recommended.format)
    && FILE_FORMATS[recommended.format].precisions.includes(recommended.precision)),
  'recommended must name a format and one of its precisions');

  // Sizes are trusted only once the video itself confirms them: the model map and the plan below are
  // allocated from the stream's real size and frame count, never from what the manifest claims.
  const videoEntry = object(manifest, 'video');
  checkVideo(videoEntry, lrSize, frames);
  need(manifest.fps === videoEntry.fps, `fps ${JSON.stringify(manifest.fps)} is not the video's ${JSON.stringify(videoEntry.fps)}`);
  const video = await fetchChecked(base, videoEntry, 'video');
  const actual = await probeVideo(video);
  need(actual.width === width && actual.height === height && actual.frames === frames,
    `video: the file is ${actual.width}x${actual.height} with ${actual.frames} frames, the manifest says ` +
    `${width}x${height} with ${frames}`);

  if (plain) {
    need(manifest.model_map == null && manifest.plan == null && manifest.prior == null && cols === 1 && rows === 1
      && grid.margin === 0, 'a bundle without models has no model_map, plan or prior, and grid {"cols": 1, "rows": 1, '
      + '"margin": 0}');
    return { base, manifest, modelMap: null, plan: null, video, scale, width, height, frames, plain, file: null };
  }
  let modelMap;
  if ((manifest.model_map === null || manifest.model_map === undefined) && models.length === 1) {
    modelMap = new Uint8Array(frames * rows * cols);
  } else {
    const entry = object(manifest, 'model_map');
    need(JSON.stringify(entry.shape) === JSON.stringify([frames, rows, cols]),
      `model_map shape ${JSON.stringify(entry.shape)} does not match frames x grid ${JSON.stringify([frames, rows, cols])}`);
    need(entry.coding === MAP_CODING, `model_map: coding must be ${MAP_CODING}`);
    const byPatch = await inflate(await fetchChecked(base, entry, 'model_map'), frames * rows * cols, 'model_map');
    modelMap = new Uint8Array(frames * rows * cols); // patch by patch through time -> frame by frame
    for (let p = 0; p < rows * cols; p++) for (let t = 0; t < frames; t++) modelMap[t * rows * cols + p] = byPatch[p * frames + t];
    need(modelMap.every((m) => m < models.length), `model_map names a model the bundle does not have`);
  }

  const planEntry = object(manifest, 'plan');
  const plan = derivePlan(modelMap, { frames, rows, cols, width, height, shapes: planEntry.shapes, margin: planEntry.margin });
  need((await sha256Hex(planBytes(plan, scale))) === planEntry.sha256, 'plan: the plan derived from the model map is '
    + "not the one export made (a tampered map, scale or manifest, or another stdo's planner)");
  const paths = new Set();
  const claim = (path, what) => { // no file serves two entries (no label can be moved onto another file)
    need(!paths.has(path), `${what}: '${path}' is named twice`);
    paths.add(path);
  };
  claim(videoEntry.path, 'video');
  if (manifest.model_map) claim(manifest.model_map.path, 'model_map');
  checkModels(models, claim);

  return {
    base, manifest, modelMap, plan, video, scale, width, height, frames, plain,
    file: (entry) => (entry.update ? rebuild(base, entry, entry.path) : fetchChecked(base, entry, entry.path)),
  };
}
