/* Live generators: the book's own models, run in the reader's browser (no kernel).
 *
 * A cell made by gdl.viz.live_generator leaves <div class="gdl-live" data-settings=...> with a
 * picture drawn when the chapter ran. On a page served over HTTP this script fetches the
 * model's description (_static/live/NAME.json) and ONNX file, loads ONNX Runtime Web from
 * _static/ort/ (only on pages that have a live view), and replaces the picture with the
 * model running live. Four kinds (the description's "kind"):
 *  - "latent-grid" (a GAN generator): new samples on a click, sliders that move every latent
 *    vector along a fixed direction, and, for a generator conditioned on a yes/no attribute,
 *    a slider from one class to the other;
 *  - "latent-plane" (a decoder of 2-D latents; cell made by gdl.viz.live_plane): drag a point
 *    over the plane, with the encoded test set drawn behind it, and see what is decoded there;
 *  - "ddim" (a diffusion model's noise-predicting U-Net): DDIM sampling from seeded noise, as
 *    gdl.models.diffusion.DiffusionModel.generate does it, with a slider for the number of
 *    steps, drawing every step's estimate of the clean images as it goes;
 *  - "text" (a GPT's forward pass, token ids -> the next token's logits; cell made by
 *    gdl.viz.live_writer): writes a review after a chosen prompt one word at a time, with
 *    temperature and top-k, as gdl.models.transformer.GPT.generate samples;
 *  - "guided-ddim" (a U-Net that also takes a condition; cell made by
 *    gdl.viz.live_prompt.live_text_to_image): text to image as chapter 13 does it. Its
 *    description names a second model, a "prompt-encoder" (caption ids -> the condition), that
 *    the page runs once per prompt; DDIM then runs the U-Net on the conditioned and the null
 *    batch at every step and mixes them with the guidance scale (classifier-free guidance).
 * Where any of that is missing the picture (or text) stays, with a line saying why.
 * window.gdlLive.widgets[NAME] exposes run(z, n) (latent-grid; latent-plane, with setPoint(z)),
 * sample(noise, n, steps) (ddim), sample(noise, n, steps, prompt, guidance) and
 * condition(prompt) (guided-ddim) or logits(ids) and greedy(promptIds, n) (text) for the book's
 * browser tests.
 */
