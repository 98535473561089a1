// The bundle's LR stream decoded in the browser: mp4box.js takes the samples out of the mp4,
// WebCodecs' VideoDecoder decodes them, and each frame's I420 planes go to RGB with the stream's
// own matrix and range (yuv.js), frame by frame in presentation order.

import { createFile, DataStream, MP4BoxBuffer } from 'mp4box';

import { BundleError } from './errors.js';
import { i420ToRgb } from './yuv.js';

function demux(bytes) {
  return new Promise((resolve, reject) => {
    const file = createFile();
    let track = null;
    const samples = [];
    file.onError = (e) => reject(new BundleError(`bad bundle: the LR video is not a readable mp4 (${e})`));
    file.onReady = (info) => {
      track = info.videoTracks[0];
      if (!track) {
        reject(new BundleError('bad bundle: the LR video has no video track'));
        return;
      }
      // each sample as soon as its data is there (a file cut short gives the samples before the cut)
      file.setExtractionOptions(track.id, null, { nbSamples: 1 });
      file.start();
    };
    file.onSamples = (id, user, chunk) => samples.push(...chunk); // only samples whose data is all in the file
    file.appendBuffer(MP4BoxBuffer.fromArrayBuffer(bytes.slice(0), 0));
    file.flush();
    if (!track) {
      reject(new BundleError('bad bundle: the LR video is not a readable mp4'));
      return;
    }
    const entry = file.getTrackById(track.id).mdia.minf.stbl.stsd.entries[0];
    const box = entry.avcC || entry.hvcC || entry.av1C || entry.vpcC;
    let description;
    if (box) { // the codec configuration record, without its box header
      const stream = new DataStream(undefined, 0, 1 /* big endian */);
      box.write(stream);
      description = new Uint8Array(stream.buffer, 8);
    }
    // every frame's presentation time from the sample table, also those whose data a file cut short lacks
    const times = file.getTrackById(track.id).samples.map((s) => s.cts).sort((a, b) => a - b);
    resolve({ track, samples, description, times, expected: times.length });
  });
}

// A file cut short (a download that stopped) holds the samples before the cut: they play, then this says why
// the rest does not.
function truncated(count, expected) {
  return new BundleError(`the LR video is cut short: ${count} of its ${expected} frames are in the file (a truncated `
    + 'download?): download the bundle again');
}

// The stream's own size and frame count, from its mp4 header and sample table (nothing decoded).
export async function probeVideo(bytes) {
  const { track, samples } = await demux(bytes);
  return { width: track.video.width, height: track.video.height, frames: samples.length };
}

// The stream's samples and the VideoDecoder configuration this browser must support to decode them.
async function decodable(bytes) {
  if (!('VideoDecoder' in globalThis)) throw new Error('this browser has no WebCodecs VideoDecoder');
  const { track, samples, description, times, expected } = await demux(bytes);
  if (samples.length === 0) throw truncated(0, expected);
  const config = { codec: track.codec, codedWidth: track.video.width, codedHeight: track.video.height, description };
  if (!(await VideoDecoder.isConfigSupported(config)).supported) throw new Error(`this browser cannot decode ${track.codec}`);
  return { samples, config, times, expected };
}

// One mp4 sample as WebCodecs takes it (times in microseconds).
function chunkOf(s) {
  return new EncodedVideoChunk({
    type: s.is_sync ? 'key' : 'delta', timestamp: Math.round(1e6 * s.cts / s.timescale),
    duration: Math.round(1e6 * s.duration / s.timescale), data: s.data,
  });
}

// Decode every frame: resolves to an array of Uint8Array RGB [h, w, 3].
export async function decodeVideo(bytes, { matrix, range, width, height }) {
  const { samples, config, expected } = await decodable(bytes);
  if (samples.length < expected) throw truncated(samples.length, expected);
  const pending = []; // in output order, which is presentation order
  let failure = null;
  const decoder = new VideoDecoder({
    output: (frame) => {
      pending.push(toRgb(frame, matrix, range === 'full', width, height).finally(() => frame.close()));
    },
    error: (e) => { failure = e; },
  });
  decoder.configure(config);
  for (const s of samples) decoder.decode(chunkOf(s));
  await decoder.flush();
  decoder.close();
  if (failure) throw failure;
  return Promise.all(pending);
}

