// One page's store: the live state (from the reducer), the view's own UI
// state, the connection status, and the render loop. A paused page shows a
// frozen copy of the state (WCAG 2.2.2) that still takes the reader's own doings.

import { initialState, reduce, reducePersonal } from "./state.js";
import { render } from "./html.js";
import { onLanguageChange } from "./i18n.js";

export class App {
  constructor({ root, view, ui = {} }) {
    this.root = root;
    this.view = view;
    this.state = initialState;
    this.frozen = null;
    this.waiting = 0;
    this.ui = ui;
    this.status = "connecting";
    this.statusDetail = null;
    this.scheduled = false;
    this.listeners = [];
    this.detached = false;
    onLanguageChange(() => this.schedule());
  }

  /** Every server frame goes through here. */
  receive(frame) {
    const before = this.state;
    this.state = reduce(this.state, frame);
    if (this.frozen) {
      this.frozen = reducePersonal(this.frozen, frame);
      if (frame.type === "event" && this.state !== before) this.waiting += 1;
    }
    for (const listener of this.listeners) listener(before, this.state, frame);
    this.schedule();
  }

  /** Called with (before, after, frame) after every frame: for announcements. */
  onChange(listener) {
    this.listeners.push(listener);
  }

  setStatus(status, detail = null) {
    this.status = status;
    this.statusDetail = detail;
    this.schedule();
  }

  setUi(patch) {
    this.ui = { ...this.ui, ...(typeof patch === "function" ? patch(this.ui) : patch) };
    this.schedule();
  }

  get paused() {
    return this.frozen !== null;
  }

  pause() {
    this.frozen = this.state;
    this.waiting = 0;
    this.schedule();
  }

  resume() {
    this.frozen = null;
    this.waiting = 0;
    this.schedule();
  }

  /** The state the view shows: the live one, or the frozen one while paused. */
  get shown() {
    return this.frozen || this.state;
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    // A microtask, not an animation frame: a batch of frames renders once,
    // and a screen in a background tab still updates at once.
    queueMicrotask(() => {
      this.scheduled = false;
      this.renderNow();
    });
  }

  renderNow() {
    if (this.detached) return;
    render(this.view(this), this.root);
  }

  /** Stop rendering: another App takes over the page's root. */
  detach() {
    this.detached = true;
  }

  attach() {
    this.detached = false;
    this.renderNow();
  }
}

let announceTimer = null;

/** Say something politely to screen readers (the page's aria-live region). */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region || !text) return;
  region.textContent = "";
  clearTimeout(announceTimer);
  // Emptied first and filled a moment later, so a repeated message is read again.
  announceTimer = setTimeout(() => {
    region.textContent = text;
  }, 100);
}
