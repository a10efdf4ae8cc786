// The HTTP API as the pages use it: one fetch wrapper, the API's error shape, shared formatting.

/** An answer that was not 2xx: the status, the API's error code and a message for people. */
export class ApiFailure extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

const UPLOAD_HINTS = {
  413: "That file is too large for the shop's search. Try a smaller photo (a phone photo or a screenshot works).",
  415: "That file is not a photo we can read. Use a JPEG, PNG, WebP, GIF or BMP image.",
};

/** What to tell a person about a failed call, in words they can act on. */
export function explain(failure) {
  if (!(failure instanceof ApiFailure)) return "The shop's search cannot be reached. Check your connection and try again.";
  if (failure.status === 503) {
    const seconds = Number(failure.retryAfter);
    const wait = seconds > 0 ? ` in ${seconds} second${seconds === 1 ? "" : "s"}` : " in a moment";
    return `The service is busy right now. Please try again${wait}.`;
  }
  if (UPLOAD_HINTS[failure.status]) return UPLOAD_HINTS[failure.status];
  if (failure.code === "invalid_image" || failure.code === "corrupt_image" || failure.code === "empty_upload") {
    return `That photo could not be read (${failure.message}). Try another one.`;
  }
  return failure.message;
}

/**
 * fetch() that returns the parsed JSON body (null for 204) or throws an ApiFailure with the
 * API's {"error": {"code", "message"}}; a network failure throws a TypeError.
 */
export async function callApi(url, options = {}) {
  const response = await fetch(url, options);
  let body = null;
  if (response.status !== 204) {
    try { body = await response.json(); } catch (_) { body = null; }
  }
  if (!response.ok) {
    const error = body && body.error ? body.error : {};
    throw new ApiFailure(
      response.status,
      error.code || `http_${response.status}`,
      error.message || `${response.status} ${response.statusText}`,
      response.headers.get("Retry-After"),
    );
  }
  return body;
}

/** A URL with the query parameters that have a value. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

const priceFormat = new Intl.NumberFormat(undefined, { style: "currency", currency: "EUR" });

export function formatPrice(price) {
  return price === null || price === undefined ? "" : priceFormat.format(price);
}

/** document.getElementById, failing loudly when the page lacks the element. */
export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element;
}

/** Put ``message`` in the element ``id`` (a status line), marked as an error or not. */
export function say(id, message, isError = false) {
  const node = byId(id);
  node.textContent = message;
  node.classList.toggle("error", isError);
}
