// Drive the web player in headless Chromium (Debian's /usr/bin/chromium or $CHROMIUM; playwright-core
// never downloads a browser) and write what each job gave as JSON.
//
//   node test/drive.mjs PAGE_URL JOBS.json OUT.json
//
// A job: {kind: 'page', url, play?, backend?, precision?} opens the player page itself (and presses Play
// with that runtime) and reports the error it shows or its stats, the variant selected and the model files fetched;
// {kind: 'derive', cases: [{map (base64), frames, rows, cols, width, height, shapes, margin}]} derives plans;
// otherwise {bundle, kind: 'load'|'play'|'runtime', backend, precision, threads?, rgb?, frames?, keep?}. 'play' runs
// the bundle's plan over its frames: the RGB frames at `rgb` (raw uint8 [T, h, w, 3]) or, without it,
// the frames the page decodes itself; `keep` returns the SR frames (base64 float32 planar) and the
// decoded ones (base64 uint8). 'runtime' times `runs` calls of model `model` alone on plan shape `shape` (the
// top-left window of the first frame at `rgb`): ms of each call. Every job reports ok, error (the page's message), fps.

import { readFile, writeFile } from 'node:fs/promises';
import { chromium } from 'playwright-core';

const [url, jobsPath, outPath] = process.argv.slice(2);
const jobs = JSON.parse(await readFile(jobsPath, 'utf8'));
// A page whose promise never settles must not hold the caller: each job gets JOB_MS, then the driver stops
// with what it has and says which job timed out.
const JOB_MS = Number(process.env.STDO_JOB_MS || 240000);
// A job may leave what it has done so far in globalThis.stdoProgress: the timeout's message says it.
const withinTime = (promise, what, page) => Promise.race([promise, new Promise((_, reject) =>
  setTimeout(async () => {
    const progress = await Promise.race([page.evaluate(() => globalThis.stdoProgress ?? null).catch(() => null),
      new Promise((r) => setTimeout(r, 5000, 'page unresponsive'))]);
    reject(new Error(`${what} did not finish within ${JOB_MS / 1000} s (progress: ${JSON.stringify(progress)})`));
  }, JOB_MS).unref())]);
