// The storefront: calls POST /search, POST /index and GET /health of the same server.
"use strict";

const $ = (id) => document.getElementById(id);

function errorMessage(body, response) {
  if (body && body.error && body.error.message) return body.error.message;
  return `${response.status} ${response.statusText}`;
}

async function callApi(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (_) { /* 204 or a non-JSON body */ }
  if (!response.ok) throw new Error(errorMessage(body, response));
  return body;
}

function formatPrice(price) {
  return price == null ? "" : new Intl.NumberFormat(undefined, { style: "currency", currency: "EUR" }).format(price);
}

function renderResults(results) {
  const list = $("results");
  list.replaceChildren();
  for (const r of results) {
    const item = document.createElement("li");
    item.className = "card";
    item.dataset.sku = r.sku;
    const img = document.createElement("img");
    img.src = r.image_url;
    img.alt = r.title;
    img.loading = "lazy";
    const info = document.createElement("div");
    info.className = "info";
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = r.title;
    const meta = document.createElement("div");
    meta.className = "meta";
    const left = document.createElement("span");
    left.textContent = [r.category, formatPrice(r.price)].filter(Boolean).join(" · ");
    const score = document.createElement("span");
    score.className = "score";
    score.title = "similarity";
    score.textContent = `${Math.round(r.score * 100)}%`;
    meta.append(left, score);
    info.append(title, meta);
    item.append(img, info);
    list.append(item);
  }
}

function showPreview(file) {
  const preview = $("search-preview");
  if (!file) { preview.hidden = true; return; }
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  $("drop-hint").textContent = file.name;
}

async function search(event) {
  event.preventDefault();
  const file = $("search-image").files[0];
  const status = $("search-status");
  if (!file) { status.textContent = "Choose a photo first."; return; }
  const form = new FormData();
  form.append("image", file);
  form.append("k", $("search-k").value);
  $("search-button").disabled = true;
  status.className = "";
  status.textContent = "Searching…";
  try {
    const body = await callApi("/search", { method: "POST", body: form });
    renderResults(body.results);
    status.textContent = body.results.length
      ? `${body.results.length} similar products (${Math.round(body.took_ms)} ms)`
      : "The catalog is empty.";
  } catch (err) {
    $("results").replaceChildren();
    status.className = "error";
    status.textContent = err.message;
  } finally {
    $("search-button").disabled = false;
  }
}

async function addProduct(event) {
  event.preventDefault();
  const formEl = event.target;
  const status = $("index-status");
  const data = new FormData(formEl);
  const key = data.get("api_key");
  data.delete("api_key");
  for (const field of ["category", "price"]) if (!data.get(field)) data.delete(field);
  sessionStorage.setItem("lookalike-api-key", key);
  status.className = "";
  status.textContent = "Adding…";
  try {
    const product = await callApi("/index", { method: "POST", body: data, headers: { "X-API-Key": key } });
    status.textContent = `Added ${product.sku} (id ${product.id}).`;
    formEl.reset();
    $("api-key").value = key;
    refreshHealth();
  } catch (err) {
    status.className = "error";
    status.textContent = err.message;
  }
}

async function refreshHealth() {
  try {
    const h = await callApi("/health");
    $("health").textContent = `${h.products} products · encoder ${h.encoder.arch} on ${h.device} · index on ${h.index_device}`;
  } catch (err) {
    $("health").textContent = `service unavailable: ${err.message}`;
  }
}

function setUpDropZone() {
  const zone = $("drop-zone");
  const input = $("search-image");
  input.addEventListener("change", () => showPreview(input.files[0]));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    if (e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      showPreview(input.files[0]);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpDropZone();
  $("search-form").addEventListener("submit", search);
  $("index-form").addEventListener("submit", addProduct);
  $("api-key").value = sessionStorage.getItem("lookalike-api-key") || "";
  refreshHealth();
});
