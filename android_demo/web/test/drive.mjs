// Drive the web player in headless Chromium (Debian's /usr/bin/chromium or $CHROMIUM; playwright-core
// never downloads a browser) and write what each job gave as JSON.
//
//   node test/drive.mjs PAGE_URL JOBS.json OUT.json
//
// A job: {kind: 'page', url, play?, backend?, precision?} opens the player page itself (and presses Play
// with that runtime) and reports the error it shows or its stats;
// otherwise {bundle, kind: 'load'|'play', backend, precision, threads?, rgb?, frames?, keep?}. 'play' runs
// the bundle's plan over its frames: the RGB frames at `rgb` (raw uint8 [T, h, w, 3]) or, without it,
// the frames the page decodes itself; `keep` returns the SR frames (base64 float32 planar) and the
// decoded ones (base64 uint8). Every job reports ok, error (the page's message), fps.

import { readFile, writeFile } from 'node:fs/promises';
import { chromium } from 'playwright-core';

const [url, jobsPath, outPath] = process.argv.slice(2);
const jobs = JSON.parse(await readFile(jobsPath, 'utf8'));
// A page whose promise never settles must not hold the caller: each job gets JOB_MS, then the driver stops
// with what it has and says which job timed out.
const JOB_MS = Number(process.env.STDO_JOB_MS || 240000);
const withinTime = (promise, what) => Promise.race([promise, new Promise((_, reject) =>
  setTimeout(() => reject(new Error(`${what} did not finish within ${JOB_MS / 1000} s`)), JOB_MS).unref())]);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // WebGPU on SwiftShader's software adapter (no GPU here): --enable-unsafe-webgpu gives Chromium's headless one
  args: ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  page.on('pageerror', (e) => logs.push(String(e)));
  await page.goto(url);
  await page.waitForFunction(() => globalThis.stdo !== undefined, null, { timeout: 60000 });
  const results = [];
  for (const job of jobs) {
    if (job.kind === 'page') { // the player page itself: the error it shows, or that it is ready to play
      const other = await browser.newPage();
      await other.goto(new URL(job.url, url).href);
      await other.waitForFunction(() => !document.getElementById('error').hidden
        || document.getElementById('stats').textContent !== '', null, { timeout: 60000 });
      if (job.play && await other.evaluate(() => document.getElementById('error').hidden)) {
        if (job.backend) await other.selectOption('#backend', job.backend);
        if (job.precision) await other.selectOption('#precision', job.precision);
        await other.click('#play');
        await other.waitForFunction(() => /^frame (\d+)\/\1 /.test(document.getElementById('stats').textContent)
          || !document.getElementById('error').hidden, null, { timeout: 120000 });
      }
      results.push(await other.evaluate(() => ({
        ok: document.getElementById('error').hidden,
        error: document.getElementById('error').textContent,
        stats: document.getElementById('stats').textContent,
        canPlay: !document.getElementById('play').disabled,
      })));
      await other.close();
      continue;
    }
    results.push(await withinTime(page.evaluate(async (job) => {
      const s = globalThis.stdo;
      const b64 = (typed) => {
        const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
        let text = '';
        for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        return btoa(text);
      };
      try {
        if (job.kind === 'stream') { // streamed decoding against the whole-clip decode, from each start
          const bytes = await (await fetch(job.video)).arrayBuffer();
          const options = { matrix: job.matrix, range: job.range, width: job.width, height: job.height };
          const whole = await s.decodeVideo(bytes, options);
          const runs = [];
          for (const start of job.starts) {
            const stats = {};
            let firstDecoded = null;
            let equal = true;
            let expected = start;
            for await (const { index, rgb } of s.streamVideo(bytes, { ...options, start, ahead: job.ahead, stats })) {
              if (firstDecoded === null) firstDecoded = stats.decoded;
              equal &&= index === expected && rgb.length === whole[index].length && rgb.every((x, i) => x === whole[index][i]);
              expected += 1;
            }
            runs.push({ start, equal, frames: expected - start, firstDecoded });
          }
          return { ok: true, frames: whole.length, runs };
        }
        const bundle = await s.readBundle(job.bundle);
        if (job.kind === 'load') return { ok: true };
        const threads = job.threads ?? s.threadCount();
        const run = await s.openRunner(bundle, job.backend, job.precision, threads);
        const { width, height, scale } = bundle;
        const out = { ok: true, threads, isolated: globalThis.crossOriginIsolated };
        let frames;
        if (job.rgb) {
          const raw = new Uint8Array(await (await fetch(job.rgb)).arrayBuffer());
          const n = width * height * 3;
          frames = Array.from({ length: bundle.frames }, (_, t) => raw.subarray(t * n, (t + 1) * n));
        } else {
          const v = bundle.manifest.video;
          const t0 = performance.now();
          frames = await s.decodeVideo(bundle.video, { matrix: v.matrix, range: v.range, width, height });
          out.decode_ms = performance.now() - t0;
          if (job.keep) out.decoded = frames.map(b64);
        }
        const count = Math.min(job.frames ?? frames.length, frames.length);
        out.sr = [];
        let busy = 0;
        for (let t = 0; t < count; t++) {
          const x = s.rgbToPlanar(frames[t], width, height);
          const t0 = performance.now();
          const y = await s.executePlan(bundle.plan, t, x, width, height, scale, run);
          busy += performance.now() - t0;
          if (job.keep) out.sr.push(b64(y));
        }
        out.fps = (1000 * count) / busy;
        return out;
      } catch (e) {
        return { ok: false, error: e.message, name: e.name };
      }
    }, job), `job ${results.length} (${job.kind} ${job.backend ?? ''} ${job.precision ?? ''})`));
  }
  await writeFile(outPath, JSON.stringify({ results, logs }));
} finally {
  await browser.close();
}
