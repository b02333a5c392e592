// The control API client: JSON calls with the session's control token.

const TOKEN_KEY = 'skyfleet-mock-control-token';

/** An answer other than 2xx; `message` is the mock's own `error` text. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The token kept for this tab, or null. */
export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Keeps the token for this tab's session (never in localStorage). */
export function storeToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

/** Forgets the token. */
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

let unauthorized = () => {};

/** Calls `handler(message)` whenever the mock answers 401. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

/** Request headers with the token, if one is kept. */
export function authHeaders(extra = {}) {
  const headers = { ...extra };
  const token = storedToken();
  if (token) {
    headers.Authorization = `Bearer ${token}`;
  }
  return headers;
}

/** Tells the page a 401 happened; used by the event stream too. */
export function reportUnauthorized(message) {
  unauthorized(message);
}

/** One call. Resolves to the parsed JSON body; rejects with ApiError. */
export async function call(method, path, body) {
  const init = { method, cache: 'no-store', headers: authHeaders() };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const message = data && typeof data.error === 'string'
      ? data.error
      : `${method} ${path}: HTTP ${response.status}`;
    if (response.status === 401) {
      unauthorized(message);
    }
    throw new ApiError(response.status, message);
  }
  return data;
}

export const api = {
  resources: () => call('GET', '/_mock/resources'),
  requests: (since) => call('GET', `/_mock/requests?since=${encodeURIComponent(since)}`),
  stats: () => call('GET', '/_mock/stats'),
  faults: () => call('GET', '/_mock/faults'),
  putFaults: (rules) => call('PUT', '/_mock/faults', rules),
  deleteFaults: () => call('DELETE', '/_mock/faults'),
  config: () => call('GET', '/_mock/config'),
  putConfig: (doc) => call('PUT', '/_mock/config', doc),
};
