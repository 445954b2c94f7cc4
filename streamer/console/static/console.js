// PerSense operator console: live view, figures, and picking the product with one click.
// Plain JavaScript, no build step. Talks to the processor's JSON API under /api (streamer/console).
"use strict";
// api() and postJson() are in api.js, which the page loads first.

const $ = (id) => document.getElementById(id);
const state = { camera: null, frozen: null, pick: null, cross: null, supportThumb: null, paused: false,
                lastOk: null, lastAge: null };
const STATUS_EVERY_MS = 500; // states must show within 2 s (issue 25)
const STATUS_TIMEOUT_MS = 1500; // a processor that does not answer within this is unreachable


function say(text, kind = "") {
  const message = $("message");
  message.textContent = text;
  message.className = kind;
}

function cameraOnly() {
  return !$("camera-only-row").hidden && $("camera-only").checked;
}

// What a support change applies to: {camera: ID} for the shown camera alone, {} for every camera; and where the
// camera counts several products, {product: NAME} of the one chosen (products.js).
function target() {
  const product = window.persenseProducts ? window.persenseProducts.target() : {};
  return { ...(cameraOnly() ? { camera: state.camera } : {}), ...product };
}


// -- live view and figures ----------------------------------------------------------------------------
function showLive() {
  state.frozen = null;
  state.pick = null;
  $("frozen").hidden = true;
  $("cross").hidden = true;
  $("live").hidden = false;
  $("live").src = `/api/cameras/${encodeURIComponent(state.camera)}/live.mjpg?style=${$("marks").value}`;
  $("freeze").textContent = "Freeze frame to pick the product";
  $("apply").disabled = true;
  if (window.persenseProducts) window.persenseProducts.picked(false);
}

function fmt(value, unit = "") {
  return value === null || value === undefined ? "–" : `${value}${unit}`;
}

function showState(name, label, imageLabel) {
  const element = $("state");
  element.textContent = label;
  element.dataset.state = name;
  $("stage").dataset.state = name;
  const banner = $("banner");
  banner.textContent = imageLabel || "";
  banner.dataset.state = name;
  banner.hidden = !imageLabel;
}

// Figures that are not of a frame just seen are greyed, with their age.
function showAge(current, ageSeconds) {
  $("figures").classList.toggle("stale", !current);
  $("count-badge").classList.toggle("stale", !current);
  const age = $("age");
  age.hidden = current || ageSeconds === null || ageSeconds === undefined;
  if (!age.hidden) age.textContent = `Figures not current: from ${Math.round(ageSeconds)} s ago`;
}

function unreachable(error) {
  showState("unreachable", "processor unreachable", "NO SIGNAL");
  const since = state.lastOk === null ? null : (Date.now() - state.lastOk) / 1000 + (state.lastAge || 0);
  showAge(false, since);
  say(`The processor does not answer: ${error.message}`, "error");
}

// Where a counting line is set: items passed, out of spec, and the last out-of-spec items with their figures.
function showItems(cam) {
  const counting = cam.passed_total !== null && cam.passed_total !== undefined;
  for (const element of document.querySelectorAll(".items")) element.hidden = !counting;
  $("passed").textContent = fmt(cam.passed_total);
  $("out-of-spec").textContent = fmt(cam.out_of_spec_total);
  const recent = cam.out_of_spec_recent || [];
  $("out-of-spec-recent").hidden = !recent.length;
  $("out-of-spec-list").replaceChildren(...recent.slice().reverse().map((item) => {
    const entry = document.createElement("li");
    const measure = item.measure || {};
    const figures = ["diameter", "major_axis", "minor_axis"].filter((k) => measure[k] !== null && measure[k] !== undefined)
      .map((k) => `${k.replace("_", " ")} ${Number(measure[k]).toFixed(1)} ${item.units}`);
    const when = new Date(item.ts * 1000).toLocaleTimeString();
    entry.textContent = `${when}: item ${item.track_id}${figures.length ? ", " + figures.join(", ") : ""}`;
    return entry;
  }));
}

