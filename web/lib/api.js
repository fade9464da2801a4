/* Requests to one job of one service: its URLs, the token on every request that may need it, and stream
 * tickets (EventSource cannot send an Authorization header: with a token, a stream is opened with a
 * short-lived single-use ticket from POST /api/stream-ticket in its URL instead, which works across origins
 * where the service's own read cookie does not travel). */

import { tokens } from "./token.js";

/** The default job's name on a service without a jobs file. Whatever the service's default job is called, its
 * API also lives under /api/snapshot: an element with no `job` attribute uses that, which every version of the
 * service has; one that names its job uses /api/jobs/<job>. */
export const DEFAULT_JOB = "snapshot";

/** The base of a job's API: /api/jobs/<job> for a named job, /api/snapshot for the default one (null). */
export function jobBase(server, job) {
  return server + (job ? "/api/jobs/" + encodeURIComponent(job) : "/api/snapshot");
}

/** A fresh Idempotency-Key. crypto.randomUUID exists only on secure origins (https, localhost): a page
 * served over plain http from another host builds a version-4 UUID from crypto.getRandomValues instead. */
export function newKey() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  c.getRandomValues(bytes);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => (b + 0x100).toString(16).slice(1)).join("");
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
}

/** The message of an error answer ({"message": ...}), else "HTTP <status>". */
export async function answerMessage(response) {
  try {
    const body = await response.json();
    if (body && typeof body.message === "string") return body.message;
  } catch (e) {
    // not JSON: a proxy's page, say
  }
  return "HTTP " + response.status;
}

export class Api {
  /** `server` is an origin ("https://snap.example.com"), `job` a job's name, or null for the service's default
   * job. */
  constructor(server, job = null) {
    this.server = server;
    this.job = job || null;
    this.base = jobBase(server, this.job);
  }

  /** The URL of `path` under the job's API ("status", "runs?limit=20"), or of the service's own `path` when it
   * starts with a slash ("/api/jobs", "/api/runs?job=report"). */
  url(path) {
    return path.startsWith("/") ? this.server + path : this.base + "/" + path;
  }

  token() {
    return tokens.get(this.server);
  }

  headers(extra = {}) {
    const token = this.token();
    return token ? { ...extra, Authorization: "Bearer " + token } : { ...extra };
  }

  /** GET `path` with the token if the page has one. A 401 to a request that carried a token means the token
   * is wrong: it is forgotten (elements waiting for one then ask). Rejects when the service is unreachable. */
  async read(path, extraHeaders) {
    const sent = this.token();
    const response = await fetch(this.url(path), { cache: "no-store", headers: this.headers(extraHeaders) });
    if (response.status === 401 && sent) tokens.forget(this.server, sent);
    return response;
  }

  /** GET `path` as JSON, never rejecting: {ok: true, status, body}, or {ok: false, status (0 when the service
   * cannot be reached), message}. */
  async readJson(path) {
    let response;
    try {
      response = await this.read(path);
    } catch (e) {
      return { ok: false, status: 0, message: "the service cannot be reached" };
    }
    if (!response.ok) return { ok: false, status: response.status, message: await answerMessage(response) };
    try {
      return { ok: true, status: response.status, body: await response.json() };
    } catch (e) {
      return { ok: false, status: response.status, message: "the answer is not JSON" };
    }
  }

  /** POST `path` (JSON `body`, or none). Resolves to {response, body, unauthorized}: `unauthorized` when the
   * service wants a (better) token, which is then forgotten; `sent`: the token it carried. Rejects when the service is unreachable. */
  async post(path, body = null, extraHeaders = {}) {
    const sent = this.token();
    const init = { method: "POST", headers: this.headers(extraHeaders) };
    if (body !== null) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path.startsWith(this.server) ? path : this.url(path), init);
    if (response.status === 401) {
      if (sent) tokens.forget(this.server, sent);
      return { response, body: null, unauthorized: true, sent };
    }
    let parsed = null;
    try {
      parsed = await response.json();
    } catch (e) {
      parsed = null;
    }
    return { response, body: parsed, unauthorized: false, sent };
  }

  /** The URL to open `path` (as url() reads it) as an event stream: with a ticket when the page holds a
   * token, plain otherwise. Resolves to null when the token was refused (it is forgotten: ask for another).
   * Rejects when the service is unreachable. */
  async streamUrl(path) {
    const url = this.url(path);
    if (!this.token()) return url;
    const { response, body, unauthorized } = await this.post(this.server + "/api/stream-ticket");
    if (unauthorized) return null;
    // A service without tokens answers {"ticket": null}; one that predates tickets, 404: open it plainly.
    if (!response.ok || !body || typeof body.ticket !== "string") return url;
    return url + (url.includes("?") ? "&" : "?") + "ticket=" + encodeURIComponent(body.ticket);
  }
}
