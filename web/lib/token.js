/* The service's token, per server, shared by every element of the page that talks to that server.
 *
 * Kept in localStorage (the page's origin's, so a token for snap.example.com given on dashboard.example.com
 * stays on dashboard.example.com), under "snapshot-token" for the page's own origin (the key our page has
 * always used) and "snapshot-token <origin>" for another server; in memory only when storage is unavailable
 * or when the host page set it itself (`element.token = ...`: the host decides where its secrets live).
 * Never written into a cookie: cookies ignore ports, so every other server on the host would receive it. */

const REGISTRY = Symbol.for("snapshot-orchestrator/tokens");

function storageKey(server) {
  return typeof location !== "undefined" && server === location.origin ? "snapshot-token" : "snapshot-token " + server;
}

class Tokens {
  constructor() {
    this.memory = new Map(); // server -> token not (or not yet) in storage
    this.listeners = new Map(); // server -> Set of functions
  }

  get(server) {
    if (this.memory.has(server)) return this.memory.get(server);
    try {
      return globalThis.localStorage.getItem(storageKey(server)) || null;
    } catch (e) {
      return null;
    }
  }

  /** Keep `token` for `server` (in storage unless `persist` is false) and tell everyone waiting for it. */
  set(server, token, { persist = true } = {}) {
    this.memory.delete(server);
    let stored = false;
    if (persist) {
      try {
        globalThis.localStorage.setItem(storageKey(server), token);
        stored = true;
      } catch (e) {
        // private mode or storage full: the token lasts as long as the page
      }
    }
    if (!stored) this.memory.set(server, token);
    this.notify(server);
  }

  /** The service refused `token`: forget it, unless another one was given meanwhile. */
  forget(server, token) {
    if (token !== null && this.get(server) !== token) return;
    this.memory.delete(server);
    try {
      globalThis.localStorage.removeItem(storageKey(server));
    } catch (e) {
      // nothing stored
    }
    this.notify(server);
  }

  /** Call `listener()` whenever `server`'s token changes; returns the function that stops it. */
  subscribe(server, listener) {
    if (!this.listeners.has(server)) this.listeners.set(server, new Set());
    this.listeners.get(server).add(listener);
    return () => this.listeners.get(server)?.delete(listener);
  }

  notify(server) {
    for (const listener of [...(this.listeners.get(server) || [])]) listener();
  }
}

/** The page's one token keeper, shared even by two copies of these modules (one script included twice by
 * two URLs): they meet on the global object. */
export const tokens = globalThis[REGISTRY] || (globalThis[REGISTRY] = new Tokens());
