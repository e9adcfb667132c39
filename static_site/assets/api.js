// Calls to the credits API. Every failure becomes an ApiError whose message can be shown to people as is.

const TIMEOUT_MS = 30_000;
export const SESSION_ENDED = "Your session has ended — sign in again.";
const NETWORK_FAILED = "We couldn’t reach the server. Check your connection, then try again.";
const TIMED_OUT = "The server took too long to answer. Check your connection, then try again.";
const UNREADABLE = "The server sent an answer this page could not read. Try again in a moment.";

export class ApiError extends Error {
  /** kind: "network" (no answer), "unauthorized" (401), "http" (any other error status) or "unreadable". */
  constructor(message, { kind, status = 0, code = "" }) {
    super(message);
    this.name = "ApiError";
    this.kind = kind;
    this.status = status;
    this.code = code;
  }

  /** Worth offering Retry: the same request may well succeed in a moment. */
  get retryable() {
    return this.kind === "network" || this.kind === "unreadable" || this.status >= 500 || this.status === 429;
  }
}

/** fetch() for JSON: resolves with the parsed body of a 2xx answer, rejects with an ApiError otherwise. */
export async function requestJson(url, { method = "GET", json, form, token } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body,
      cache: "no-store",
      // Tokens travel in the Authorization header only; cookies are never part of the session.
      credentials: "omit",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    throw new ApiError(error?.name === "TimeoutError" ? TIMED_OUT : NETWORK_FAILED, { kind: "network" });
  }
  if (response.status === 204) return {};
  const data = await response.json().catch(() => null);
  if (!response.ok) throw errorFor(response.status, data);
  if (data === null || typeof data !== "object") {
    throw new ApiError(UNREADABLE, { kind: "unreadable", status: response.status });
  }
  return data;
}

function errorFor(status, data) {
  const error = data && typeof data === "object" && typeof data.error === "object" ? data.error : null;
  const code = typeof error?.code === "string" ? error.code : "";
  if (status === 401) return new ApiError(SESSION_ENDED, { kind: "unauthorized", status, code });
  const written = typeof error?.message === "string" && error.message.trim();
  return new ApiError(written ? error.message : fallback(status), { kind: "http", status, code });
}

// Only {"error": {"message"}} is written for people; gateway answers like {"message": "Not Found"} are not.
function fallback(status) {
  if (status === 403) return "You don’t have access to this.";
  if (status === 404) return "That could not be found. Reload the page and try again.";
  if (status === 429) return "Too many requests just now. Wait a moment, then try again.";
  if (status >= 500) return "Something went wrong on our side. Try again in a moment.";
  return "The request could not be completed. Reload the page and try again.";
}

/** fetch() for a file the API makes (a CSV): resolves with its blob and the name it suggests. */
export async function requestFile(url, token) {
  let response;
  try {
    response = await fetch(url, {
      headers: { Accept: "text/csv", Authorization: `Bearer ${token}` },
      cache: "no-store",
      credentials: "omit",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    throw new ApiError(error?.name === "TimeoutError" ? TIMED_OUT : NETWORK_FAILED, { kind: "network" });
  }
  if (!response.ok) throw errorFor(response.status, await response.json().catch(() => null));
  const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") ?? "");
  return { blob: await response.blob(), filename: named ? named[1] : "" };
}

/** The credits API at `base` (from config.js), signed with whatever token `currentToken()` returns. */
export function createApi(base, currentToken) {
  const root = base.replace(/\/+$/, "");
  const signed = (method, path, json) => {
    const token = currentToken();
    if (!token) return Promise.reject(new ApiError(SESSION_ENDED, { kind: "unauthorized", status: 401 }));
    return requestJson(root + path, { method, json, token });
  };
  return {
    packs: () => requestJson(`${root}/packs`),
    balance: (limit, cursor, kind) => {
      const query = new URLSearchParams({ limit: String(limit) });
      if (cursor) query.set("cursor", cursor);
      if (kind) query.set("kind", kind);
      return signed("GET", `/balance?${query}`);
    },
    startCheckout: (amount) => signed("POST", "/checkout", { amount }),
    checkout: (sessionId) => signed("GET", `/checkout/${encodeURIComponent(sessionId)}`),
    autoTopUp: () => signed("GET", "/auto-top-up"),
    saveAutoTopUp: (settings) => signed("PUT", "/auto-top-up", settings),
    lowBalanceEmail: () => signed("GET", "/low-balance-email"),
    saveLowBalanceEmail: (setting) => signed("PUT", "/low-balance-email", setting),
    addPaymentMethod: () => signed("POST", "/payment-method"),
    removePaymentMethod: () => signed("DELETE", "/payment-method"),
    daily: () => signed("GET", "/balance/daily"),
    documents: (paymentId) => signed("GET", `/payments/${encodeURIComponent(paymentId)}/documents`),
    exportCsv: (from, to) => {
      const token = currentToken();
      if (!token) return Promise.reject(new ApiError(SESSION_ENDED, { kind: "unauthorized", status: 401 }));
      return requestFile(`${root}/balance/export?${new URLSearchParams({ from, to })}`, token);
    },
  };
}
