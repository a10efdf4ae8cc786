// The shop admin's page: the API key (this tab only), the service's state from /health, and the
// catalog: add a product with its photos, edit its fields, delete it.

import { ApiFailure, byId, callApi, explain, formatPrice, say, withQuery } from "./api.js";

const KEY_STORAGE = "lookalike-api-key";
const PAGE_SIZE = 20;
let page = 0;
let editing = null; // the product in the edit dialog

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

/** A write: the key goes in X-API-Key; without one, say so before calling. */
async function write(url, options) {
  const key = apiKey();
  if (!key) throw new Error("Enter the API key first (API key section).");
  return callApi(url, { ...options, headers: { ...(options.headers || {}), "X-API-Key": key } });
}

function messageOf(err) {
  return err instanceof ApiFailure || err instanceof TypeError ? explain(err) : err.message;
}

async function loadHealth() {
  try {
    const h = await callApi("/health");
    byId("fact-products").textContent = String(h.products);
    byId("fact-vectors").textContent = String(h.vectors);
    byId("fact-encoder").textContent =
      `${h.encoder.arch}, ${h.encoder.image_size} px, ${h.encoder.embed_dim}-d (fingerprint ${h.encoder.fingerprint.slice(0, 12)})`;
    byId("fact-device").textContent = h.device;
    byId("fact-index").textContent = `${h.index_type} on ${h.index_device}`;
    say("service-status", "");
  } catch (err) {
    say("service-status", `The service is unavailable: ${messageOf(err)}`, true);
  }
}

async function loadCategoryNames() {
  try {
    const names = byId("category-names");
    names.replaceChildren(...(await callApi("/categories")).map((c) => new Option(c.name)));
  } catch (_) { /* only suggestions */ }
}

function cell(content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  return td;
}

function button(text, label, onClick, className = "secondary") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function productRow(p) {
  const row = document.createElement("tr");
  row.dataset.sku = p.sku;
  const img = document.createElement("img");
  img.className = "thumb-small";
  img.alt = p.title;
  img.loading = "lazy";
  if (p.image_url) img.src = p.image_url;
  const actions = document.createElement("div");
  actions.className = "actions";
  actions.append(
    button("Edit", `Edit ${p.sku}`, () => openEditor(p)),
    button("Delete", `Delete ${p.sku}`, () => removeProduct(p), "danger"),
  );
  row.append(cell(img), cell(p.sku), cell(p.title), cell(p.category || ""), cell(formatPrice(p.price)), cell(actions));
  return row;
}

let catalogLoads = 0;

// Shows one page of the catalog, then `message` (what the action that asked for
// the reload did). Only the latest load draws: an older one that answers late
// must not put back its rows or wipe the newer action's message.
async function loadCatalog(message = "") {
  const load = ++catalogLoads;
  try {
    const items = await callApi(withQuery("/products", { offset: page * PAGE_SIZE, limit: PAGE_SIZE + 1 }));
    if (load !== catalogLoads) return;
    byId("catalog").tBodies[0].replaceChildren(...items.slice(0, PAGE_SIZE).map(productRow));
    byId("page-prev").disabled = page === 0;
    byId("page-next").disabled = items.length <= PAGE_SIZE;
    byId("page-label").textContent = `Page ${page + 1}`;
    say("catalog-status", message || (items.length ? "" : "The catalog is empty."));
  } catch (err) {
    if (load === catalogLoads) say("catalog-status", messageOf(err), true);
  }
}

function refresh(message = "") {
  loadCatalog(message);
  loadHealth();
  loadCategoryNames();
}

async function addProduct(event) {
  event.preventDefault();
  const form = event.target;
  const data = new FormData(form);
  for (const field of ["category", "price", "attributes"]) {
    if (!String(data.get(field) || "").trim()) data.delete(field);
  }
  say("add-status", "Adding…");
  try {
    const product = await write("/index", { method: "POST", body: data });
    const photos = product.images.length === 1 ? "1 photo" : `${product.images.length} photos`;
    let message = `Added ${product.sku} (id ${product.id}) with ${photos}.`;
    if (product.near_duplicates.length) {
      const others = product.near_duplicates.map((d) => d.other_sku).join(", ");
      message += ` Note: its photos look nearly the same as ${others}.`;
    }
    say("add-status", message);
    form.reset();
    refresh();
  } catch (err) {
    say("add-status", messageOf(err), true);
  }
}

async function removeProduct(p) {
  if (!window.confirm(`Delete ${p.sku} (“${p.title}”) and its photos?`)) return;
  try {
    await write(`/products/${p.id}`, { method: "DELETE" });
    refresh(`Deleted ${p.sku}.`);
  } catch (err) {
    say("catalog-status", messageOf(err), true);
  }
}

function openEditor(p) {
  editing = p;
  const form = byId("edit-form");
  form.elements.sku.value = p.sku;
  form.elements.title.value = p.title;
  form.elements.category.value = p.category || "";
  form.elements.price.value = p.price ?? "";
  form.elements.attributes.value = Object.keys(p.attributes).length ? JSON.stringify(p.attributes, null, 1) : "";
  byId("edit-title").textContent = `Edit ${p.sku}`;
  say("edit-status", "");
  byId("edit-dialog").showModal();
}

async function saveEdit(event) {
  event.preventDefault();
  const f = event.target.elements;
  let attributes = {};
  try {
    attributes = f.attributes.value.trim() ? JSON.parse(f.attributes.value) : {};
  } catch (err) {
    say("edit-status", `Attributes must be JSON, e.g. {"colour": "red"}: ${err.message}`, true);
    return;
  }
  const fields = {
    sku: f.sku.value.trim(),
    title: f.title.value.trim(),
    category: f.category.value.trim() || null,
    price: f.price.value === "" ? null : Number(f.price.value),
    attributes,
  };
  try {
    const saved = await write(`/products/${editing.id}`, {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(fields),
    });
    byId("edit-dialog").close();
    refresh(`Saved ${saved.sku}.`);
  } catch (err) {
    say("edit-status", messageOf(err), true);
  }
}

function setUpKey() {
  const input = byId("api-key");
  input.value = apiKey();
  say("key-status", apiKey() ? "A key is set for this tab." : "No key yet: reading works, changes need one.");
  byId("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, input.value);
    say("key-status", "Key set for this tab.");
  });
  byId("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    input.value = "";
    say("key-status", "Key forgotten.");
  });
}

setUpKey();
byId("add-form").addEventListener("submit", addProduct);
byId("edit-form").addEventListener("submit", saveEdit);
byId("edit-cancel").addEventListener("click", () => byId("edit-dialog").close());
byId("page-prev").addEventListener("click", () => { page -= 1; loadCatalog(); });
byId("page-next").addEventListener("click", () => { page += 1; loadCatalog(); });
refresh();
