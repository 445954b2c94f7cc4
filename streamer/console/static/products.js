// Several products on one camera, and "not this" examples (docs/products.md): each product's count on the page,
// a picked object added as a new product or as a negative example of the chosen one, negatives cleared.
// Loaded after console.js, whose state, $, say, refresh, showLive and target it uses.
"use strict";

const productsPanel = { names: [], hasPick: false };

function chosenProduct() {
  // The first product is the camera's default one: requests leave it unnamed, as a single product's are.
  const select = $("product");
  return select.selectedIndex > 0 ? select.value : null;
}

function productRow(name, figures, info, colour) {
  const item = document.createElement("li");
  item.dataset.product = name;
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = colour || "";
  const count = document.createElement("b");
  count.className = "product-count";
  count.textContent = fmt(figures.count);
  item.append(swatch, `${name}: `, count);
  if (figures.truth_count !== undefined && figures.truth_count !== null) item.append(` (truth ${figures.truth_count})`);
  const negatives = (info && info.negatives) || [];
  if (negatives.length) {
    const note = document.createElement("span");
    note.className = "negatives";
    const dropped = figures.suppressed_by_negative || 0;
    note.textContent = ` · ${negatives.length} negative example${negatives.length > 1 ? "s" : ""} in force, ` +
      `${dropped} look-alike${dropped === 1 ? "" : "s"} not counted`;
    item.append(note);
  }
  return item;
}

// The shown camera's products: their counts (from the last result), negatives in force and the product chooser.
function showProducts(cam) {
  const infos = cam.products || [];
  const counts = cam.product_counts || {};
  const names = infos.length ? infos.map((p) => p.name) : ["product"];
  const rows = names.map((name, k) => {
    const info = infos[k] || {};
    // One product: its figures are the camera's own.
    const figures = names.length > 1 ? (counts[name] || {}) :
      { count: cam.count, truth_count: cam.truth_count, suppressed_by_negative: cam.suppressed_by_negative };
    return productRow(name, figures, info, names.length > 1 ? info.colour : cam.product_colour);
  });
  $("product-list").replaceChildren(...rows);
  const select = $("product");
  if (names.join("\n") !== productsPanel.names.join("\n")) {
    const keep = select.value;
    select.replaceChildren(...names.map((name, k) => new Option(k === 0 ? `${name} (default)` : name, name)));
    if (names.includes(keep)) select.value = keep;
    productsPanel.names = names;
  }
  const chosen = infos.find((p) => p.name === select.value) || infos[0] || {};
  $("clear-negatives").disabled = !(chosen.negatives || []).length;
  $("remove-product").disabled = select.selectedIndex <= 0;
  enableProductButtons();
}

function enableProductButtons() {
  $("add-product").disabled = !productsPanel.hasPick || !$("new-product-name").value.trim();
  $("add-negative").disabled = !productsPanel.hasPick;
}

async function changeProducts(path, payload, done) {
  for (const id of ["add-product", "add-negative", "clear-negatives", "remove-product"]) $(id).disabled = true;
  try {
    await postJson(path, { ...(cameraOnly() ? { camera: state.camera } : {}), ...payload });
    say(done, "ok");
    if (payload.pick_id) showLive();
  } catch (error) {
    say(error.message, "error");
  } finally {
    refresh();
  }
}

function addProduct() {
  if (!state.pick) return;
  const name = $("new-product-name").value.trim();
  return changeProducts("/api/products/add", { freeze_id: state.frozen.freeze_id, pick_id: state.pick.pick_id, name },
                        `Product ${name} added: it is counted beside the others.`);
}

function addNegative() {
  if (!state.pick) return;
  const product = chosenProduct();
  return changeProducts("/api/negatives/add",
                        { freeze_id: state.frozen.freeze_id, pick_id: state.pick.pick_id, product },
                        "Negative example added: objects that look more like it are no longer counted.");
}

window.persenseProducts = {
  show: showProducts,
  target: () => (chosenProduct() ? { product: chosenProduct() } : {}),
  picked: (yes) => { productsPanel.hasPick = yes; enableProductButtons(); },
};

window.addEventListener("DOMContentLoaded", () => {
  $("add-product").addEventListener("click", addProduct);
  $("add-negative").addEventListener("click", addNegative);
  $("new-product-name").addEventListener("input", enableProductButtons);
  $("clear-negatives").addEventListener("click", () => changeProducts(
    "/api/negatives/clear", { product: chosenProduct() }, "Negative examples cleared."));
  $("remove-product").addEventListener("click", () => changeProducts(
    "/api/products/remove", { name: $("product").value }, `Product ${$("product").value} is no longer counted.`));
  $("product").addEventListener("change", refresh);
});
