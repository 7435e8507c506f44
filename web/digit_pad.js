// The drawing pad: a canvas that answers in the page while the pen moves. The app serves this file
// joined after web/sketch_prep.js as one ES module; each pad's js_on_load (a gr.HTML's) imports it
// and calls mount(...) with what Gradio gives js_on_load: the pad's element, trigger (an event to
// Python), props (below) and watch (a callback when Python changes a prop).
// props (keyword arguments of the gr.HTML, some updated by Python later):
//   pad         the pad's name (window.tvPads[name] is its API for tests and benches)
//   mode        "answer": answer every drawing; "collect": only draw (props.value is the drawing)
//   canvas      the canvas's side in image pixels; brush: the default brush width
//   preparation the sketch preparation's constants (core.preparation.SKETCH)
//   runtime     where onnxruntime-web loads from: {local: {module, wasm}, cdn: {module, wasm,
//               integrity}, startup_ms}; null: no in-page runtime
//   model       the model to answer with: {key, name, onnx, meta}; null: none yet
//   answer      the server's answer to the last drawing sent (the fallback path)
//   prompt      what the answer area says while nothing is drawn; untrained: ... with no model
// In-page answers: at most one runs at a time, and while it runs only the newest drawing waits (no
// queue of stale frames). Without the runtime (it did not load, or not within startup_ms) the
// drawing goes to the server at the end of each stroke, newest only, and a quiet line says so.

