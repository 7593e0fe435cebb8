// The REST client: JSON in and out, errors as ApiError carrying the protocol's stable code.

export class ApiError extends Error {
  constructor(status, code, message, fields = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content || "";
}

let leaving = false;

// Every way to the sign-in page (signing out, deleting the account, a 401, the socket's refusal)
// goes through here, once: a second assign would abort the first navigation under way.
export function goToSignIn(url = "/login") {
  if (leaving) return;
  leaving = true;
  window.location.assign(url);
}

function signedOut() {
  goToSignIn(`/login?signed_out=1&next=${encodeURIComponent(window.location.pathname)}`);
}

function query(params) {
  const pairs = Object.entries(params || {}).filter(([, value]) => value !== undefined && value !== null && value !== "");
  return pairs.length ? `?${new URLSearchParams(pairs)}` : "";
}

export async function api(path, { method = "GET", body, params, signal } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" }, signal };
  if (method !== "GET" && method !== "DELETE") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  let response;
  try {
    response = await fetch(`/api/v1${path}${query(params)}`, init);
  } catch (error) {
    // An aborted request (a newer search replaced it) is "cancelled", not a network problem.
    throw new ApiError(0, error?.name === "AbortError" ? "cancelled" : "network", "");
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data?.error || {};
    if (response.status === 401 && error.code === "unauthenticated") signedOut();
    throw new ApiError(response.status, error.code || `http_${response.status}`, error.message || response.statusText, error.fields || {});
  }
  return data;
}

// Refusals that mean "not now": the server is processing this user's other uploads, or is busy.
const BUSY_CODES = new Set(["too_many_uploads", "server_busy"]);
const BUSY_TRIES = 6;

/** Upload a file with progress; returns {promise, abort}. The promise resolves with the upload.
 * A "not now" refusal is tried again after the server's Retry-After, a few times.
 * `purpose`: "message" (the server's default), "avatar" or "voice" (with `duration`, the
 * recording's length in seconds as the browser measured it, which the server checks). */
export function upload(file, onProgress, { purpose = null, duration = null } = {}) {
  let xhr = null;
  let aborted = false;
  let timer = null;
  const attempt = () => new Promise((resolve, reject) => {
    xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/uploads");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300 && data?.upload) resolve(data.upload);
      else {
        const error = data?.error || {};
        const failure = new ApiError(xhr.status, error.code || `http_${xhr.status}`, error.message || xhr.statusText, error.fields || {});
        failure.retryAfter = Number(xhr.getResponseHeader("Retry-After")) || 2;
        reject(failure);
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network", "")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "cancelled", "")));
    const form = new FormData();
    form.append("file", file, file.name);
    if (purpose) form.append("purpose", purpose);
    if (duration !== null) form.append("duration", String(duration));
    xhr.send(form);
  });
  const promise = (async () => {
    for (let tries = 1; ; tries += 1) {
      try {
        return await attempt();
      } catch (error) {
        if (aborted || !BUSY_CODES.has(error.code) || tries >= BUSY_TRIES) throw error;
        onProgress(0);
        await new Promise((resolve) => { timer = setTimeout(resolve, Math.min(error.retryAfter, 30) * 1000); });
        if (aborted) throw new ApiError(0, "cancelled", "");
      }
    }
  })();
  const abort = () => {
    aborted = true;
    clearTimeout(timer);
    xhr?.abort();
  };
  return { promise, abort };
}

/** Every page of a paged list (`next` cursors), bounded so a bug cannot loop forever. */
export async function all(path, key, params = {}) {
  const items = [];
  let after = null;
  for (let page = 0; page < 50; page += 1) {
    const data = await api(path, { params: { ...params, limit: 100, after } });
    items.push(...data[key]);
    after = data.next;
    if (!after) break;
  }
  return items;
}
