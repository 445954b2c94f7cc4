// PerSense review page: the archive's frames, filtered; one frame with its masks and result; picking the product
// from it through the console's pick path (the archived frame becomes a frozen frame, then /api/pick and
// /api/support/apply as on the live page).
"use strict";
// api() and postJson() are in api.js, which the page loads first.

const $ = (id) => document.getElementById(id);
const state = { frameId: null, frozen: null, pick: null };



function say(text, kind = "") {
  $("message").textContent = text;
  $("message").className = kind;
}

function seconds(input) {
  // A datetime-local value is read as UTC, as the list shows times.
  return input.value ? String(Date.parse(input.value + "Z") / 1000) : "";
}

function utc(ts) {
  return new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19);
}

async function load(event) {
  if (event) event.preventDefault();
  const kinds = [["f-rejects", "rejects"], ["f-low", "low_quality"], ["f-marked", "marked"]]
    .filter(([id]) => $(id).checked).map(([, kind]) => kind);
  const query = new URLSearchParams({ kinds: kinds.join(","), quality_below: $("quality-below").value,
                                      since: seconds($("since")), until: seconds($("until")),
                                      camera: $("camera").value.trim() });
  try {
    const body = await api(`/api/archive/frames?${query}`);
    const rows = $("frames").querySelector("tbody");
    rows.replaceChildren();
    for (const frame of body.frames) {
      const row = document.createElement("tr");
      row.className = "frame-row";
      row.dataset.id = frame.id;
      row.tabIndex = 0;
      const cells = [frame.id, frame.camera, utc(frame.capture_ts), frame.count ?? "–", frame.truth_count ?? "–",
                     frame.match_quality === null ? "–" : frame.match_quality.toFixed(2), frame.reasons.join(", ")];
      for (const value of cells) {
        const cell = document.createElement("td");
        cell.textContent = String(value);
        row.append(cell);
      }
      row.addEventListener("click", () => open(frame.id));
      row.addEventListener("keydown", (e) => { if (e.key === "Enter") open(frame.id); });
      rows.append(row);
    }
    $("summary").textContent = `${body.frames.length} frame(s)` + (body.frames.length >= 500 ? " (the first 500)" : "");
  } catch (error) {
    say(`Cannot list the archive: ${error.message}`, "error");
  }
}

async function open(frameId) {
  state.frameId = frameId;
  state.frozen = null;
  state.pick = null;
  $("apply").disabled = true;
  $("frame-id").textContent = String(frameId);
  $("frame-image").src = `/api/archive/frames/${frameId}.jpg`;
  try {
    const body = await api(`/api/archive/frames/${frameId}`);
    const r = body.result;
    $("frame-result").textContent = JSON.stringify({ count: r.count, match_quality: r.match_quality,
      truth_count: r.truth_count, support_id: r.support_id, reasons: body.frame.reasons,
      instances: (r.instances || []).length }, null, 1);
    $("pick-from-frame").disabled = false;
    say("");
  } catch (error) {
    say(`Cannot open frame ${frameId}: ${error.message}`, "error");
  }
}

async function pickFromFrame() {
  try {
    state.frozen = await postJson(`/api/archive/frames/${state.frameId}/freeze`);
    $("frame-image").src = state.frozen.image;
    $("frame-image").dataset.mode = "pick";
    say("Click the product on the frame.");
  } catch (error) {
    say(`Cannot pick from this frame: ${error.message}`, "error");
  }
}

async function pickAt(event) {
  if (!state.frozen) return;
  const image = $("frame-image");
  const box = image.getBoundingClientRect();
  const x = (event.clientX - box.left) * state.frozen.width / box.width;
  const y = (event.clientY - box.top) * state.frozen.height / box.height;
  try {
    const pick = await postJson("/api/pick", { freeze_id: state.frozen.freeze_id, x, y });
    state.pick = pick;
    image.src = pick.preview;
    $("apply").disabled = false;
    say(`Picked ${pick.summary}${pick.warning ? ` (${pick.warning})` : ""}. Apply it?`);
  } catch (error) {
    say(`Nothing picked: ${error.message}`, "error");
  }
}

async function apply() {
  try {
    const body = await postJson("/api/support/apply", { freeze_id: state.frozen.freeze_id,
                                                         pick_id: state.pick.pick_id });
    $("apply").disabled = true;
    say(`Applied: support ${body.support_id} is in force.`);
  } catch (error) {
    say(`Not applied: ${error.message}`, "error");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("filters").addEventListener("submit", load);
  $("pick-from-frame").addEventListener("click", pickFromFrame);
  $("frame-image").addEventListener("click", pickAt);
  $("apply").addEventListener("click", apply);
  load();
});
