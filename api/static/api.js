// Every request to the service goes through this module, so that one place adds the optional
// X-API-Key header and turns the API's {"error": {"code", "message"}} answers into sentences.
"use strict";

const KEY_STORAGE = "rrr.apiKey";

export function getApiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return ""; // storage can be disabled (private modes); then no key is sent
  }
}

export function setApiKey(value) {
  try {
    if (value) localStorage.setItem(KEY_STORAGE, value);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    /* nothing to keep it in; the key just isn't remembered */
  }
}

function authHeaders() {
  const key = getApiKey();
  return key ? { "X-API-Key": key } : {};
}

// What the user reads first, by HTTP status; the service's own message follows as detail.
const HEADLINES = {
  400: "The service could not accept this request.",
  401: "The service needs an API key, or the key saved in Settings is not valid.",
  403: "This API key is not allowed to do that.",
  404: "Not found. The job may have been deleted or never existed.",
  409: "That is not possible right now.",
  413: "That upload is too large for this service.",
  415: "That file type is not supported.",
  422: "That file could not be read as an image or a video.",
  429: "The service is busy. Please try again in a moment.",
  503: "The service is temporarily unavailable. Please try again shortly.",
};

export class ApiError extends Error {
  constructor(status, code, headline, detail = "") {
    super(headline);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

// "the upload is larger than ..." -> "The upload is larger than ...."
export function sentence(text) {
  const s = String(text || "").trim();
  if (!s) return "";
  const capital = s[0].toUpperCase() + s.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

function errorFrom(status, body) {
  const err = body && typeof body === "object" && body.error ? body.error : {};
  const headline = HEADLINES[status] || `Something went wrong (HTTP ${status}).`;
  return new ApiError(status, err.code || "http_error", headline, sentence(err.message));
}

const NETWORK = () =>
  new ApiError(0, "network", "Could not reach the service. Check that it is running, then try again.");

// JSON API helper (GET, POST without a body, DELETE): resolves with parsed JSON (or a Blob with as: "blob"), rejects with ApiError.
export async function api(path, { method = "GET", as = "json" } = {}) {
  let res;
  try {
    res = await fetch(path, { method, headers: authHeaders(), cache: "no-store" });
  } catch {
    throw NETWORK();
  }
  if (!res.ok) throw await failure(res);
  return as === "blob" ? res.blob() : res.json();
}

// The ApiError of a failed response, from its JSON error body when it has one.
async function failure(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON (e.g. a proxy's page): the headline alone is still readable */
  }
  return errorFrom(res.status, body);
}

// POST /v1/jobs with upload progress. fetch() cannot report upload progress, XMLHttpRequest can.
// Returns {done: Promise<job>, abort()}.
export function uploadJob(form, onProgress) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.open("POST", "/v1/jobs");
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    };
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* handled below */
      }
      if (xhr.status >= 200 && xhr.status < 300 && body && body.id) resolve(body);
      else reject(errorFrom(xhr.status, body));
    };
    // A server that refuses a large upload early may close the connection mid-body: say both.
    xhr.onerror = () =>
      reject(new ApiError(0, "network", "The upload did not go through.",
        "The file may be larger than the service accepts, or the connection was lost."));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "Upload canceled."));
    xhr.send(form);
  });
  return { done, abort: () => xhr.abort() };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A picture the service keeps (thumbnail, frame, heatmap) as an object URL for an <img>: fetched
// here rather than by <img src> so that the X-API-Key header is sent. A 202 answer (a picture
// computed on demand, not ready yet) is retried after its Retry-After, for up to `waitMs`.
export async function pictureUrl(path, { waitMs = 60000 } = {}) {
  const until = Date.now() + waitMs;
  for (;;) {
    let res;
    try {
      res = await fetch(path, { headers: authHeaders() });
    } catch {
      throw NETWORK();
    }
    if (res.status === 202 && Date.now() < until) {
      const after = Number(res.headers.get("Retry-After")) || 1;
      await sleep(1000 * Math.min(Math.max(after, 0.5), 5));
      continue;
    }
    if (res.status === 202) {
      throw new ApiError(202, "not_ready", "The picture is still being prepared.", "Try again in a moment.");
    }
    if (!res.ok) throw await failure(res);
    return URL.createObjectURL(await res.blob());
  }
}
