// Posts waiting to be sent, kept in localStorage so that a post made on a
// flaky phone network, or while the page reconnects, is sent once when the
// connection returns: always with the same client_id, which the server uses
// to store it once however often it is sent.

import { CommandError } from "./connection.js";

// Errors that no retry will cure: the post is dropped and the user told why.
const FINAL = new Set(["invalid", "too_large", "forbidden", "closed", "not_found", "conflict", "unauthorized"]);
// After `rate_limited`, wait this long before the next try.
const RATE_LIMIT_PAUSE_MS = 5000;

export class Outbox {
  constructor({ meetingId, participantId, onChange, onRejected }) {
    this.key = `ting.outbox.${meetingId}.${participantId}`;
    this.onChange = onChange;
    this.onRejected = onRejected;
    this.flushing = false;
    this.connection = null;
    this.timer = null;
    this.items = this.load();
  }

  load() {
    try {
      const items = JSON.parse(localStorage.getItem(this.key) || "[]");
      return Array.isArray(items) ? items : [];
    } catch {
      return [];
    }
  }

  save() {
    try {
      if (this.items.length) localStorage.setItem(this.key, JSON.stringify(this.items));
      else localStorage.removeItem(this.key);
    } catch {
      // Storage refused: the post still waits in memory.
    }
    this.onChange(this.items.slice());
  }

  /** Queue a post (a `post` command without its ref) and try to send it. */
  add(command) {
    // Another tab of the same person may have added or sent posts meanwhile.
    this.items = this.load();
    this.items.push({ ...command, queued_at: new Date().toISOString() });
    this.save();
    this.flush();
  }

  attach(connection) {
    this.connection = connection;
  }

  /** Send everything waiting, one at a time, in order. Called when live. */
  async flush() {
    if (this.flushing || !this.connection || this.connection.status !== "live") return;
    this.flushing = true;
    clearTimeout(this.timer);
    try {
      this.items = this.load();
      this.onChange(this.items.slice());
      while (this.items.length && this.connection.status === "live") {
        const item = this.items[0];
        const { queued_at: _queuedAt, ...command } = item;
        try {
          await this.connection.send("post", command);
        } catch (error) {
          const code = error instanceof CommandError ? error.code : "unknown";
          if (code === "rate_limited") {
            this.timer = setTimeout(() => this.flush(), RATE_LIMIT_PAUSE_MS);
            return;
          }
          if (!FINAL.has(code)) return; // disconnected: kept for the next connection
          this.onRejected(item, code);
        }
        this.items = this.load().filter((waiting) => waiting.client_id !== item.client_id);
        this.save();
      }
    } finally {
      this.flushing = false;
    }
  }
}