// Decode as the player consumes: an async iterator of { index, rgb } in presentation order from frame `start`,
// never more than `ahead` decoded frames waiting (memory bounded by a window of frames, not by the clip).
// Seeking: decoding starts at the last keyframe at or before `start`, and the frames before it are dropped.
// `stats.decoded` counts the frames the decoder has output so far and `stats.held` the most decoded frames that
// waited for the player at once (the tests read them). A file cut short plays the frames it holds, then throws a
// BundleError that says so.
export async function* streamVideo(bytes, { matrix, range, width, height, start = 0, ahead = 8, stats = {} }) {
  const { samples, config, times, expected } = await decodable(bytes); // times: frame index -> cts
  if (start < 0 || start >= times.length) throw new RangeError(`frame ${start} is outside 0..${times.length - 1}`);
  const target = times[start];
  let first = 0; // decode order: the last keyframe whose presentation is not after the target
  samples.forEach((s, i) => { if (s.is_sync && s.cts <= target) first = i; });
  const timescale = samples[0].timescale;
  const index = new Map(times.map((cts, i) => [Math.round(1e6 * cts / timescale), i]));
  const ready = [];
  let failure = null;
  let wake = null;
  const signal = () => { if (wake) { wake(); wake = null; } };
  const waitForOutput = () => new Promise((resolve) => { wake = resolve; });
  stats.decoded = 0;
  stats.held = 0;
  const decoder = new VideoDecoder({
    output: (frame) => {
      stats.decoded += 1;
      const i = index.get(frame.timestamp);
      if (i === undefined || i < start) {
        frame.close(); // before the seek target: decoded only to reach it
      } else {
        ready.push(toRgb(frame, matrix, range === 'full', width, height).then((rgb) => ({ index: i, rgb }))
          .finally(() => frame.close()));
        stats.held = Math.max(stats.held, ready.length);
      }
      signal();
    },
    error: (e) => { failure = e; signal(); },
  });
  decoder.configure(config);
  try {
    let next = first;
    let flushing = false;
    let done = false;
    while (true) {
      if (failure) throw failure;
      // keep the decoder fed while the window has room (frames it holds back to reorder are not counted: it
      // asks for more input before it outputs them)
      while (next < samples.length && ready.length + decoder.decodeQueueSize < ahead) {
        decoder.decode(chunkOf(samples[next++]));
      }
      if (next === samples.length && !flushing) {
        flushing = true;
        decoder.flush().then(() => { done = true; signal(); }, (e) => { failure = e; signal(); });
      }
      if (ready.length) {
        yield await ready.shift();
      } else if (done) {
        if (samples.length < expected) throw truncated(samples.length, expected);
        return;
      } else {
        await Promise.race([waitForOutput(), new Promise((r) => setTimeout(r, 50))]);
      }
    }
  } finally {
    if (decoder.state !== 'closed') decoder.close();
  }
}

async function toRgb(frame, matrix, fullRange, width, height) {
  const rect = { x: 0, y: 0, width, height };
  if (frame.format !== 'I420' && frame.format !== 'NV12') throw new Error(`decoded frames are ${frame.format}, not I420/NV12`);
  const buffer = new Uint8Array(frame.allocationSize({ rect }));
  const layout = await frame.copyTo(buffer, { rect });
  const cw = width >> 1;
  const ch = height >> 1;
  const plane = (i, w, h) => {
    const out = new Uint8Array(w * h);
    for (let r = 0; r < h; r++) out.set(buffer.subarray(layout[i].offset + r * layout[i].stride, layout[i].offset + r * layout[i].stride + w), r * w);
    return out;
  };
  const y = plane(0, width, height);
  let u;
  let v;
  if (frame.format === 'I420') {
    u = plane(1, cw, ch);
    v = plane(2, cw, ch);
  } else { // NV12: interleaved chroma
    const uv = plane(1, 2 * cw, ch);
    u = new Uint8Array(cw * ch);
    v = new Uint8Array(cw * ch);
    for (let i = 0; i < cw * ch; i++) {
      u[i] = uv[2 * i];
      v[i] = uv[2 * i + 1];
    }
  }
  return i420ToRgb(y, u, v, width, height, matrix, fullRange);
}
