// Product cards: the same card for the catalog grid and for search results.

import { formatPrice } from "./api.js";

const MATCH_LABELS = {
  strong: "Strong match",
  weak: "Possible match",
  none: "Not a good match",
};

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * One product as a grid item.
 * @param {object} item a ProductOut (catalog) or a SearchResult (search), told apart by product_id
 * @param {(id: number, title: string) => void} onSimilar called by the "More like this" button
 * @param {boolean} showScore true when item.score is a cosine similarity (photo search, more like this)
 */
export function productCard(item, onSimilar, showScore = false) {
  const id = item.product_id ?? item.id;
  const card = element("li", "card");
  card.dataset.productId = String(id);
  card.dataset.sku = item.sku;

  const figure = element("div", "thumb");
  if (item.image_url) {
    const img = element("img");
    img.src = item.image_url;
    img.alt = item.title;
    img.loading = "lazy";
    img.decoding = "async";
    figure.append(img);
  } else {
    figure.append(element("span", "no-photo", "No photo"));
  }

  const info = element("div", "info");
  const title = element("h3", "title", item.title);
  const meta = element("p", "meta");
  meta.append(element("span", "category", item.category || ""), element("span", "price", formatPrice(item.price)));
  info.append(title, meta);

  if (showScore || item.match) {
    const scoreLine = element("p", "score-line");
    if (showScore) {
      const score = element("span", "score", `${Math.round(item.score * 100)}% similar`);
      score.title = "cosine similarity of the photos";
      scoreLine.append(score);
    }
    if (item.match) {
      const badge = element("span", `match match-${item.match}`, MATCH_LABELS[item.match]);
      scoreLine.append(badge);
    }
    info.append(scoreLine);
  }

  const similar = element("button", "secondary similar", "More like this");
  similar.type = "button";
  similar.setAttribute("aria-label", `More like this: ${item.title}`);
  similar.addEventListener("click", () => onSimilar(id, item.title));
  info.append(similar);

  card.append(figure, info);
  return card;
}