export function mount({ element, trigger, props, watch }) {
  const pad = element.querySelector(".tv-pad");
  const canvas = element.querySelector(".tv-canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const answerBox = element.querySelector(".tv-answer");
  const list = element.querySelector(".tv-top");
  const seen = element.querySelector(".tv-seen");
  const seenCtx = seen.getContext("2d");
  const status = element.querySelector(".tv-status");
  const quiet = element.querySelector(".tv-runtime");
  const brushInput = element.querySelector(".tv-brush");
  const answering = props.mode === "answer";
  const K = props.preparation;
  const root = ((window.gradio_config && window.gradio_config.root) || location.origin) + "/";
  const absolute = (url) => new URL(url, root).href;

  canvas.width = canvas.height = props.canvas;
  brushInput.value = props.brush;
  if (!answering) answerBox.hidden = true;

  // ---- drawing: strokes are kept as points, so Undo can draw the others again, the same way
  let strokes = [];
  let current = null;
  function paper() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  }
  function segment(a, b, width) {
    ctx.strokeStyle = ctx.fillStyle = "#000";
    ctx.lineWidth = width;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    if (a[0] === b[0] && a[1] === b[1]) {
      ctx.arc(a[0], a[1], width / 2, 0, 2 * Math.PI);
      ctx.fill();
    } else {
      ctx.moveTo(a[0], a[1]);
      ctx.lineTo(b[0], b[1]);
      ctx.stroke();
    }
  }
  function drawStroke(s) {
    s.points.forEach((p, i) => segment(i ? s.points[i - 1] : p, p, s.width));
  }
  function redraw() {
    paper();
    strokes.forEach(drawStroke);
  }
  function at(e) {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * (canvas.width / r.width), (e.clientY - r.top) * (canvas.height / r.height)];
  }
  paper();

  canvas.addEventListener("pointerdown", (e) => {
    if (!e.isPrimary || current) return;  // one pen at a time; a second finger does not draw
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    current = { width: Number(brushInput.value), points: [at(e)], pointer: e.pointerId };
    strokes.push(current);
    segment(current.points[0], current.points[0], current.width);
    changed(e.timeStamp, false);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!current || e.pointerId !== current.pointer) return;
    const moves = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    for (const m of moves.length ? moves : [e]) {
      const p = at(m), last = current.points[current.points.length - 1];
      current.points.push(p);
      segment(last, p, current.width);
    }
    changed(e.timeStamp, false);
  });
  function endStroke(e) {
    if (!current || e.pointerId !== current.pointer) return;
    current = null;
    changed(e.timeStamp, true);
  }
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);
  element.querySelector(".tv-undo").addEventListener("click", (e) => {
    if (current || !strokes.length) return;
    strokes.pop();
    redraw();
    changed(e.timeStamp, true);
  });
  element.querySelector(".tv-clear").addEventListener("click", (e) => clear(e.timeStamp));
  function clear(when = performance.now()) {
    strokes = [];
    current = null;
    paper();
    changed(when, true);
  }

  // ---- the in-page runtime: onnxruntime-web's wasm build, one thread (the page is not
  // cross-origin isolated), from the app's own origin, else the pinned CDN copy checked against its
  // hashes. Nothing loads for a pad that only collects drawings.
  let ort = null;
  let path = "server";  // who answers now: "page" once the runtime and the model are ready
  async function fetchChecked(url, integrity) {
    const r = await fetch(url, integrity ? { integrity, mode: "cors" } : {});
    if (!r.ok) throw new Error(`${r.status} ${url}`);
    return r;
  }
  async function loadRuntime(source) {
    const module = absolute(source.module), wasm = absolute(source.wasm);
    if (!source.integrity) {
      const lib = await import(module);
      lib.env.wasm.wasmPaths = { wasm };  // ort streams and compiles it
      return lib;
    }
    // A CDN copy: the module and the wasm are fetched here and checked (a dynamic import and ort's
    // own fetch take no integrity), then handed to ort.
    const [code, binary] = await Promise.all([
      fetchChecked(module, source.integrity.module).then((r) => r.blob()),
      fetchChecked(wasm, source.integrity.wasm).then((r) => r.arrayBuffer()),
    ]);
    const lib = await import(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
    lib.env.wasm.wasmBinary = binary;
    return lib;
  }
  const runtimeReady = (async () => {
    const rt = props.runtime;
    if (!answering || !rt) throw new Error("no in-page runtime on this server");
    if (typeof WebAssembly !== "object") throw new Error("this browser runs no WebAssembly");
    let lastError = null;
    for (const source of [rt.local, rt.cdn].filter(Boolean)) {
      try {
        const lib = await loadRuntime(source);
        lib.env.wasm.numThreads = 1;
        lib.env.wasm.proxy = false;
        return lib;
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError || new Error("no runtime to load");
  })();
  runtimeReady.catch(() => {});  // a pad without the runtime answers through the server

  const sessions = new Map();  // model URL -> promise of {session, meta}
  function session(model) {
    if (!sessions.has(model.onnx)) {
      sessions.set(model.onnx, (async () => {
        const [lib, bytes, meta] = await Promise.all([
          runtimeReady,
          fetchChecked(absolute(model.onnx)).then((r) => r.arrayBuffer()),
          fetchChecked(absolute(model.meta)).then((r) => r.json()),
        ]);
        ort = lib;
        const s = await lib.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
        await infer({ session: s, meta }, new Float32Array(784));  // warm up before the first stroke
        return { session: s, meta };
      })());
    }
    return sessions.get(model.onnx);
  }
  async function infer(loaded, image) {
    const input = new ort.Tensor("float32", image, [1, 1, 28, 28]);
    const out = await loaded.session.run({ image: input });
    return { probabilities: Array.from(out.probabilities.data), score: out.score.data[0] };
  }

  let model = props.model;
  let loaded = null;  // the ready session of `model`
  function setQuiet(text) {
    quiet.textContent = text;
  }
  function useModel(next) {
    model = next;
    loaded = null;
    path = "server";
    if (!answering) return;
    if (!model) {
      setQuiet("");
      show(null);
      return;
    }
    const chosen = model;
    const started = performance.now();
    setQuiet("The model is loading into this page…");
    const waited = setTimeout(() => {
      if (model === chosen && !loaded) {
        setQuiet("Answered by the server while the in-page model starts.");
      }
    }, (props.runtime && props.runtime.startup_ms) || 5000);
    session(chosen).then((ready) => {
      clearTimeout(waited);
      if (model !== chosen) return;
      loaded = ready;
      path = "page";
      timings.ready = performance.now() - started;
      timings.readyAt = timings.readyAt || performance.now();  // since the page's load began
      setQuiet("Answered in this page: your drawing stays on your device.");
      changed(performance.now(), false);
    }, (err) => {
      clearTimeout(waited);
      if (model !== chosen) return;
      console.warn("the in-page model could not start:", err);
      setQuiet("Answered by the server: the in-page model could not start here.");
    });
    changed(performance.now(), true);
  }
  watch("model", () => useModel(props.model));

  // ---- answering
  const timings = { ready: null, readyAt: null };
  const latencies = [];  // per in-page answer: [pointer event -> answer on screen, prep, inference] ms
  let busy = false, pending = null;  // pending: the newest drawing not answered yet
  let serverAsked = null, serverNext = null, serverTimer = null, asked = 0;
  function changed(eventTime, strokeEnded) {
    if (!answering) {
      if (strokeEnded) props.value = strokes.length ? canvas.toDataURL("image/png") : null;
      return;
    }
    if (path === "page") {
      pending = eventTime;
      if (!busy) answerInPage();
    } else if (strokeEnded) {
      askServer();
    }
  }
  async function answerInPage() {
    busy = true;
    try {
      while (pending !== null && path === "page") {
        const eventTime = pending;
        pending = null;
        const t0 = performance.now();
        const px = ctx.getImageData(0, 0, canvas.width, canvas.height);
        const image = TVSketch.sketchToDigit(px.data, px.width, px.height, K);
        const t1 = performance.now();
        const result = image ? await infer(loaded, image) : null;
        const t2 = performance.now();
        show(image && { image, ...result, meta: loaded.meta, ms: t2 - t0, where: "in this page" });
        if (image && latencies.length < 5000) latencies.push([performance.now() - eventTime, t1 - t0, t2 - t1]);
        await new Promise((r) => setTimeout(r, 0));  // let the next pointer events in
      }
    } catch (err) {
      console.warn("in-page answer failed:", err);
      path = "server";
      setQuiet("Answered by the server: the in-page model failed here.");
      askServer();
    } finally {
      busy = false;
    }
  }
  function askServer() {
    const px = ctx.getImageData(0, 0, canvas.width, canvas.height);
    if (!model || !TVSketch.sketchToDigit(px.data, px.width, px.height, K)) {
      serverNext = null;
      show(null);  // nothing drawn (or no model yet): nothing to ask
      return;
    }
    serverNext = canvas.toDataURL("image/png");
    if (serverAsked === null) sendNext();
  }
  function sendNext() {
    if (serverNext === null) return;
    asked += 1;
    serverAsked = asked;
    trigger("drawn", { id: asked, png: serverNext });
    serverNext = null;
    clearTimeout(serverTimer);
    // An answer that never comes (a refusal shows as a message instead) must not block the next.
    serverTimer = setTimeout(() => { serverAsked = null; sendNext(); }, 15000);
  }
  watch("answer", () => {
    const a = props.answer;
    if (!a || a.id !== serverAsked) return;
    clearTimeout(serverTimer);
    serverAsked = null;
    if (serverNext === null && path !== "page") {
      const image = a.digit ? Float32Array.from(a.digit) : null;
      show(a.label === null ? null : { image, answer: a, where: "by the server" });
      if (a.error) status.textContent = a.error;
    }
    setTimeout(sendNext, 0);  // once Gradio has finished with this event
  });

  function top(probabilities, k) {
    return probabilities.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]).slice(0, k);
  }
  function show(result) {
    const img = seenCtx.createImageData(28, 28);
    for (let i = 0; i < 784; i++) {
      const v = result && result.image ? Math.round(result.image[i] * 255) : 0;
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
      img.data[4 * i + 3] = 255;
    }
    seenCtx.putImageData(img, 0, 0);
    list.replaceChildren();
    pad.dataset.label = "";
    if (!result) {
      status.textContent = model ? props.prompt : props.untrained || props.prompt;
      pad.dataset.answered = "";
      return;
    }
    let rows, unsure, message, name;
    if (result.answer) {  // the server's
      const a = result.answer;
      rows = a.top;
      unsure = a.unsure;
      message = a.message;
      name = a.model;
    } else {
      const meta = result.meta;
      rows = top(result.probabilities, meta.top_k).map(([p, i]) => [meta.classes[i], p]);
      unsure = meta.unsure_threshold !== null && result.score < meta.unsure_threshold;
      message = meta.unsure_message;
      name = meta.name;
    }
    for (const [label, p] of rows) {
      const li = document.createElement("li");
      li.innerHTML = '<span class="tv-class"></span><span class="tv-bar"><span></span></span>'
        + '<span class="tv-p"></span>';
      li.querySelector(".tv-class").textContent = label;
      li.querySelector(".tv-bar span").style.width = `${(100 * p).toFixed(1)}%`;
      li.querySelector(".tv-p").textContent = `${Math.round(100 * p)}%`;
      list.appendChild(li);
    }
    const [best, p] = rows[0];
    const ms = result.answer ? result.answer.ms : result.ms;
    const line = `${best} (${Math.round(100 * p)}%) · ${name} · answered ${result.where} in ${Math.round(ms)} ms`;
    status.textContent = unsure ? `🤔 ${message} The closest is above. ${line}` : line;
    pad.dataset.label = best;
    pad.dataset.unsure = unsure ? "1" : "";
    pad.dataset.answered = result.where;
  }

  useModel(model);

  // ---- what the tests and benches read and drive (tests/test_browser_app.py, bench/browser_pen.py)
  window.tvPads = window.tvPads || {};
  window.tvPads[props.pad] = {
    get path() { return path; },
    get label() { return pad.dataset.label; },
    get strokes() { return strokes.length; },
    timings,
    latencies: () => latencies,
    ready: () => (model ? session(model).then(() => true, () => false) : Promise.resolve(false)),
    // true once every drawing so far is answered (in the page or by the server)
    idle: () => !busy && pending === null && serverAsked === null && serverNext === null,
    clear: () => clear(),
    // The page's 28x28 and in-page answer of each drawing, one after another (parity checks):
    // drawings as strokes in canvas pixels, [[[x, y], ...], ...], drawn with the pen's own code
    // (and not answered as drawn: each is prepared and answered here once)
    async prepareMany(drawings, width = props.brush) {
      const ready = await session(model);
      const out = [];
      for (const s of drawings) {
        strokes = s.map((points) => ({ width, points: points.map((p) => [p[0], p[1]]), pointer: -1 }));
        paper();
        strokes.forEach(drawStroke);
        const px = ctx.getImageData(0, 0, canvas.width, canvas.height);
        const image = TVSketch.sketchToDigit(px.data, px.width, px.height, K);
        const r = image ? await infer(ready, image) : null;
        out.push({ png: canvas.toDataURL("image/png"), digit: image ? Array.from(image) : null,
                   top: r ? top(r.probabilities, 1)[0][1] : null });
      }
      clear();
      return out;
    },
  };
}
