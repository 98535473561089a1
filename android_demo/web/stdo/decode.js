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
      file.setExtractionOptions(track.id, null, { nbSamples: Infinity });
      file.start();
    };
    file.onSamples = (id, user, chunk) => samples.push(...chunk);
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
    resolve({ track, samples, description });
  });
}

// The stream's own size and frame count, from its mp4 header and sample table (nothing decoded).
export async function probeVideo(bytes) {
  const { track, samples } = await demux(bytes);
  return { width: track.video.width, height: track.video.height, frames: samples.length };
}

// Decode every frame: resolves to an array of Uint8Array RGB [h, w, 3].
export async function decodeVideo(bytes, { matrix, range, width, height }) {
  if (!('VideoDecoder' in globalThis)) throw new Error('this browser has no WebCodecs VideoDecoder');
  const { track, samples, description } = await demux(bytes);
  const config = { codec: track.codec, codedWidth: track.video.width, codedHeight: track.video.height, description };
  const support = await VideoDecoder.isConfigSupported(config);
  if (!support.supported) throw new Error(`this browser cannot decode ${track.codec}`);
  const pending = []; // in output order, which is presentation order
  let failure = null;
  const decoder = new VideoDecoder({
    output: (frame) => {
      pending.push(toRgb(frame, matrix, range === 'full', width, height).finally(() => frame.close()));
    },
    error: (e) => { failure = e; },
  });
  decoder.configure(config);
  for (const s of samples) {
    decoder.decode(new EncodedVideoChunk({
      type: s.is_sync ? 'key' : 'delta', timestamp: Math.round(1e6 * s.cts / s.timescale),
      duration: Math.round(1e6 * s.duration / s.timescale), data: s.data,
    }));
  }
  await decoder.flush();
  decoder.close();
  if (failure) throw failure;
  return Promise.all(pending);
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
