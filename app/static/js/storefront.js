// The shopper's page: the catalog grid, search by photo (picker, camera, drag and drop, paste,
// crop box), search by words, "more like this", and the category / price filters for all of them.

import { byId, callApi, explain, say, withQuery } from "./api.js";
import { productCard } from "./cards.js";
import { Cropper } from "./cropper.js";

const PAGE_SIZE = 24;
const RESULTS = 24;

const state = {
  view: { kind: "catalog", page: 0 },
  photo: null, // the File being searched with
  previewUrl: null,
  request: 0, // answers to older requests than this are dropped
  searchedCrop: null, // the crop field of the last photo search
};
let cropper = null;

/** The filter inputs as API parameters (empty ones left out by withQuery / the form). */
function currentFilters() {
  return {
    category: byId("category").value,
    min_price: byId("min-price").value,
    max_price: byId("max-price").value,
  };
}

function setBusy(busy, message) {
  byId("grid").setAttribute("aria-busy", String(busy));
  document.body.classList.toggle("loading", busy);
  byId("search-button").disabled = busy;
  if (busy) say("status", message);
}

function describe(view) {
  switch (view.kind) {
    case "catalog": return "Catalog";
    case "photo": return "Products like your photo";
    case "similar": return `More like “${view.title}”`;
    case "text": return `Results for “${view.q}”`;
    default: return "";
  }
}

/** Fetch what the view shows: {items, more, showScore, ranking}. */
async function load(view) {
  const filters = currentFilters();
  if (view.kind === "catalog") {
    const url = withQuery("/products", { ...filters, offset: view.page * PAGE_SIZE, limit: PAGE_SIZE + 1 });
    const items = await callApi(url);
    return { items: items.slice(0, PAGE_SIZE), more: items.length > PAGE_SIZE, showScore: false };
  }
  let answer;
  if (view.kind === "photo") {
    const form = new FormData();
    form.append("image", state.photo);
    form.append("k", String(RESULTS));
    for (const [key, value] of Object.entries(filters)) if (value) form.append(key, value);
    if (cropper && !cropper.isWhole()) form.append("crop", cropper.toField());
    answer = await callApi("/search", { method: "POST", body: form });
  } else if (view.kind === "similar") {
    answer = await callApi(withQuery(`/products/${view.id}/similar`, { ...filters, k: RESULTS }));
  } else {
    answer = await callApi(withQuery("/search", { ...filters, q: view.q, k: RESULTS }));
  }
  return { items: answer.results, more: false, showScore: answer.ranking === "image", tookMs: answer.took_ms };
}

function render(view, { items, more, showScore, tookMs }) {
  const grid = byId("grid");
  grid.replaceChildren(...items.map((item) => productCard(item, showSimilar, showScore)));
  byId("results-title").textContent = describe(view);
  byId("back-to-catalog").hidden = view.kind === "catalog";
  const noMatch = view.kind === "photo" && items.length > 0 && items[0].match === "none";
  byId("no-match").hidden = !noMatch;

  const pager = byId("pager");
  pager.hidden = view.kind !== "catalog" || (view.page === 0 && !more);
  byId("page-prev").disabled = view.page === 0;
  byId("page-next").disabled = !more;
  byId("page-label").textContent = `Page ${view.page + 1}`;

  if (items.length === 0) {
    say("status", view.kind === "catalog" ? "No products match these filters." : "Nothing found. Try other filters.");
  } else if (view.kind === "catalog") {
    say("status", `${items.length} products on this page.`);
  } else {
    const took = tookMs === undefined ? "" : ` in ${Math.round(tookMs)} ms`;
    say("status", `${items.length} products found${took}.`);
  }
}

/** Show a view: fetch it, then render it unless a newer request started meanwhile. */
async function show(view, { focus = false } = {}) {
  const ticket = ++state.request;
  state.view = view;
  setBusy(true, view.kind === "catalog" ? "Loading the catalog…" : "Searching…");
  try {
    const loaded = await load(view);
    if (ticket !== state.request) return;
    render(view, loaded);
    if (focus) byId("results-title").focus();
  } catch (err) {
    if (ticket !== state.request) return;
    byId("grid").replaceChildren();
    byId("no-match").hidden = true;
    byId("pager").hidden = true;
    byId("results-title").textContent = describe(view);
    byId("back-to-catalog").hidden = view.kind === "catalog";
    say("status", explain(err), true);
  } finally {
    if (ticket === state.request) setBusy(false);
  }
}

