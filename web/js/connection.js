// The one live connection of a page: hello, snapshot or replay, events,
// commands with acks, and resume with `since` after any drop.
//
// States: "connecting" (first time), "live", "reconnecting", "offline"
// (the browser says it has no network), "refused" (the server will not
// have us: bad token, no such meeting, not open yet).

// Reconnect delays in ms, one step further after each failed try. The first
// is short so that a blip is invisible; the last keeps a hall of phones from
// hammering a server that is restarting. Each delay is jittered (see below).
export const BACKOFF_STEPS = [500, 1000, 2000, 5000, 10000, 20000, 30000];
// A ping this often while live; a socket that has said nothing for
// HEARTBEAT + GRACE is taken for dead (phones drop sockets silently).
const HEARTBEAT_MS = 15000;
const GRACE_MS = 10000;
// A command without a reply in this time is reported as failed.
const COMMAND_TIMEOUT_MS = 15000;

const REFUSED = { 4401: "unauthorized", 4403: "forbidden", 4404: "not_found" };

/** A delay for the n-th reconnect: half the step plus a random half ("equal jitter"). */
export function backoffDelay(attempt, random = Math.random) {
  const step = BACKOFF_STEPS[Math.min(attempt, BACKOFF_STEPS.length - 1)];
  return Math.round(step / 2 + random() * (step / 2));
}

export class CommandError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

export class Connection {
  /**
   * @param {object} options
   * @param {string} options.meetingId
   * @param {string|null} options.token  null: a read-only viewer of a public meeting
   * @param {() => number|null} options.getSeq  the last seq applied to the state
   * @param {(frame: object) => void} options.onFrame  every server frame, batches unwrapped
   * @param {(status: string, detail?: string) => void} options.onStatus
   */
  constructor({ meetingId, token, getSeq, onFrame, onStatus }) {
    this.meetingId = meetingId;
    this.token = token;
    this.getSeq = getSeq;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.status = "idle";
    this.socket = null;
    this.attempt = 0;
    this.everLive = false;
    this.timer = null;
    this.heartbeat = null;
    this.lastHeard = 0;
    this.pending = new Map();
    this.refs = 0;
    this.stopped = false;
    this.handleOnline = () => this.reconnectNow();
    this.handleOffline = () => this.goOffline();
    this.handleVisible = () => {
      if (document.visibilityState === "visible" && !this.socket && !this.stopped) this.reconnectNow();
    };
  }

  start() {
    window.addEventListener("online", this.handleOnline);
    window.addEventListener("offline", this.handleOffline);
    document.addEventListener("visibilitychange", this.handleVisible);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.handleOnline);
    window.removeEventListener("offline", this.handleOffline);
    document.removeEventListener("visibilitychange", this.handleVisible);
    clearTimeout(this.timer);
    this.drop(1000, "page closed");
  }

  setStatus(status, detail) {
    if (this.status === status) return;
    this.status = status;
    this.onStatus(status, detail);
  }

  connect() {
    clearTimeout(this.timer);
    if (this.stopped || this.socket) return;
    if (navigator.onLine === false) {
      this.goOffline();
      return;
    }
    this.setStatus(this.everLive ? "reconnecting" : "connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/ws/meetings/${encodeURIComponent(this.meetingId)}`);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.lastHeard = Date.now();
      socket.send(JSON.stringify({ type: "hello", token: this.token, since: this.getSeq() }));
    });
    socket.addEventListener("message", (event) => {
      if (socket !== this.socket) return;
      this.lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.receive(frame);
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket) return;
      this.closed(event.code);
    });
    // An "error" is always followed by "close", which does the work.
  }

  receive(frame) {
    if (frame.type === "batch") {
      for (const inner of frame.frames) this.receive(inner);
      return;
    }
    if (frame.type === "welcome") {
      this.attempt = 0;
      this.everLive = true;
      this.startHeartbeat();
      this.onFrame(frame);
      this.setStatus("live");
      return;
    }
    if ((frame.type === "ack" || frame.type === "error" || frame.type === "pong") && frame.ref) {
      const waiter = this.pending.get(frame.ref);
      if (waiter) {
        this.pending.delete(frame.ref);
        clearTimeout(waiter.timer);
        if (frame.type === "error") waiter.reject(new CommandError(frame.code, frame.message));
        else waiter.resolve(frame.result || {});
      }
      return;
    }
    this.onFrame(frame);
  }

  closed(code) {
    this.socket = null;
    this.stopHeartbeat();
    this.failPending("disconnected");
    if (this.stopped) return;
    if (REFUSED[code]) {
      this.setStatus("refused", REFUSED[code]);
      return;
    }
    if (navigator.onLine === false) {
      this.goOffline();
      return;
    }
    // Too slow (4409): the server asks us to resume at once.
    const delay = code === 4409 ? 0 : backoffDelay(this.attempt);
    this.attempt += 1;
    this.setStatus(this.everLive ? "reconnecting" : "connecting");
    this.timer = setTimeout(() => this.connect(), delay);
  }

  goOffline() {
    this.drop(4000, "offline");
    this.setStatus("offline");
    // If the browser never says "online" again, try now and then anyway.
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reconnectNow(), BACKOFF_STEPS[BACKOFF_STEPS.length - 1]);
  }

  reconnectNow() {
    if (this.stopped || this.status === "refused") return;
    this.attempt = 0;
    if (this.socket) return;
    this.connect();
  }

  /** Try again after a refusal (e.g. the meeting was not open yet). */
  retry() {
    this.status = "idle";
    this.reconnectNow();
  }

  drop(code, reason) {
    const socket = this.socket;
    this.socket = null;
    this.stopHeartbeat();
    this.failPending("disconnected");
    if (socket) {
      try {
        socket.close(code, reason);
      } catch {
        socket.close();
      }
    }
  }

  failPending(code) {
    for (const waiter of this.pending.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new CommandError(code));
    }
    this.pending.clear();
  }

  startHeartbeat() {
    this.stopHeartbeat();
    this.heartbeat = setInterval(() => {
      if (!this.socket) return;
      if (Date.now() - this.lastHeard > HEARTBEAT_MS + GRACE_MS) {
        const socket = this.socket;
        this.socket = null;
        socket.close();
        this.closed(1006);
        return;
      }
      this.socket.send(JSON.stringify({ type: "ping", ref: "heartbeat" }));
    }, HEARTBEAT_MS);
  }

  stopHeartbeat() {
    clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  /** Send a command; resolves with the ack's result or rejects with a CommandError. */
  send(type, fields = {}) {
    if (!this.socket || this.status !== "live") {
      return Promise.reject(new CommandError(this.status === "offline" ? "offline" : "disconnected"));
    }
    this.refs += 1;
    const ref = `c${this.refs}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new CommandError("timeout"));
      }, COMMAND_TIMEOUT_MS);
      this.pending.set(ref, { resolve, reject, timer });
      this.socket.send(JSON.stringify({ type, ref, ...fields }));
    });
  }
}