async function refresh() {
  let status;
  try {
    status = await api("/api/status", { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
  } catch (error) {
    unreachable(error);
    return;
  }
  if ($("state").dataset.state === "unreachable") say("");
  const select = $("camera");
  if (!select.options.length) {
    const cameras = Object.keys(status.cameras);
    for (const camera of cameras) select.add(new Option(camera, camera));
    state.camera = select.value;
    // With several cameras, a support can be changed for the shown camera alone: the default where the
    // cameras already run products of their own, so that a pick on one camera leaves the others' alone.
    const products = new Set(cameras.map((camera) => status.cameras[camera].support_id));
    $("camera-only-row").hidden = cameras.length < 2;
    $("camera-only").checked = products.size > 1;
    showLive();
  }
  $("engines").textContent = `engines: ${status.engines}`;
  const cam = status.cameras[state.camera] || {};
  $("count").textContent = fmt(cam.count);
  // The count on the picture is the panel's, from the same result (the picture carries no count of its own).
  $("count-badge").textContent = cam.count === null || cam.count === undefined ? "" : `count ${cam.count}`;
  $("count-badge").style.color = cam.product_colour || "";
  $("product-swatch").style.background = cam.product_colour || "";
  if (window.persenseChart) window.persenseChart.add(state.camera, cam, cam.product_colour);
  $("fps").textContent = fmt(cam.fps);
  $("latency").textContent = fmt(cam.latency_ms, " ms");
  $("frame-index").textContent = fmt(cam.frame_index);
  $("quality").textContent = fmt(cam.match_quality);
  showState(cam.view_state, cam.view_label, cam.image_label);
  state.lastOk = Date.now();
  state.lastAge = cam.result_age_s;
  showAge(cam.current, cam.result_age_s);
  $("reason").hidden = !cam.reason;
  $("reason").textContent = cam.reason ? `Why this count: ${cam.reason}` : "";
  const warnings = $("warnings");
  warnings.replaceChildren(...(cam.warnings || []).map((text) => {
    const item = document.createElement("li");
    item.textContent = `Support warning: ${text}`;
    return item;
  }));
  warnings.hidden = !(cam.warnings || []).length;
  showItems(cam);
  if (window.persenseProducts) window.persenseProducts.show(cam);
  state.paused = status.paused;
  $("pause").textContent = status.paused ? "Resume" : "Pause";
  const own = cameraOnly();
  $("undo").disabled = !(own ? cam.can_undo : status.can_undo);
  // The shown camera's support (every camera's, where they share one).
  const supportId = cam.support_id !== undefined ? cam.support_id : status.support_id;
  const thumb = `/api/support.jpg?camera=${encodeURIComponent(state.camera)}&id=${supportId}`;
  if (thumb !== state.supportThumb) {
    state.supportThumb = thumb;
    $("support-id").textContent = fmt(supportId);
    $("support-thumb").src = thumb;
  }
}

// -- picking --------------------------------------------------------------------------------------------
async function freeze() {
  if (state.frozen) {
    showLive();
    say("");
    return;
  }
  try {
    const frozen = await postJson(`/api/cameras/${encodeURIComponent(state.camera)}/freeze`);
    state.frozen = frozen;
    state.pick = null;
    const image = $("frozen");
    image.dataset.frameIndex = frozen.frame_index;
    image.src = frozen.image;
    image.hidden = false;
    $("live").hidden = true;
    $("live").removeAttribute("src"); // closes the live stream: nothing is rendered for a hidden view
    $("freeze").textContent = "Back to live";
    state.cross = { x: frozen.width / 2, y: frozen.height / 2 };
    image.focus();
    say(`Frame ${frozen.frame_index} frozen: click the product (or use the arrow keys and Enter).`);
  } catch (error) {
    say(error.message, "error");
  }
}

function toImage(event) {
  const image = $("frozen");
  const box = image.getBoundingClientRect();
  return { x: (event.clientX - box.left) * state.frozen.width / box.width,
           y: (event.clientY - box.top) * state.frozen.height / box.height };
}

async function pickAt(point) {
  if (!state.frozen) return;
  say(`Asking the decoder for the object at (${Math.round(point.x)}, ${Math.round(point.y)})…`);
  try {
    const pick = await postJson("/api/pick", { freeze_id: state.frozen.freeze_id, x: point.x, y: point.y });
    state.pick = pick;
    $("frozen").src = pick.preview;
    $("apply").disabled = false;
    if (window.persenseProducts) window.persenseProducts.picked(true);
    const note = pick.warning ? ` Note: ${pick.warning}.` : "";
    say(`Preview: ${pick.summary}. Apply makes it the support.${note}`, pick.warning ? "" : "ok");
  } catch (error) {
    state.pick = null;
    $("apply").disabled = true;
    if (window.persenseProducts) window.persenseProducts.picked(false);
    $("frozen").src = state.frozen.image;
    say(error.message, "error");
  }
}

function moveCross(dx, dy) {
  const f = state.frozen;
  state.cross.x = Math.min(Math.max(state.cross.x + dx, 0), f.width - 1);
  state.cross.y = Math.min(Math.max(state.cross.y + dy, 0), f.height - 1);
  const image = $("frozen");
  const cross = $("cross");
  cross.style.left = `${state.cross.x * image.clientWidth / f.width}px`;
  cross.style.top = `${state.cross.y * image.clientHeight / f.height}px`;
  cross.hidden = false;
}

function onFrozenKey(event) {
  if (!state.frozen) return;
  const step = event.shiftKey ? 20 : 4;
  const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  if (moves[event.key]) {
    moveCross(...moves[event.key]);
    event.preventDefault();
  } else if (event.key === "Enter" || event.key === " ") {
    pickAt(state.cross);
    event.preventDefault();
  }
}

async function changeSupport(request, done) {
  for (const id of ["apply", "undo", "upload-button"]) $(id).disabled = true;
  try {
    const reply = await request();
    say(`${done}: support ${reply.support_id} in force.`, "ok");
    return reply;
  } catch (error) {
    say(error.message, "error");
    return null;
  } finally {
    $("upload-button").disabled = false;
    $("apply").disabled = !state.pick;
    refresh();
  }
}

async function apply() {
  if (!state.pick) return;
  const reply = await changeSupport(
    () => postJson("/api/support/apply",
                   { freeze_id: state.frozen.freeze_id, pick_id: state.pick.pick_id, ...target() }),
    "Applied");
  if (reply) showLive();
}

function undo() {
  return changeSupport(() => postJson("/api/support/undo", target()), "Undone");
}

function upload(event) {
  event.preventDefault();
  const form = new FormData($("upload"));
  const { camera, product } = target();
  if (camera) form.append("camera", camera);
  if (product) form.append("product", product);
  return changeSupport(() => api("/api/support/upload", { method: "POST", body: form }), "Uploaded");
}

async function togglePause() {
  try {
    await postJson(state.paused ? "/api/resume" : "/api/pause");
    await refresh();
    say(state.paused ? "Paused: frames are not processed." : "Resumed.", "ok");
  } catch (error) {
    say(error.message, "error");
  }
}

function download() {
  const link = document.createElement("a");
  link.href = `/api/cameras/${encodeURIComponent(state.camera)}/download`;
  link.download = "";
  document.body.appendChild(link);
  link.click();
  link.remove();
}

window.addEventListener("DOMContentLoaded", () => {
  $("freeze").addEventListener("click", freeze);
  $("frozen").addEventListener("click", (event) => pickAt(toImage(event)));
  $("frozen").addEventListener("keydown", onFrozenKey);
  $("apply").addEventListener("click", apply);
  $("mark").addEventListener("click", () => postJson("/api/archive/mark", { camera: state.camera })
    .then(() => say("Marked: the archive keeps this moment."))
    .catch((error) => say(`Not marked: ${error.message}`, "error")));
  $("undo").addEventListener("click", undo);
  $("upload").addEventListener("submit", upload);
  $("pause").addEventListener("click", togglePause);
  $("download").addEventListener("click", download);
  $("camera").addEventListener("change", (event) => {
    state.camera = event.target.value;
    showLive();
    refresh();
  });
  $("camera-only").addEventListener("change", refresh);
  $("marks").addEventListener("change", () => { if (!state.frozen) showLive(); });
  refresh();
  setInterval(refresh, STATUS_EVERY_MS);
});