// A CPU profile's self time (ms) by the script it ran in: the file name of its URL (a package's path under
// node_modules, so that e.g. LiteRT.js's dist/index.js is named as its package's), or the profiler's own labels
// ((program), (garbage collector), (idle)).
function scriptName(url) {
  const path = url.split('?')[0];
  return path.includes('/node_modules/') ? path.split('/node_modules/').pop() : path.split('/').pop();
}
function selfTimeByScript({ nodes, samples, timeDeltas }) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const totals = Object.create(null); // names like "toString" are keys here, not Object.prototype methods
  samples.forEach((id, i) => {
    const { url, functionName } = byId.get(id).callFrame;
    const name = url ? scriptName(url) : functionName || '(anonymous)';
    totals[name] = (totals[name] || 0) + (timeDeltas[i + 1] ?? 0) / 1000;
  });
  return totals;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // WebGPU on SwiftShader's software adapter (no GPU here): --enable-unsafe-webgpu gives Chromium's headless one
  // (--enable-precise-memory-info and gc(): the long-clip job reads the JS heap after a collection)
  args: ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-precise-memory-info', '--js-flags=--expose-gc',
    '--disable-quic', '--no-first-run',
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
      const fetched = []; // the model files the page downloads (its network log)
      other.on('request', (r) => { if (r.url().includes('/models/')) fetched.push(r.url().split('/models/').pop()); });
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
      results.push({ ...await other.evaluate(() => ({
        ok: document.getElementById('error').hidden,
        error: document.getElementById('error').textContent,
        stats: document.getElementById('stats').textContent,
        canPlay: !document.getElementById('play').disabled,
        backend: document.getElementById('backend').value,
        precision: document.getElementById('precision').value,
        precisions: [...document.getElementById('precision').options].map((o) => o.textContent),
      })), fetched });
      await other.close();
      continue;
    }
    // profile: CDP's sampling profiler on the page's main thread while the job runs, self time summed by script
    // (the runtimes' WebAssembly and glue, the player's modules, the browser's own work)
    let cdp = null;
    if (job.profile) {
      cdp = await page.context().newCDPSession(page);
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
      await cdp.send('Profiler.start');
    }
    results.push(await withinTime(page.evaluate(async (job) => {
      const s = globalThis.stdo;
      const b64 = (typed) => {
        const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
        let text = '';
        for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        return btoa(text);
      };
      let run = null; // the job's runner, released when it ends: jobs do not pile up sessions in WASM memory
      try {
        if (job.kind === 'derive') { // the plan of each case's model map (base64 uint8 [T, rows, cols]): its rows
          return {
            ok: true,
            plans: job.cases.map((c) => {
              try {
                const map = Uint8Array.from(atob(c.map), (ch) => ch.charCodeAt(0));
                const plan = s.derivePlan(map, c);
                return { runs: Array.from(plan.runs), framePlan: Array.from(plan.framePlan) };
              } catch (e) {
                return { error: e.message };
              }
            }),
          };
        }
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
        if (job.kind === 'truncated') { // a file cut short: the frames it holds, then one message
          const bytes = await (await fetch(job.video)).arrayBuffer();
          const whole = await s.decodeVideo(await (await fetch(job.intact)).arrayBuffer(), job);
          const t0 = performance.now();
          let frames = 0;
          const differ = []; // frames that are not the intact file's
          let error = null;
          try {
            for await (const { index, rgb } of s.streamVideo(bytes, job)) {
              if (!rgb.every((x, i) => x === whole[index][i])) differ.push(index);
              frames += 1;
            }
          } catch (e) {
            error = `${e.name}: ${e.message}`;
          }
          return { ok: true, frames, differ, error, ms: performance.now() - t0, total: whole.length };
        }
        const bundle = await s.readBundle(job.bundle);
        if (job.kind === 'load') return { ok: true };
        if (job.kind === 'runtime') { // one model over one window of the plan's shapes, nothing else: the runtime alone
          run = await s.openRunner(bundle, job.backend, job.precision, job.threads ?? 1);
          const [h, w] = bundle.plan.shapes[job.shape];
          const { width, height } = bundle;
          const rgb = new Uint8Array(await (await fetch(job.rgb)).arrayBuffer()).subarray(0, 3 * width * height);
          const frame = s.rgbToPlanar(rgb, width, height);
          const input = new Float32Array(3 * h * w); // the first frame's top-left window, planar
          for (let row = 0; row < 3 * h; row++) { // row y of channel c
            const [c, y] = [Math.floor(row / h), row % h];
            input.set(frame.subarray((c * height + y) * width, (c * height + y) * width + w), row * w);
          }
          for (let i = 0; i < 2; i++) await run(job.model, job.shape, input, 1); // warm-up
          const times = [];
          for (let i = 0; i < job.runs; i++) {
            const t0 = performance.now();
            await run(job.model, job.shape, input, 1);
            times.push(performance.now() - t0);
          }
          return { ok: true, times };
        }
        if (job.kind === 'long') { // play a long clip by the bundle's plan (frame t by plan t mod T): heap, frames held
          run = await s.openRunner(bundle, job.backend, job.precision, job.threads ?? 1);
          const bytes = await (await fetch(job.video)).arrayBuffer();
          const { width, height, scale } = bundle;
          const planar = new Float32Array(3 * width * height);
          const frame = new Float32Array(3 * width * height * scale * scale);
          const buffers = new Map();
          const stats = {};
          const samples = [];
          let consumed = 0;
          let first = null;
          const t0 = performance.now();
          for await (const { index, rgb } of s.streamVideo(bytes, { ...job, width, height, stats })) {
            await s.executePlan(bundle.plan, index % bundle.frames, s.rgbToPlanar(rgb, width, height, planar), width,
              height, scale, run, { out: frame, buffers });
            consumed += 1;
            globalThis.stdoProgress = { frames: consumed, decoded: stats.decoded, held: stats.held,
              ms: Math.round(performance.now() - t0) };
            if (first === null) first = performance.now() - t0;
            if (job.at.includes(consumed)) { // a full collection, again once pending callbacks have run
              globalThis.gc();
              await new Promise((r) => setTimeout(r, 50));
              globalThis.gc();
              samples.push({ frames: consumed, heap: performance.memory.usedJSHeapSize });
            }
          }
          return { ok: true, frames: consumed, first_ms: first, held: stats.held, samples, ms: performance.now() - t0 };
        }
        const threads = job.threads ?? s.threadCount();
        run = await s.openRunner(bundle, job.backend, job.precision, threads);
        const { width, height, scale } = bundle;
        const out = { ok: true, threads, isolated: globalThis.crossOriginIsolated, threaded: run.threaded ?? null };
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
        // As the page plays: one input, one output frame and the window batches reused across frames.
        const planar = new Float32Array(3 * width * height);
        const frame = new Float32Array(3 * width * height * scale * scale);
        const buffers = new Map();
        const timing = {};
        for (let t = 0; t < count; t++) {
          const x = s.rgbToPlanar(frames[t], width, height, planar);
          const t0 = performance.now();
          const y = await s.executePlan(bundle.plan, t, x, width, height, scale, run,
            { out: frame, buffers, timing, batch: job.batch ?? true });
          busy += performance.now() - t0;
          if (job.keep) out.sr.push(b64(y));
        }
        out.fps = (1000 * count) / busy;
        out.run_ms = timing.run_ms / count; // per frame: in the runtime
        out.copy_ms = timing.copy_ms / count; // per frame: the plan's own window copies and clamping
        return out;
      } catch (e) {
        return { ok: false, error: e.message, name: e.name };
      } finally {
        await run?.release();
      }
    }, job), `job ${results.length} (${job.kind} ${job.backend ?? ''} ${job.precision ?? ''})`, page));
    if (cdp) {
      const { profile } = await cdp.send('Profiler.stop');
      results[results.length - 1].profile = selfTimeByScript(profile);
      await cdp.detach();
    }
  }
  await writeFile(outPath, JSON.stringify({ results, logs }));
} catch (e) { // one line the caller shows: what failed, not node's stack
  process.stderr.write(`drive: ${e.message.split('\n')[0]}\n`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
