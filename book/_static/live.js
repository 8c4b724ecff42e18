/* Live generators: the book's own models, run in the reader's browser (no kernel).
 *
 * A cell made by gdl.viz.live_generator leaves <div class="gdl-live" data-settings=...> with a
 * picture drawn when the chapter ran. On a page served over HTTP this script fetches the
 * model's description (_static/live/NAME.json) and ONNX file, loads ONNX Runtime Web from
 * _static/ort/ (only on pages that have a live view), and replaces the picture with the
 * generator running live: new samples on a click, sliders that move every latent vector along a
 * fixed direction. Where any of that is missing the picture stays, with a line saying why.
 * window.gdlLive.widgets[NAME] exposes run(z, n) for the book's browser tests.
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

  async function start(root) {
    const settings = JSON.parse(root.dataset.settings);
    const note = root.querySelector(".gdl-live-note");
    if (location.protocol === "file:") {
      note.textContent += " (This copy is read from disk, where browsers do not run WebAssembly.)";
      root.dataset.state = "static";
      return;
    }
    let meta, session, ort;
    try {
      const response = await fetch(new URL(`live/${settings.model}.json`, base));
      if (!response.ok) throw new Error(`this build has no live/${settings.model}.json`);
      meta = await response.json();
      ort = await loadRuntime();
      session = await ort.InferenceSession.create(
        new URL(`live/${settings.model}.onnx`, base).href, { executionProviders: ["wasm"] });
    } catch (err) {
      note.textContent = `The live view is not available here (${err.message}); the picture ` +
        "above was made when the page was executed.";
      root.dataset.state = "static";
      return;
    }

    const [h, w, c] = meta.output_shape;
    const [lo, hi] = meta.value_range;
    const size = meta.input_size;
    const n = settings.n;
    const ncols = settings.ncols;
    const nrows = Math.ceil(n / ncols);
    const scale = settings.scale;

    const rand = uniform(settings.seed + 1);
    let z = normals(rand, n * size);
    // Fixed random unit directions in latent space, one per slider.
    const dirs = [];
    for (let k = 0; k < settings.directions; k++) {
      const d = normals(rand, size);
      const norm = Math.hypot.apply(null, d);
      dirs.push(d.map(function (v) { return v / norm; }));
    }
    const amounts = new Float32Array(settings.directions);

    const panel = element("div", { class: "gdl-live-panel" });
    const canvas = element("canvas", {
      width: (ncols * (w + 1) - 1) * scale, height: (nrows * (h + 1) - 1) * scale,
      class: "gdl-live-canvas", "aria-label": `samples from the ${meta.what}`,
    });
    const controls = element("div", { class: "gdl-live-controls" });
    const again = element("button", { type: "button" }, "new samples");
    controls.appendChild(again);
    const sliders = dirs.map(function (_, k) {
      const label = element("label", {}, `direction ${k + 1} `);
      const input = element("input", { type: "range", min: "-4", max: "4", step: "0.1", value: "0" });
      label.appendChild(input);
      controls.appendChild(label);
      return input;
    });
    const status = element("p", { class: "gdl-live-status" });
    panel.append(canvas, controls, status);
    root.querySelector(".gdl-live-static").replaceWith(panel);

    const scratch = element("canvas", { width: w, height: h });
    const context = canvas.getContext("2d");
    context.imageSmoothingEnabled = false;
    const mb = (meta.onnx_bytes / 1e6).toFixed(1);

    async function run(latents, count) {
      const input = new ort.Tensor("float32", latents, [count, size]);
      const out = await session.run({ [session.inputNames[0]]: input });
      return out[session.outputNames[0]].data;
    }

    function draw(pixels) {
      context.fillStyle = "#fff";
      context.fillRect(0, 0, canvas.width, canvas.height);
      const sc = scratch.getContext("2d");
      const image = sc.createImageData(w, h);
      for (let i = 0; i < n; i++) {
        for (let p = 0; p < h * w; p++) {
          for (let ch = 0; ch < 3; ch++) {
            const v = pixels[(i * h * w + p) * c + (c === 1 ? 0 : ch)];
            image.data[4 * p + ch] = Math.round(255 * Math.min(1, Math.max(0, (v - lo) / (hi - lo))));
          }
          image.data[4 * p + 3] = 255;
        }
        sc.putImageData(image, 0, 0);
        const col = i % ncols, row = Math.floor(i / ncols);
        context.drawImage(scratch, col * (w + 1) * scale, row * (h + 1) * scale, w * scale, h * scale);
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
        status.textContent = `${meta.what}: ${mb} MB, ${n} samples in ${ms.toFixed(0)} ms ` +
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
    sliders.forEach(function (input, k) {
      input.addEventListener("input", function () { amounts[k] = parseFloat(input.value); render(); });
    });
    registry.widgets[settings.model] = { meta: meta, run: run, render: render, canvas: canvas };
    await render();
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