function showSimilar(id, title) {
  show({ kind: "similar", id, title }, { focus: true });
}

/** Search with the photo; ``focus`` moves the keyboard focus to the results when they come. */
function searchPhoto(focus = true) {
  if (!state.photo) return;
  state.searchedCrop = cropper.toField();
  show({ kind: "photo" }, { focus });
}

/** After the crop box moved: search again, unless it ended where it was; the focus stays on the box. */
function searchAfterCrop() {
  if (state.photo && cropper.toField() !== state.searchedCrop) searchPhoto(false);
}

/** A new photo: preview it with the crop box over the whole photo, and search with it. */
function setPhoto(file) {
  if (!file) return;
  state.photo = file;
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = URL.createObjectURL(file);
  const image = byId("preview-image");
  byId("crop-stage").hidden = false;
  image.src = state.previewUrl;
  byId("preview").hidden = false;
  byId("drop-hint").textContent = `Photo: ${file.name || "pasted image"}`;
  cropper.reset();
  searchPhoto();
}

function clearPhoto() {
  state.photo = null;
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = null;
  byId("preview").hidden = true;
  byId("preview-image").removeAttribute("src");
  byId("drop-hint").textContent = "Drop a photo here, paste one, or choose one.";
  for (const id of ["photo-input", "camera-input"]) byId(id).value = "";
  show({ kind: "catalog", page: 0 });
}

function setUpPhotoInputs() {
  for (const id of ["photo-input", "camera-input"]) {
    const input = byId(id);
    input.addEventListener("change", () => setPhoto(input.files[0]));
  }
  const zone = byId("drop-zone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    setPhoto(e.dataTransfer.files[0]);
  });
  // A file dropped beside the zone must not make the browser leave the shop to open it.
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => e.preventDefault());
  document.addEventListener("paste", (e) => {
    const file = [...(e.clipboardData ? e.clipboardData.files : [])].find((f) => f.type.startsWith("image/"));
    if (file) { e.preventDefault(); setPhoto(file); }
  });
  byId("preview-image").addEventListener("error", () => {
    if (state.photo) byId("crop-stage").hidden = true; // the browser cannot show it; the service will say why
  });
  cropper = new Cropper(byId("crop-stage"), byId("crop-box"), () => {});
  byId("crop-box").addEventListener("pointerup", searchAfterCrop);
  byId("crop-box").addEventListener("keyup", (e) => { if (e.key.startsWith("Arrow")) searchAfterCrop(); });
  byId("crop-reset").addEventListener("click", () => { cropper.reset(); searchPhoto(false); });
  byId("photo-clear").addEventListener("click", clearPhoto);
  byId("search-button").addEventListener("click", () => searchPhoto());
}

function setUpFilters() {
  const rerun = () => show(state.view.kind === "catalog" ? { kind: "catalog", page: 0 } : state.view);
  byId("category").addEventListener("change", rerun);
  for (const id of ["min-price", "max-price"]) byId(id).addEventListener("change", rerun);
  byId("filters-clear").addEventListener("click", () => {
    byId("category").value = "";
    byId("min-price").value = "";
    byId("max-price").value = "";
    rerun();
  });
  byId("text-search").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = byId("q").value.trim();
    show(q ? { kind: "text", q } : { kind: "catalog", page: 0 }, { focus: Boolean(q) });
  });
  byId("back-to-catalog").addEventListener("click", () => show({ kind: "catalog", page: 0 }, { focus: true }));
  byId("page-prev").addEventListener("click", () => show({ kind: "catalog", page: state.view.page - 1 }));
  byId("page-next").addEventListener("click", () => show({ kind: "catalog", page: state.view.page + 1 }));
}

async function loadCategories() {
  try {
    const categories = await callApi("/categories");
    const select = byId("category");
    for (const c of categories) {
      const option = document.createElement("option");
      option.value = c.name;
      option.textContent = `${c.name} (${c.products})`;
      select.append(option);
    }
  } catch (err) {
    say("status", explain(err), true);
  }
}

async function loadHealth() {
  try {
    const health = await callApi("/health");
    byId("health").textContent = `${health.products} products in the catalog`;
  } catch (err) {
    byId("health").textContent = `The service is unavailable: ${explain(err)}`;
  }
}

setUpPhotoInputs();
setUpFilters();
loadCategories();
loadHealth();
show({ kind: "catalog", page: 0 });
