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

function signedOut() {
  window.location.assign(`/login?signed_out=1&next=${encodeURIComponent(window.location.pathname)}`);
}

function query(params) {
  const pairs = Object.entries(params || {}).filter(([, value]) => value !== undefined && value !== null && value !== "");
  return pairs.length ? `?${new URLSearchParams(pairs)}` : "";
}

export async function api(path, { method = "GET", body, params } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET" && method !== "DELETE") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  let response;
  try {
    response = await fetch(`/api/v1${path}${query(params)}`, init);
  } catch {
    throw new ApiError(0, "network", "");
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

/** Upload a file with progress; returns {promise, abort}. The promise resolves with the upload. */
export function upload(file, onProgress) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
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
        reject(new ApiError(xhr.status, error.code || `http_${xhr.status}`, error.message || xhr.statusText, error.fields || {}));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network", "")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "cancelled", "")));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
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