(function () {
  "use strict";
  const script = document.currentScript;
  const base = script ? new URL(".", script.src) : new URL("_static/", document.baseURI);
  const registry = (window.gdlLive = window.gdlLive || { widgets: {}, runtime: null });

  // A small seeded generator (mulberry32) and Box-Muller normals: the same draws on every load.
  function uniform(seed) {
    let a = seed >>> 0;
    return function () {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  function normals(rand, count) {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i += 2) {
      const r = Math.sqrt(-2 * Math.log(1 - rand()));
      const angle = 2 * Math.PI * rand();
      out[i] = r * Math.cos(angle);
      if (i + 1 < count) out[i + 1] = r * Math.sin(angle);
    }
    return out;
  }

  function loadRuntime() {
    if (!registry.runtime) {
      registry.runtime = new Promise(function (resolve, reject) {
        if (window.ort) return resolve(window.ort);
        const tag = document.createElement("script");
        tag.src = new URL("ort/ort.wasm.min.js", base).href;
        tag.onload = function () {
          window.ort.env.wasm.wasmPaths = new URL("ort/", base).href;
          window.ort.env.wasm.numThreads = 1; // no cross-origin isolation needed
          resolve(window.ort);
        };
        tag.onerror = function () {
          reject(new Error("this build of the book has no ONNX Runtime Web (_static/ort/)"));
        };
        document.head.appendChild(tag);
      });
    }
    return registry.runtime;
  }

  function element(tag, attrs, text) {
    const el = document.createElement(tag);
    Object.entries(attrs || {}).forEach(function ([k, v]) { el.setAttribute(k, v); });
    if (text) el.textContent = text;
    return el;
  }

  // A task that a new request interrupts: run() starts `body(current)` unless it is running;
  // body polls current() (false once a newer request came) and stops early, and the task then
  // starts again for the newest request.
  function restartable(body) {
    let requested = 0, running = false;
    return async function run() {
      requested++;
      if (running) return;
      running = true;
      try {
        for (;;) {
          const mine = requested;
          await body(function () { return requested === mine; });
          if (requested === mine) break;
        }
      } finally {
        running = false;
      }
    };
  }

  async function start(root) {
    const settings = JSON.parse(root.dataset.settings);
    const note = root.querySelector(".gdl-live-note");
    const made = root.querySelector(".gdl-live-static img") ? "picture" : "text";
    if (location.protocol === "file:") {
      note.textContent += " (This copy is read from disk, where browsers do not run WebAssembly.)";
      root.dataset.state = "static";
      return;
    }
    let meta, session, ort;
    try {
      // The build lists what it exported and whether it shipped the runtime, so that a view
      // it could not make asks for nothing that is not there.
      const listing = await fetch(new URL("live/index.json", base));
      if (!listing.ok) throw new Error("this build exported no live models");
      const index = await listing.json();
      if (!index.models.includes(settings.model)) {
        throw new Error(`this build has no published weights for ${settings.model}`);
      }
      if (!index.runtime) throw new Error("this build could not fetch ONNX Runtime Web");
      const response = await fetch(new URL(`live/${settings.model}.json`, base));
      if (!response.ok) throw new Error(`this build has no live/${settings.model}.json`);
      meta = await response.json();
      ort = await loadRuntime();
      session = await ort.InferenceSession.create(
        new URL(`live/${settings.model}.onnx`, base).href, { executionProviders: ["wasm"] });
      if (meta.prompt_model) {     // a second network: the prompt -> the condition
        if (!index.models.includes(meta.prompt_model)) {
          throw new Error(`this build has no published weights for ${meta.prompt_model}`);
        }
        const reply = await fetch(new URL(`live/${meta.prompt_model}.json`, base));
        if (!reply.ok) throw new Error(`this build has no live/${meta.prompt_model}.json`);
        const promptMeta = await reply.json();
        if (promptMeta.clip_sha256 !== meta.clip_sha256) {
          throw new Error(`${meta.prompt_model} and ${settings.model} were trained on ` +
                          "different CLIP weights");
        }
        const promptSession = await ort.InferenceSession.create(
          new URL(`live/${meta.prompt_model}.onnx`, base).href, { executionProviders: ["wasm"] });
        meta = Object.assign({}, meta, { prompt: { meta: promptMeta, session: promptSession } });
      }
    } catch (err) {
      note.textContent = `The live view is not available here (${err.message}); the ${made} ` +
        "above was made when the page was executed.";
      root.dataset.state = "static";
      return;
    }

    const kind = meta.kind || "latent-grid";
    const widget = { "latent-grid": latentGrid, "latent-plane": latentPlane, ddim: ddimSampler,
                     "guided-ddim": ddimSampler, text: textWriter }[kind];
    if (!widget || (settings.kind && settings.kind !== kind)) {
      const why = widget ? `${settings.model} is a model of kind "${kind}", the page asks for ` +
        `"${settings.kind}"` : `this script cannot run a live view of kind "${kind}"`;
      note.textContent = `The live view is not available here (${why}); the ${made} ` +
        "above was made when the page was executed.";
      root.dataset.state = "static";
      return;
    }
    try {
      await widget(root, settings, meta, session, ort);
    } catch (err) {
      note.textContent = `The live view is not available here (${err.message}); the ${made} ` +
        "above was made when the page was executed.";
      root.dataset.state = "static";
    }
  }

  // One image (H*W*C values of `pixels` from `offset` on) drawn at (x, y) on `context`,
  // width x height screen pixels, its values mapped from range [lo, hi] to black..white.
  function drawImage(context, scratch, pixels, offset, shape, range, x, y, width, height) {
    const [h, w, c] = shape;
    const [lo, hi] = range;
    const sc = scratch.getContext("2d");
    const image = sc.createImageData(w, h);
    for (let p = 0; p < h * w; p++) {
      for (let ch = 0; ch < 3; ch++) {
        const v = pixels[offset + p * c + (c === 1 ? 0 : ch)];
        image.data[4 * p + ch] = Math.round(255 * Math.min(1, Math.max(0, (v - lo) / (hi - lo))));
      }
      image.data[4 * p + 3] = 255;
    }
    sc.putImageData(image, 0, 0);
    context.drawImage(scratch, x, y, width, height);
  }

  // ------------------------------------------------------------------ latent grid (a GAN)
  async function latentGrid(root, settings, meta, session, ort) {
    const [h, w, c] = meta.output_shape;
    const size = meta.input_size;
    const n = settings.n;
    const ncols = settings.ncols;
    const nrows = Math.ceil(n / ncols);
    const scale = settings.scale;

    const rand = uniform(settings.seed + 1);
    // The codes to start from: given ones (gdl.viz.live_edit: e.g. held-out faces' posterior
    // means), or draws from N(0, I).
    const given = settings.latents ? Float32Array.from(settings.latents.flat()) : null;
    let z = given ? given.slice() : normals(rand, n * size);
    // One slider per direction: named vectors (attribute vectors, moved by a multiple in
    // settings.strengths) or fixed random unit directions.
    const named = settings.named_directions || [];
    const dirs = named.map(function (d) { return Float32Array.from(d.vector); });
    for (let k = 0; k < settings.directions; k++) {
      const d = normals(rand, size);
      const norm = Math.hypot.apply(null, d);
      dirs.push(d.map(function (v) { return v / norm; }));
    }
    const amounts = new Float32Array(dirs.length);
    // A generator conditioned on one yes/no attribute (meta.label): its one-hot label
    // [no, yes] becomes [1 - a, a], a slider between the two classes.
    let attribute = settings.label ?? 1;

    const panel = element("div", { class: "gdl-live-panel" });
    const canvas = element("canvas", {
      width: (ncols * (w + 1) - 1) * scale, height: (nrows * (h + 1) - 1) * scale,
      class: "gdl-live-canvas", "aria-label": `samples from the ${meta.what}`,
    });
    const controls = element("div", { class: "gdl-live-controls" });
    const again = element("button", { type: "button" }, "new samples");
    controls.appendChild(again);
    const back = given ? element("button", { type: "button" }, settings.given) : null;
    if (back) controls.appendChild(back);
    const [lo, hi] = settings.strengths || [-4, 4];
    if (named.length) controls.appendChild(element("span", { class: "gdl-live-break" }));
    const sliders = dirs.map(function (_, k) {
      const isNamed = k < named.length;
      const label = element("label", {}, isNamed ? `${named[k].name} ` : `direction ${k + 1} `);
      const input = element("input", { type: "range", min: String(isNamed ? lo : -4),
                                        max: String(isNamed ? hi : 4), step: "0.1", value: "0" });
      label.appendChild(input);
      if (isNamed) {
        const shown = element("output", {}, "+0.0");
        input.addEventListener("input", function () {
          const v = parseFloat(input.value);
          shown.textContent = (v < 0 ? "" : "+") + v.toFixed(1);
        });
        label.append(" ", shown);
      }
      controls.appendChild(label);
      return input;
    });
    let labelSlider = null;
    if (meta.label_size) {
      const label = element("label", {}, `${meta.label} `);
      labelSlider = element("input", { type: "range", min: "0", max: "1", step: "0.05",
                                       value: String(attribute) });
      const shown = element("span", {}, attribute.toFixed(2));
      labelSlider.addEventListener("input", function () {
        attribute = parseFloat(labelSlider.value);
        shown.textContent = attribute.toFixed(2);
        render();
      });
      label.append(labelSlider, " ", shown);
      controls.appendChild(label);
    }
    const status = element("p", { class: "gdl-live-status" });
    panel.append(canvas, controls, status);
    root.querySelector(".gdl-live-static").replaceWith(panel);

    const scratch = element("canvas", { width: w, height: h });
    const context = canvas.getContext("2d");
    context.imageSmoothingEnabled = false;
    const mb = (meta.onnx_bytes / 1e6).toFixed(1);

    async function run(latents, count, mix) {
      const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", latents, [count, size]) };
      if (meta.label_size) {
        const a = mix ?? attribute;
        const labels = new Float32Array(2 * count);
        for (let i = 0; i < count; i++) { labels[2 * i] = 1 - a; labels[2 * i + 1] = a; }
        feeds[session.inputNames[1]] = new ort.Tensor("float32", labels, [count, 2]);
      }
      const out = await session.run(feeds);
      return out[session.outputNames[0]].data;
    }

    function draw(pixels) {
      context.fillStyle = "#fff";
      context.fillRect(0, 0, canvas.width, canvas.height);
      for (let i = 0; i < n; i++) {
        const col = i % ncols, row = Math.floor(i / ncols);
        drawImage(context, scratch, pixels, i * h * w * c, meta.output_shape, meta.value_range,
                  col * (w + 1) * scale, row * (h + 1) * scale, w * scale, h * scale);
      }
    }

    let busy = false, again_after = false;
    async function render() {
      if (busy) { again_after = true; return; }
      busy = true;
      do {
        again_after = false;
        const moved = z.slice();
        for (let i = 0; i < n; i++) {
          for (let k = 0; k < dirs.length; k++) {
            if (!amounts[k]) continue;
            for (let j = 0; j < size; j++) moved[i * size + j] += amounts[k] * dirs[k][j];
          }
        }
        const t0 = performance.now();
        const pixels = await run(moved, n);
        const ms = performance.now() - t0;
        draw(pixels);
        const what = given && z.every(function (v, j) { return v === given[j]; })
          ? settings.given : "samples";
        status.textContent = `${meta.what}: ${mb} MB, ${n} ${what} in ${ms.toFixed(0)} ms ` +
          "in this browser (ONNX Runtime Web, one thread). Trained for " +
          `${meta.steps.toLocaleString("en")} steps.`;
      } while (again_after);
      busy = false;
      root.dataset.state = "live";
    }

    again.addEventListener("click", function () {
      z = normals(rand, n * size);
      render();
    });
    if (back) back.addEventListener("click", function () { z = given.slice(); render(); });
    sliders.forEach(function (input, k) {
      input.addEventListener("input", function () { amounts[k] = parseFloat(input.value); render(); });
    });
    registry.widgets[settings.model] = { meta: meta, run: run, render: render, canvas: canvas };
    await render();
  }

  // ------------------------------------------------------------------ latent plane (a 2-D VAE)
  // The reader drags a point over the plane (the encoded test set drawn behind it) and the
  // decoder paints the image at that point, on every move.
  async function latentPlane(root, settings, meta, session, ort) {
    const [h, w, c] = meta.output_shape;
    const [lo, hi] = settings.extent;
    const px = settings.plane_px;
    const scale = settings.scale;
    if (meta.input_size !== 2) throw new Error(`${settings.model} has ${meta.input_size} latents`);
    const background = new Image();
    await new Promise(function (resolve, reject) {
      background.onload = resolve;
      background.onerror = function () { reject(new Error("the plane's picture did not load")); };
      background.src = settings.background;
    });

    const panel = element("div", { class: "gdl-live-panel gdl-live-row" });
    const plane = element("canvas", {
      width: px, height: px, class: "gdl-live-canvas gdl-live-plane", tabindex: "0",
      "aria-label": `latent plane of the ${meta.what}: drag the point, or use the arrow keys`,
    });
    const out = element("canvas", {
      width: w * scale, height: h * scale, class: "gdl-live-canvas",
      "aria-label": `the image the ${meta.what} decodes at the point`,
    });
    const side = element("div", { class: "gdl-live-side" });
    const where = element("p", { class: "gdl-live-status" });
    side.append(out, where);
    panel.append(plane, side);
    const status = element("p", { class: "gdl-live-status" });
    const stand = root.querySelector(".gdl-live-static");
    stand.replaceWith(panel);
    panel.after(status);

    const pc = plane.getContext("2d");
    const scratch = element("canvas", { width: w, height: h });
    const oc = out.getContext("2d");
    oc.imageSmoothingEnabled = false;
    const mb = (meta.onnx_bytes / 1e6).toFixed(1);
    let point = settings.start.slice();

    async function run(latents, count) {
      const input = new ort.Tensor("float32", latents, [count, 2]);
      const result = await session.run({ [session.inputNames[0]]: input });
      return result[session.outputNames[0]].data;
    }
    function toScreen(z) { return [(z[0] - lo) / (hi - lo) * px, (hi - z[1]) / (hi - lo) * px]; }
    function drawPlane() {
      pc.drawImage(background, 0, 0, px, px);
      const [x, y] = toScreen(point);
      pc.strokeStyle = "#000";
      pc.lineWidth = 2;
      pc.beginPath();
      pc.arc(x, y, 7, 0, 2 * Math.PI);
      pc.moveTo(x - 11, y); pc.lineTo(x + 11, y);
      pc.moveTo(x, y - 11); pc.lineTo(x, y + 11);
      pc.stroke();
    }

    let last = 0;
    const render = restartable(async function () {
      drawPlane();
      const z = new Float32Array(point);
      const t0 = performance.now();
      const pixels = await run(z, 1);
      last = performance.now() - t0;
      drawImage(oc, scratch, pixels, 0, meta.output_shape, meta.value_range, 0, 0,
                out.width, out.height);
      where.textContent = `z = (${point[0].toFixed(2)}, ${point[1].toFixed(2)})`;
      status.textContent = `${meta.what}: ${mb} MB, one image in ${last.toFixed(1)} ms in this ` +
        "browser (ONNX Runtime Web, one thread). Trained for " +
        `${meta.steps.toLocaleString("en")} steps.`;
      root.dataset.state = "live";
    });

    function moveTo(event) {
      const box = plane.getBoundingClientRect();
      const fx = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
      const fy = Math.min(1, Math.max(0, (event.clientY - box.top) / box.height));
      point = [lo + fx * (hi - lo), hi - fy * (hi - lo)];
      render();
    }
    let dragging = false;
    plane.addEventListener("pointerdown", function (e) {
      dragging = true;
      plane.setPointerCapture(e.pointerId);
      moveTo(e);
    });
    plane.addEventListener("pointermove", function (e) { if (dragging) moveTo(e); });
    plane.addEventListener("pointerup", function () { dragging = false; });
    plane.addEventListener("keydown", function (e) {
      const step = (hi - lo) / 50;
      const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step],
                  ArrowDown: [0, -step] }[e.key];
      if (!d) return;
      e.preventDefault();
      point = [Math.min(hi, Math.max(lo, point[0] + d[0])), Math.min(hi, Math.max(lo, point[1] + d[1]))];
      render();
    });
    registry.widgets[settings.model] = {
      meta: meta, run: run, canvas: out, plane: plane,
      setPoint: function (z) { point = z.slice(); return render(); },
    };
    await render();
  }

  // ------------------------------------------------------------------ DDIM (a diffusion model)
  // The page runs the sampler of gdl.models.diffusion (ddim_sample, DiffusionModel.generate)
  // around the exported EMA U-Net, with the same step times and the same update, so that the
  // same noise gives Keras' images.
  async function ddimSampler(root, settings, meta, session, ort) {
    const [h, w, c] = meta.image_shape;
    const perImage = h * w * c;
    const n = settings.n;
    const ncols = settings.ncols;
    const nrows = Math.ceil(n / ncols);
    const scale = settings.scale;
    const maxSteps = 20;
    const [noisyName, varianceName] = meta.inputs;   // the U-Net's inputs, by name

    // Offset cosine schedule: the angle runs linearly in t from acos(max_signal) at t = 0 to
    // acos(min_signal) at t = 1, signal rate = cos, noise rate = sin. The signal rate never
    // reaches 0, where the clean-image estimate (which divides by it) would be 0/0.
    const startAngle = Math.acos(meta.schedule.max_signal);
    const endAngle = Math.acos(meta.schedule.min_signal);
    function rates(t) {
      const angle = startAngle + t * (endAngle - startAngle);
      return { signal: Math.cos(angle), noise: Math.sin(angle) };
    }

    // The network sees pixels standardised per channel, (p - mean) / std, so pixel values
    // 0 and 1 are pixelLow[ch] and pixelHigh[ch] there.
    const mean = meta.mean, std = meta.std;
    const pixelLow = mean.map(function (m, ch) { return (0 - m) / std[ch]; });
    const pixelHigh = mean.map(function (m, ch) { return (1 - m) / std[ch]; });
    function toPixels(x) {                 // denormalise and clip to [0, 1]
      const out = new Float32Array(x.length);
      for (let j = 0; j < x.length; j++) {
        const ch = j % c;
        out[j] = Math.min(1, Math.max(0, x[j] * std[ch] + mean[ch]));
      }
      return out;
    }

    // One network call at a time: a session runs one request, and the test's sample() may
    // come while the page's own sampling is still going.
    let queue = Promise.resolve();
    function call(feeds) {
      const result = queue.then(function () { return session.run(feeds); });
      queue = result.catch(function () {});
      return result.then(function (out) { return out[session.outputNames[0]].data; });
    }
    // guide: null (a plain DDIM model), or { condition: (count, D) values, guidance: w }, for
    // which the U-Net runs once on the batch twice over, with the condition and with the null
    // (zero) one, and the two estimates are mixed as gdl.models.multimodal.guided_noise does.
    async function predictNoise(x, count, noiseRate, guide) {
      const rows = guide ? 2 * count : count;
      const variance = new Float32Array(rows).fill(noiseRate * noiseRate);
      const images = guide ? new Float32Array(2 * x.length) : x;
      if (guide) { images.set(x); images.set(x, x.length); }
      const feeds = {
        [noisyName]: new ort.Tensor("float32", images, [rows, h, w, c]),
        [varianceName]: new ort.Tensor("float32", variance, [rows, 1, 1, 1]),
      };
      if (!guide) return call(feeds);
      const conditions = new Float32Array(rows * meta.condition_dims);   // null rows: zeros
      conditions.set(guide.condition);
      feeds[meta.inputs[2]] = new ort.Tensor("float32", conditions, [rows, meta.condition_dims]);
      const both = await call(feeds);
      const eps = new Float32Array(x.length);
      const s = Math.fround(guide.guidance);
      for (let j = 0; j < x.length; j++) {
        const un = both[x.length + j];
        eps[j] = Math.fround(un + Math.fround(s * Math.fround(both[j] - un)));
      }
      return eps;
    }

    // DDIM from t = 1 (noise) to t = 0 in `steps` equal steps. Each step splits the current
    // images into an estimate of the clean image (clipped to the pixel range) and of the noise,
    // and mixes the two again at the next, lower noise level. onStep(i, x, cleanEstimate) sees
    // each step (x: the images that went into it); if it returns false the sampling stops.
    // Returns the last clean estimate as pixels in [0, 1].
    async function ddim(noise, count, steps, onStep, guide) {
      let x = Float32Array.from(noise);
      let clean = null;
      for (let i = 0; i < steps; i++) {
        const t = 1 - i / steps;
        const now = rates(t), next = rates(t - 1 / steps);
        const eps = await predictNoise(x, count, now.noise, guide || null);
        clean = new Float32Array(x.length);
        const after = new Float32Array(x.length);
        for (let j = 0; j < x.length; j++) {
          const ch = j % c;
          const x0 = Math.fround(Math.min(pixelHigh[ch], Math.max(pixelLow[ch],
            (x[j] - now.noise * eps[j]) / now.signal)));
          // the noise estimate that goes with the clipped clean estimate
          const e = Math.fround((x[j] - now.signal * x0) / now.noise);
          clean[j] = x0;
          after[j] = next.signal * x0 + next.noise * e;
        }
        if (onStep && (await onStep(i, x, clean)) === false) return null;
        x = after;
      }
      return toPixels(clean);
    }

    const rand = uniform(settings.seed + 1);
    let noise = normals(rand, n * perImage);
    let steps = Math.min(maxSteps, Math.max(1, settings.steps));

    const panel = element("div", { class: "gdl-live-panel" });
    const canvas = element("canvas", {
      width: (ncols * (w + 1) - 1) * scale, height: (nrows * (h + 1) - 1) * scale,
      class: "gdl-live-canvas", "aria-label": `samples from the ${meta.what}`,
    });
    const controls = element("div", { class: "gdl-live-controls" });
    const again = element("button", { type: "button" }, "new samples");
    const label = element("label", {}, "steps ");
    const slider = element("input", { type: "range", min: "1", max: String(maxSteps), step: "1",
                                      value: String(steps) });
    const shown = element("output", {}, String(steps));
    label.append(slider, " ", shown);
    const guided = meta.kind === "guided-ddim";
    const prompting = guided ? promptControls(meta.prompt, settings, controls, ort) : null;
    controls.append(again, label);
    // The first sample, step by step: the images that go into each step (top row) and the
    // network's estimate of the clean image made from them (bottom row).
    const trajectory = element("canvas", {
      width: canvas.width, class: "gdl-live-canvas gdl-live-trajectory",
      "aria-label": "the first sample, step by step",
    });
    const trajectoryNote = element("p", { class: "gdl-live-note" },
      "The first sample, step by step: top, the image x\u209c going into each step (pure noise " +
      "first); bottom, the network's estimate of the clean image made from it.");
    const status = element("p", { class: "gdl-live-status" });
    panel.append(canvas, controls, trajectory, trajectoryNote, status);
    if (guided) panel.append(prompting.words);
    root.querySelector(".gdl-live-static").replaceWith(panel);

    const scratch = element("canvas", { width: w, height: h });
    const context = canvas.getContext("2d");
    const strip = trajectory.getContext("2d");
    const mb = (meta.onnx_bytes / 1e6).toFixed(1);
    const gap = 2;
    let tile = w;          // the trajectory's image size for the current number of steps

    function drawGrid(pixels) {
      context.imageSmoothingEnabled = false;
      context.fillStyle = "#fff";
      context.fillRect(0, 0, canvas.width, canvas.height);
      for (let i = 0; i < n; i++) {
        const col = i % ncols, row = Math.floor(i / ncols);
        drawImage(context, scratch, pixels, i * perImage, meta.image_shape, [0, 1],
                  col * (w + 1) * scale, row * (h + 1) * scale, w * scale, h * scale);
      }
    }
    function clearTrajectory() {
      // as large as the grid's width allows, never above the grid's own scale
      tile = Math.max(8, Math.min(w * scale, Math.floor((canvas.width + gap) / steps) - gap));
      trajectory.height = 2 * tile + gap;      // (resizing also clears it)
      strip.imageSmoothingEnabled = false;
      strip.fillStyle = "#fff";
      strip.fillRect(0, 0, trajectory.width, trajectory.height);
    }
    function drawStep(i, x, clean) {        // only the first sample: its values come first
      const first = function (a) { return toPixels(a.subarray(0, perImage)); };
      drawImage(strip, scratch, first(x), 0, meta.image_shape, [0, 1],
                i * (tile + gap), 0, tile, tile);
      drawImage(strip, scratch, first(clean), 0, meta.image_shape, [0, 1],
                i * (tile + gap), tile + gap, tile, tile);
    }
    function paint() {                       // let the browser show the step just drawn
      return new Promise(function (resolve) { setTimeout(resolve, 0); });
    }

    // A request made while sampling (new noise, other steps) stops the running sampling after
    // its current step and starts again.
    const render = restartable(async function (current) {
      let guide = null, what = "samples";
      let computing = 0, since = performance.now();   // network and arithmetic, not drawing
      if (guided) {
        const asked = prompting.read();
        if (asked.error) {                 // words the model does not know: say so, draw nothing
          status.textContent = asked.error;
          canvas.style.opacity = "0.3";    // the faces shown are not for this prompt
          return;
        }
        canvas.style.opacity = "";
        guide = await prompting.guide(asked.text, n, asked.guidance);
        what = `faces for \u201c${asked.text}\u201d at guidance w = ${asked.guidance}`;
        if (!current()) return;
      }
      drawGrid(toPixels(noise));
      clearTrajectory();
      const pixels = await ddim(noise, n, steps, async function (i, x, clean) {
        computing += performance.now() - since;
        drawGrid(toPixels(clean));
        drawStep(i, x, clean);
        await paint();
        since = performance.now();
        return current();
      }, guide);
      if (pixels) {
        drawGrid(pixels);
        const calls = guided ? "each runs the U-Net on the batch with and without the prompt"
          : "one U-Net call each";
        const size = guided ? `${mb} MB + ${(meta.prompt.meta.onnx_bytes / 1e6).toFixed(1)} MB ` +
          "(the text encoder and prior)" : `${mb} MB`;
        status.textContent = `${meta.what}: ${size}, ${n} ${what} in ${steps} DDIM ` +
          `step${steps > 1 ? "s" : ""} (${calls}): ${computing.toFixed(0)} ms in ` +
          "this browser (ONNX Runtime Web, one thread). The U-Net was trained for " +
          `${meta.steps.toLocaleString("en")} steps.`;
        root.dataset.state = "live";
      }
    });

    again.addEventListener("click", function () {
      noise = normals(rand, n * perImage);
      render();
    });
    slider.addEventListener("input", function () {
      steps = parseInt(slider.value, 10);
      shown.textContent = String(steps);
      render();
    });
    if (guided) prompting.onChange(render);
    registry.widgets[settings.model] = {
      meta: meta, render: render, canvas: canvas, trajectory: trajectory,
      // the final images, (count, H, W, C) values in [0, 1], for `steps` steps from `noise`
      // (guided: for `prompt` at guidance scale `guidance`)
      sample: async function (initial, count, sampleSteps, prompt, guidance) {
        if (!guided) return ddim(initial, count, sampleSteps);
        return ddim(initial, count, sampleSteps, null,
                    await prompting.guide(prompt, count, guidance));
      },
      condition: guided ? function (prompt) {
        return prompting.condition(prompt).then(function (v) { return Array.from(v); });
      } : undefined,
    };
    await render();
  }

  // The prompt and guidance controls of a "guided-ddim" view, and its prompt encoder. The page
  // writes a prompt's ids as gdl.data.captions.CaptionTokenizer.encode does (<start>, the words,
  // commas split off, <end>, then padding), lower-cased; words outside the captions' vocabulary
  // are reported, not guessed.
  function promptControls(prompt, settings, controls, ort) {
    const pm = prompt.meta;
    const index = new Map(pm.vocabulary.map(function (word, i) { return [word, i]; }));
    const label = element("label", { class: "gdl-live-prompt" }, "prompt ");
    const input = element("input", { type: "text", value: settings.prompts[0],
                                      spellcheck: "false", "aria-label": "the prompt" });
    const choices = element("select", { "aria-label": "example prompts" });
    settings.prompts.forEach(function (text) { choices.appendChild(element("option", {}, text)); });
    label.append(input, " ", choices);
    const wLabel = element("label", {}, "guidance w ");
    const wSlider = element("input", { type: "range", min: "0", max: "8", step: "0.5",
                                       value: String(settings.guidance) });
    const wShown = element("output", {}, String(settings.guidance));
    wLabel.append(wSlider, " ", wShown);
    const words = element("details", { class: "gdl-live-words" });
    words.append(element("summary", {}, "the words it knows"),
                 element("p", {}, pm.vocabulary.filter(function (_, i) {
                   return i !== pm.pad_id && i !== pm.start_id && i !== pm.end_id;
                 }).map(function (w) { return w === "," ? "(comma)" : w; }).join(" \u00b7 ")));
    controls.append(label, wLabel);

    function wordsOf(text) {      // sentence marks dropped, commas split off (they are words)
      return text.toLowerCase().replace(/[.!?;:"\u201c\u201d]/g, " ").replace(/,/g, " , ")
        .split(/\s+/).filter(Boolean);
    }
    function encode(text) {                 // (max_len,) int32 ids, or the reason it cannot be
      const list = wordsOf(text);
      if (!list.length) return { error: "Type a prompt (or pick one), then press Enter." };
      const unknown = list.filter(function (w) { return !index.has(w); });
      if (unknown.length) {
        return { error: `\u201c${unknown[0]}\u201d is not a word of the captions this model ` +
                        "was trained on (see the words it knows, below the pictures)." };
      }
      if (list.length + 2 > pm.max_len) {
        return { error: "That prompt is longer than any caption the model was trained on." };
      }
      const ids = new Int32Array(pm.max_len);
      ids[0] = pm.start_id;
      list.forEach(function (w, i) { ids[i + 1] = index.get(w); });
      ids[list.length + 1] = pm.end_id;
      return { ids: ids };
    }
    const cache = new Map();
    let queue = Promise.resolve();
    function condition(text) {              // the prior's guess at the image embedding, (D,)
      const key = wordsOf(text).join(" ");
      if (!cache.has(key)) {
        const coded = encode(text);
        if (coded.error) return Promise.reject(new Error(coded.error));
        const feeds = { [pm.input]: new ort.Tensor("int32", coded.ids, [1, pm.max_len]) };
        const result = queue.then(function () { return prompt.session.run(feeds); });
        queue = result.catch(function () {});
        cache.set(key, result.then(function (out) {
          return Float32Array.from(out[prompt.session.outputNames[0]].data);
        }));
      }
      return cache.get(key);
    }
    return {
      read: function () {
        const text = input.value.trim();
        const coded = encode(text);
        return { text: text, guidance: parseFloat(wSlider.value), error: coded.error };
      },
      condition: condition,
      // what ddim() needs to guide `count` samples towards `text` at scale `guidance`
      guide: async function (text, count, guidance) {
        const one = await condition(text);                    // (D,) the prior's guess
        const all = new Float32Array(count * one.length);
        for (let i = 0; i < count; i++) all.set(one, i * one.length);
        return { condition: all, guidance: guidance };
      },
      words: words,       // the vocabulary, for the page to show under the pictures
      onChange: function (render) {
        choices.addEventListener("change", function () { input.value = choices.value; render(); });
        input.addEventListener("change", render);          // Enter, or leaving the box
        wSlider.addEventListener("input", function () {
          wShown.textContent = wSlider.value;
          render();
        });
      },
    };
  }

  // ------------------------------------------------------------------ text (a GPT)
  // The page writes as gdl.models.transformer.GPT.generate does: the ids of <start> and the
  // prompt's words, then one word per network call, drawn from the last position's logits
  // (excluded ids never drawn; divided by the temperature; only the top-k kept) by the inverse
  // of the cumulative distribution at a seeded uniform number (next_token). The whole text is
  // read again for every word (no key/value cache: at 65 tokens it is cheap).
  async function textWriter(root, settings, meta, session, ort) {
    const vocab = meta.vocabulary;
    const index = new Map(vocab.map(function (word, i) { return [word, i]; }));
    const excluded = new Set(meta.exclude_ids);
    const PACE_MS = 35;            // at least this long between words shown: the reader sees it type

    function encode(prompt) {      // as chapter 9's encode: <start>, then each word's id
      const words = prompt.split(/\s+/).filter(Boolean);
      return [meta.start_id].concat(words.map(function (w) {
        return index.has(w) ? index.get(w) : meta.unknown_id;
      }));
    }
    function detokenize(ids) {     // as chapter 9's words(), without the <end> token itself
      const out = [];
      for (const i of ids) {
        if (i === meta.end_id) break;
        if (i !== meta.start_id) out.push(vocab[i]);
      }
      return out.join(" ").replace(/ ([,.;:!?%)])/g, "$1").replace(/\( /g, "(")
        .split(" - ").join("-");
    }

    // One network call at a time (the test's calls may come while the page is writing).
    let queue = Promise.resolve();
    function logits(ids) {         // the logits of the token after `ids` (a Float32Array)
      const feeds = { [session.inputNames[0]]:
        new ort.Tensor("int32", Int32Array.from(ids), [1, ids.length]) };
      const result = queue.then(function () { return session.run(feeds); });
      queue = result.catch(function () {});
      return result.then(function (out) { return out[session.outputNames[0]].data; });
    }
    function argmax(values) {
      let best = -1;
      for (let i = 0; i < values.length; i++) {
        if (!excluded.has(i) && (best < 0 || values[i] > values[best])) best = i;
      }
      return best;
    }
    // next_token: temperature 0 or top-1 is the argmax; otherwise softmax(logits / T) over the
    // top k (ties with the k-th kept), and the first id whose cumulative probability reaches u.
    function choose(values, temperature, topK, u) {
      if (temperature === 0 || topK === 1) return argmax(values);
      const scaled = new Float64Array(values.length);
      for (let i = 0; i < values.length; i++) {
        scaled[i] = excluded.has(i) ? -Infinity : values[i] / temperature;
      }
      if (topK) {
        const kth = Float64Array.from(scaled).sort().reverse()[Math.min(topK, scaled.length) - 1];
        for (let i = 0; i < scaled.length; i++) if (scaled[i] < kth) scaled[i] = -Infinity;
      }
      let top = -Infinity;
      for (const v of scaled) top = Math.max(top, v);
      const cdf = new Float64Array(scaled.length);
      let total = 0;
      for (let i = 0; i < scaled.length; i++) {
        total += scaled[i] === -Infinity ? 0 : Math.exp(scaled[i] - top);
        cdf[i] = total;
      }
      let below = 0;
      while (below < cdf.length - 1 && cdf[below] < u * total) below++;
      return below;
    }
    // The prompt's ids followed by up to n greedy choices (stopping after <end> if untilEnd).
    async function greedy(promptIds, n, untilEnd) {
      const ids = Array.from(promptIds);
      for (let k = 0; k < n && ids.length < meta.max_len; k++) {
        const next = argmax(await logits(ids));
        ids.push(next);
        if (next === meta.end_id && untilEnd !== false) break;
      }
      return ids;
    }

    const rand = uniform(settings.seed + 1);
    const prompts = settings.prompts;
    const allK = 51;              // the slider's last stop: no top-k cut
    const panel = element("div", { class: "gdl-live-panel" });
    const controls = element("div", { class: "gdl-live-controls" });
    const promptLabel = element("label", {}, "prompt ");
    const select = element("select", {});
    prompts.forEach(function (prompt, i) {
      const option = element("option", { value: String(i) },
        prompt.trim() ? detokenize(encode(prompt)) : "(none: the model writes the header too)");
      select.appendChild(option);
    });
    promptLabel.appendChild(select);
    function slider(text, attrs, format) {
      const label = element("label", {}, text + " ");
      const input = element("input", Object.assign({ type: "range" }, attrs));
      const shown = element("output", {}, format(attrs.value));
      input.addEventListener("input", function () { shown.textContent = format(input.value); });
      label.append(input, " ", shown);
      controls.appendChild(label);
      return input;
    }
    controls.appendChild(promptLabel);
    const temperature = slider("temperature", { min: "0.1", max: "1.5", step: "0.05",
      value: String(settings.temperature) }, function (v) { return parseFloat(v).toFixed(2); });
    const topK = slider("top-k", { min: "1", max: String(allK), step: "1",
      value: String(settings.top_k || allK) },
      function (v) { return parseInt(v, 10) === allK ? "all" : String(v); });
    const button = element("button", { type: "button" }, "write");
    controls.appendChild(button);
    const text = element("p", { class: "gdl-live-text", "aria-live": "polite" });
    const header = element("strong", {});
    const body = element("span", {});
    const cursor = element("span", { class: "gdl-live-cursor" }, "\u258d");
    text.append(header, body, cursor);
    const status = element("p", { class: "gdl-live-status" });
    panel.append(controls, text, status);
    root.querySelector(".gdl-live-static").replaceWith(panel);
    const mb = (meta.onnx_bytes / 1e6).toFixed(1);

    function show(ids, promptLength) {
      const head = detokenize(ids.slice(0, promptLength));
      const all = detokenize(ids);
      header.textContent = head;
      body.textContent = all.startsWith(head) ? all.slice(head.length) : " " + all;
    }
    function wait(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

    // A request made while writing (another prompt, the button) stops the running text after
    // its current word and starts again.
    const write = restartable(async function (current) {
      const prompt = prompts[parseInt(select.value, 10)];
      const t = parseFloat(temperature.value);
      const k = parseInt(topK.value, 10) === allK ? null : parseInt(topK.value, 10);
      const ids = encode(prompt);
      const promptLength = ids.length;
      cursor.hidden = false;
      show(ids, promptLength);
      status.textContent = `Writing, temperature ${t.toFixed(2)}` + (k ? `, top-${k}` : "") +
        "\u2026";
      let computing = 0, ended = false;
      while (ids.length < meta.max_len && current()) {
        const t0 = performance.now();
        const next = choose(await logits(ids), t, k, rand());
        const ms = performance.now() - t0;
        computing += ms;
        if (next === meta.end_id) { ended = true; break; }
        ids.push(next);
        show(ids, promptLength);
        await wait(Math.max(0, PACE_MS - ms));
      }
      if (current()) {
        cursor.hidden = true;
        if (!ended) body.textContent += "\u2026";     // cut off by the context, mid-sentence
        const tokens = Math.max(1, ids.length - promptLength + (ended ? 1 : 0));  // calls
        const end = ended ? "it ended the review"
          : `it filled its context of ${meta.max_len} tokens`;
        const how = `temperature ${t.toFixed(2)}` + (k ? `, top-${k}` : "");
        status.textContent = `${meta.what}: ${mb} MB; ${tokens} tokens in ` +
          `${computing.toFixed(0)} ms in this browser, ${(computing / tokens).toFixed(1)} ` +
          "ms a token (ONNX Runtime Web, one thread, the whole text read again for each " +
          `token); ${how}; ${end}. Trained for ${meta.steps.toLocaleString("en")} steps.`;
        root.dataset.state = "live";
      }
    });

    button.addEventListener("click", write);
    select.addEventListener("change", write);
    await logits([meta.start_id]);   // the runtime's first call is slow: not the reader's words
    registry.widgets[settings.model] = {
      meta: meta, write: write, text: text, encode: encode, detokenize: detokenize,
      choose: choose, greedy: greedy,
      logits: function (ids) { return logits(ids).then(function (v) { return Array.from(v); }); },
    };
    await write();
  }

  function startAll() {
    document.querySelectorAll("div.gdl-live").forEach(function (root) {
      root.dataset.state = "loading";
      start(root).catch(function (err) {
        root.dataset.state = "static";
        console.warn("gdl live view:", err);
      });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll);
  else startAll();
})();
