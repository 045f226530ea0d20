/* The Services Directory map viewer: plain JS, no external assets.
 * Draws the service through export (f=json, then loads the href), pans by dragging, zooms by
 * wheel and buttons, identifies on click, toggles layers (layers=show:...), steps through time
 * for time-aware services and shows the legend. State is kept in map units of the service's
 * spatial reference: a centre and a resolution (units per pixel). */
(function () {
  "use strict";
  const root = document.getElementById("viewer");
  const url = root.dataset.serviceUrl;
  const mapDiv = document.getElementById("map");
  const img = document.getElementById("map-image");
  const status = document.getElementById("status");
  const state = { info: null, cx: 0, cy: 0, res: 1, visible: new Set(), time: null,
                  steps: [], requests: 0, loaded: 0, lastExport: null, busy: false, pending: false };
  window.mapViewer = state;  // inspected by the browser tests

  function q(params) {
    return Object.keys(params).map(k => encodeURIComponent(k) + "=" + encodeURIComponent(params[k])).join("&");
  }
  function getJSON(path, params) {
    return fetch(url + path + "?" + q(Object.assign({ f: "json" }, params)))
      .then(r => r.json())
      .then(j => { if (j && j.error) { throw new Error(j.error.message); } return j; });
  }
  function size() { return [mapDiv.clientWidth, mapDiv.clientHeight]; }
  function extent() {
    const [w, h] = size();
    return [state.cx - w / 2 * state.res, state.cy - h / 2 * state.res,
            state.cx + w / 2 * state.res, state.cy + h / 2 * state.res];
  }
  function srParam() { return JSON.stringify(state.info.spatialReference); }
  function layersParam() {
    return "show:" + Array.from(state.visible).sort((a, b) => a - b).join(",");
  }

  function draw() {
    if (state.busy) { state.pending = true; return; }
    const [w, h] = size();
    if (state.visible.size === 0) { img.removeAttribute("src"); img.style.transform = ""; return; }
    const params = { bbox: extent().join(","), bboxSR: srParam(), imageSR: srParam(),
                     size: w + "," + h, dpi: 96, format: "png32", transparent: true,
                     layers: layersParam() };
    if (state.time) { params.time = state.time.join(","); }
    state.busy = true;
    state.requests += 1;
    state.lastParams = params;
    getJSON("/export", params).then(j => {
      state.lastExport = j;
      return new Promise((resolve, reject) => {
        const next = new Image();
        next.onload = () => resolve(j);
        next.onerror = reject;
        next.src = j.href;
      });
    }).then(j => {
      img.src = j.href;
      img.style.transform = "";
      state.loaded += 1;
      status.textContent = "1:" + Math.round(j.scale).toLocaleString("en");
    }).catch(e => { status.textContent = "Error: " + e.message; })
      .finally(() => {
        state.busy = false;
        if (state.pending) { state.pending = false; draw(); }
      });
  }

  // --- pan and zoom ---------------------------------------------------------------------------
  let drag = null;
  mapDiv.addEventListener("pointerdown", e => {
    if (e.target.tagName === "BUTTON") { return; }
    drag = { x: e.clientX, y: e.clientY, dx: 0, dy: 0 };
    mapDiv.setPointerCapture(e.pointerId);
    mapDiv.classList.add("dragging");
  });
  mapDiv.addEventListener("pointermove", e => {
    if (!drag) { return; }
    drag.dx = e.clientX - drag.x;
    drag.dy = e.clientY - drag.y;
    img.style.transform = "translate(" + drag.dx + "px," + drag.dy + "px)";
  });
  mapDiv.addEventListener("pointerup", e => {
    if (!drag) { return; }
    const d = drag;
    drag = null;
    mapDiv.classList.remove("dragging");
    if (Math.abs(d.dx) + Math.abs(d.dy) < 3) {
      const r = mapDiv.getBoundingClientRect();
      identify(e.clientX - r.left, e.clientY - r.top);
      return;
    }
    state.cx -= d.dx * state.res;
    state.cy += d.dy * state.res;
    draw();
  });
  function zoom(factor, px, py) {
    const [w, h] = size();
    px = px === undefined ? w / 2 : px;
    py = py === undefined ? h / 2 : py;
    // keep the map point under (px, py) fixed
    const mx = state.cx + (px - w / 2) * state.res;
    const my = state.cy - (py - h / 2) * state.res;
    state.res /= factor;
    state.cx = mx - (px - w / 2) * state.res;
    state.cy = my + (py - h / 2) * state.res;
    img.style.transform = "translate(" + px * (1 - factor) + "px," + py * (1 - factor) + "px) scale(" + factor + ")";
    draw();
  }
  mapDiv.addEventListener("wheel", e => {
    e.preventDefault();
    const r = mapDiv.getBoundingClientRect();
    zoom(e.deltaY < 0 ? 2 : 0.5, e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  document.getElementById("zoom-in").addEventListener("click", () => zoom(2));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(0.5));

  // --- identify -------------------------------------------------------------------------------
  function identify(px, py) {
    const [w, h] = size();
    const x = state.cx + (px - w / 2) * state.res;
    const y = state.cy - (py - h / 2) * state.res;
    const out = document.getElementById("identify");
    out.textContent = "…";
    const params = { geometry: x + "," + y, geometryType: "esriGeometryPoint", sr: srParam(),
                     layers: "visible:" + Array.from(state.visible).join(","), tolerance: 3,
                     mapExtent: extent().join(","), imageDisplay: w + "," + h + ",96",
                     returnGeometry: false };
    if (state.time) { params.time = state.time.join(","); }
    getJSON("/identify", params).then(j => {
      out.innerHTML = "";
      const results = j.results || [];
      if (!results.length) { out.textContent = "Nothing found here."; }
      results.forEach(res => {
        const h4 = document.createElement("h4");
        h4.textContent = res.layerName + ": " + res.value;
        const table = document.createElement("table");
        Object.keys(res.attributes || {}).forEach(k => {
          const tr = table.insertRow();
          tr.insertCell().textContent = k;
          tr.insertCell().textContent = res.attributes[k];
        });
        out.appendChild(h4);
        out.appendChild(table);
      });
      out.dataset.count = results.length;
    }).catch(e => { out.textContent = "Identify failed: " + e.message; });
  }

  // --- layer list, legend, time ---------------------------------------------------------------
  function layerList(layers) {
    const byParent = {};
    layers.forEach(l => { (byParent[l.parentLayerId] = byParent[l.parentLayerId] || []).push(l); });
    function build(parent, ul) {
      (byParent[parent] || []).forEach(l => {
        const li = document.createElement("li");
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox";
        box.checked = l.defaultVisibility;
        box.dataset.layerId = l.id;
        box.addEventListener("change", () => {
          const ids = [l.id].concat(descendants(l.id));
          ids.forEach(id => { if (box.checked) { state.visible.add(id); } else { state.visible.delete(id); } });
          draw();
        });
        label.appendChild(box);
        label.appendChild(document.createTextNode(" " + l.name));
        li.appendChild(label);
        if (l.subLayerIds) { const sub = document.createElement("ul"); build(l.id, sub); li.appendChild(sub); }
        ul.appendChild(li);
      });
    }
    function descendants(id) {
      return (byParent[id] || []).reduce((acc, c) => acc.concat([c.id], descendants(c.id)), []);
    }
    build(-1, document.getElementById("layer-list"));
  }
  function legend() {
    getJSON("/legend", {}).then(j => {
      const div = document.getElementById("legend");
      j.layers.forEach(l => {
        const h = document.createElement("div");
        h.textContent = l.layerName;
        h.style.fontWeight = "bold";
        const table = document.createElement("table");
        l.legend.forEach(e => {
          const tr = table.insertRow();
          const im = document.createElement("img");
          im.src = "data:" + e.contentType + ";base64," + e.imageData;
          im.width = e.width; im.height = e.height; im.alt = e.label;
          tr.insertCell().appendChild(im);
          tr.insertCell().textContent = e.label;
        });
        div.appendChild(h);
        div.appendChild(table);
      });
    }).catch(() => {});
  }
  function timeSteps(ti) {
    const [t0, t1] = ti.timeExtent;
    const n = ti.defaultTimeInterval || 1;
    const units = ti.defaultTimeIntervalUnits || "esriTimeUnitsYears";
    const steps = [];
    let t = t0;
    const next = x => {
      const d = new Date(x);
      if (units === "esriTimeUnitsYears") { return Date.UTC(d.getUTCFullYear() + n, d.getUTCMonth(), d.getUTCDate()); }
      if (units === "esriTimeUnitsDecades") { return Date.UTC(d.getUTCFullYear() + 10 * n, d.getUTCMonth(), d.getUTCDate()); }
      if (units === "esriTimeUnitsMonths") { return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + n, d.getUTCDate()); }
      const ms = { esriTimeUnitsDays: 864e5, esriTimeUnitsWeeks: 6048e5, esriTimeUnitsHours: 36e5,
                   esriTimeUnitsMinutes: 6e4, esriTimeUnitsSeconds: 1e3 }[units] || 1;
      return x + n * ms;
    };
    while (t <= t1 && steps.length < 1000) { const u = next(t); steps.push([t, u - 1]); t = u; }
    return steps;
  }
  function timePanel(ti) {
    state.steps = timeSteps(ti);
    if (!state.steps.length) { return; }
    document.getElementById("time-panel").hidden = false;
    const slider = document.getElementById("time-slider");
    const label = document.getElementById("time-label");
    slider.max = state.steps.length - 1;
    const set = () => {
      state.time = state.steps[Number(slider.value)];
      label.textContent = new Date(state.time[0]).toISOString().slice(0, 10);
    };
    set();
    slider.addEventListener("input", () => { set(); draw(); });
  }

  getJSON("", {}).then(info => {
    state.info = info;
    document.title = "Map viewer: " + (info.mapName || "");
    const e = info.initialExtent;
    const [w, h] = size();
    state.cx = (e.xmin + e.xmax) / 2;
    state.cy = (e.ymin + e.ymax) / 2;
    state.res = Math.max((e.xmax - e.xmin) / w, (e.ymax - e.ymin) / h);
    // the same default visibility rule as export: a layer and all its ancestors are on
    const byId = {};
    info.layers.forEach(l => { byId[l.id] = l; });
    info.layers.forEach(l => {
      let cur = l, on = true;
      while (cur) { on = on && cur.defaultVisibility; cur = byId[cur.parentLayerId]; }
      if (on) { state.visible.add(l.id); }
    });
    layerList(info.layers);
    if (info.timeInfo && info.timeInfo.timeExtent) { timePanel(info.timeInfo); }
    legend();
    draw();
  }).catch(e => { status.textContent = "Error: " + e.message; });
})();
