// The moderator console: wiring and the keyboard. The view is views/moderator.js.

import { announce } from "../app.js";
import { CommandError } from "../connection.js";
import { t } from "../i18n.js";
import { api, newClientId, meetingIdFromPath } from "../session.js";
import { startStaffPage } from "../staff.js";
import { pendingQueue, filtered } from "../tree.js";
import { ModeratorView, PRESET_REASONS, LIST_STEP, QUEUE_SHOWN } from "../views/moderator.js";

const meetingId = meetingIdFromPath();
let app = null;
let connection = null;
let session = null;

const ui = {
  list: "queue",
  selected: null,
  filter: "all",
  listLimit: LIST_STEP,
  form: null,
  help: false,
  notice: null,
  phaseConfirm: null,
  topicText: "",
  floor: { kind: "question", parent: "", speaker: "", body: "" },
  settings: {},
  openPanels: { floor: true, topic: false, share: true, export: false, settings: false },
};

function errorText(error) {
  const code = error instanceof CommandError ? error.code : error.code || "unknown";
  const text = t(`error.${code}`);
  return text === `error.${code}` ? t("error.unknown") : text;
}

async function run(type, fields, done) {
  try {
    const result = await connection.send(type, fields);
    if (done) announce(done);
    return result;
  } catch (error) {
    app.setUi({ notice: { kind: "error", text: `${errorText(error)}${error.message && error.message !== error.code ? ` (${error.message})` : ""}` } });
    return null;
  }
}

function itemsOf(list) {
  return list === "queue" ? pendingQueue(app.state).slice(0, QUEUE_SHOWN) : filtered(app.state, app.ui.filter).slice(0, app.ui.listLimit);
}

/** Select a message in a list and move the keyboard focus to it. */
function select(list, id, { focus = true } = {}) {
  app.setUi({ list, selected: id, form: app.ui.form && app.ui.form.id === id ? app.ui.form : null });
  if (focus) focusSelected();
}

function focusSelected() {
  app.renderNow();
  const { list, selected } = app.ui;
  const element = selected !== null && document.getElementById(`${list}-${selected}`);
  if (element) {
    element.focus({ preventScroll: true });
    element.scrollIntoView({ block: "nearest" });
  }
}

function move(step) {
  let list = app.ui.list;
  let items = itemsOf(list);
  if (!items.length) {
    // An empty queue hands the keys over to the message list, and back.
    list = list === "queue" ? "messages" : "queue";
    items = itemsOf(list);
    if (!items.length) return;
  }
  const index = items.findIndex((m) => m.id === app.ui.selected);
  const next = index === -1 ? (step > 0 ? 0 : items.length - 1) : Math.min(items.length - 1, Math.max(0, index + step));
  select(list, items[next].id);
}

/** After an item leaves a list (approved, rejected), select the one that took its place. */
function selectAfter(list, id) {
  const index = itemsOf(list).findIndex((m) => m.id === id);
  return () => {
    // The acted-on item is left out even if its event has not arrived yet.
    const after = itemsOf(list).filter((m) => m.id !== id);
    if (!after.length) {
      app.setUi({ selected: null, form: null });
      app.renderNow();
      document.getElementById("queue-heading")?.focus();
      return;
    }
    select(list, after[Math.min(Math.max(index, 0), after.length - 1)].id);
  };
}

function selectedMessage() {
  return app.ui.selected === null ? null : app.state.messages[app.ui.selected] || null;
}

const actions = {
  setUi: (patch) => app.setUi(patch),
  select(list, id, event) {
    // Clicks on the item's own buttons and fields keep their focus.
    const interactive = event && event.target.closest("button, input, select, textarea, a, label");
    if (app.ui.selected === id && app.ui.list === list) return;
    select(list, id, { focus: !interactive });
  },
  async moderate(message, action, reason) {
    const list = app.ui.list;
    const leaves = (action === "approve" || action === "reject") && (list === "queue" || app.ui.filter === "pending");
    const next = leaves ? selectAfter(list, message.id) : null;
    const fields = { message_id: message.id, action };
    if (reason) fields.reason = reason;
    const result = await run("moderate", fields, t(`done.${action}`));
    if (result) {
      app.setUi({ form: null });
      if (next) next();
      else focusSelected();
    }
  },
  openForm(list, message, type, extra = {}) {
    app.setUi({ list, selected: message.id, form: { type, id: message.id, reason: "", into: "", by: "", ...extra } });
    app.renderNow();
    const element = document.querySelector(`#${list}-${message.id} .inline-form input:not([type=radio]), #${list}-${message.id} .inline-form select`);
    if (element) element.focus();
  },
  setForm(patch) {
    app.setUi((u) => ({ form: { ...u.form, ...patch } }));
  },
  closeForm() {
    app.setUi({ form: null });
    focusSelected();
  },
  reasonKey(event) {
    // In an empty reason field, 1-4 pick a preset reason.
    if (event.key === "Escape") {
      event.preventDefault();
      actions.closeForm();
      return;
    }
    const n = Number(event.key);
    if (!event.currentTarget.value && n >= 1 && n <= PRESET_REASONS.length) {
      event.preventDefault();
      actions.setForm({ reason: t(PRESET_REASONS[n - 1]) });
    }
  },
  formKey(event) {
    if (event.key === "Escape") {
      event.preventDefault();
      actions.closeForm();
    }
  },
  async submitForm() {
    const form = app.ui.form;
    const message = form && app.state.messages[form.id];
    if (!message) return;
    if (form.type === "reject" || form.type === "hide") {
      await actions.moderate(message, form.type, form.reason.trim() || null);
    } else if (form.type === "merge" && form.into) {
      const result = await run("merge", { message_id: message.id, into: Number(form.into) }, t("done.merge"));
      if (result) {
        app.setUi({ form: null });
        focusSelected();
      }
    } else if (form.type === "answered") {
      await actions.answered(message, form.state, form.by.trim() || null);
    }
  },
  async answered(message, state, by) {
    const fields = { message_id: message.id, state };
    if (by) fields.by = by;
    if (await run("answered", fields, t(`done.${state}`))) {
      app.setUi({ form: null });
      focusSelected();
    }
  },
  async spotlight(id) {
    await run("spotlight", { message_id: id }, t(id === null ? "done.spotlight_cleared" : "done.spotlight"));
  },
  askPhase(phase) {
    if (phase === "closed" || phase === "archived") app.setUi({ phaseConfirm: phase });
    else actions.phase(phase);
  },
  async phase(phase) {
    app.setUi({ phaseConfirm: null });
    await run("phase", { phase }, t("done.phase", { phase: t(`phase.${phase}`) }));
  },
  async createTopic() {
    const body = app.ui.topicText.trim();
    if (!body) return;
    if (await run("post", { kind: "topic", parent_id: null, body, client_id: newClientId() }, t("done.topic"))) {
      app.setUi({ topicText: "" });
    }
  },
  setFloor(patch) {
    app.setUi((u) => ({ floor: { ...u.floor, ...patch } }));
  },
  async logFloor() {
    const floor = app.ui.floor;
    const fields = { body: floor.body.trim(), kind: floor.kind, client_id: newClientId() };
    fields.parent_id = floor.parent ? Number(floor.parent) : null;
    if (floor.speaker.trim()) fields.speaker_name = floor.speaker.trim();
    if (await run("floor", fields, t("done.floor"))) {
      app.setUi((u) => ({ floor: { ...u.floor, body: "", speaker: "" } }));
    }
  },
  panel(name, open) {
    if (app.ui.openPanels[name] !== open) app.setUi((u) => ({ openPanels: { ...u.openPanels, [name]: open } }));
  },
  async copy(text) {
    try {
      await navigator.clipboard.writeText(text);
      announce(t("share.copied"));
    } catch {
      app.setUi({ notice: { kind: "error", text: t("share.copy_failed") } });
    }
  },
  async exportMinutes(format) {
    try {
      const response = await fetch(`/api/meetings/${encodeURIComponent(meetingId)}/export?format=${format}`, {
        headers: { authorization: `Bearer ${session.token}` },
      });
      if (!response.ok) throw new Error(String(response.status));
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = document.createElement("a");
      link.href = url;
      link.download = `${meetingId}-minutes.${format}`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch {
      app.setUi({ notice: { kind: "error", text: t("export.failed") } });
    }
  },
  setSettings(patch) {
    app.setUi((u) => ({ settings: { ...u.settings, ...patch } }));
  },
  async saveSettings() {
    const draft = app.ui.settings;
    const body = {};
    if (draft.title !== undefined) body.title = draft.title;
    if (draft.basis !== undefined) body.basis = draft.basis;
    const settings = {};
    if (draft.moderation !== undefined) settings.moderation = draft.moderation;
    if (draft.voting !== undefined) settings.voting = draft.voting;
    if (Object.keys(settings).length) body.settings = settings;
    if (!Object.keys(body).length) return;
    try {
      await api(`/api/meetings/${encodeURIComponent(meetingId)}`, { method: "PATCH", token: session.token, body });
      app.setUi({ settings: {}, notice: { kind: "ok", text: t("settings.saved") } });
    } catch (error) {
      app.setUi({ notice: { kind: "error", text: errorText(error) } });
    }
  },
};

const TYPING = new Set(["INPUT", "TEXTAREA", "SELECT"]);

function onKey(event) {
  if (!app || event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (TYPING.has(event.target.tagName) || event.target.isContentEditable) return;
  const key = event.key;
  const message = selectedMessage();
  const list = app.ui.list;
  const handled = () => event.preventDefault();
  switch (key) {
    case "j":
    case "ArrowDown":
      handled();
      move(1);
      return;
    case "k":
    case "ArrowUp":
      handled();
      move(-1);
      return;
    case "q":
      handled();
      select("queue", pendingQueue(app.state)[0]?.id ?? null);
      return;
    case "f":
      handled();
      actions.panel("floor", true);
      app.renderNow();
      document.getElementById("floor-body")?.focus();
      return;
    case "?":
      handled();
      app.setUi({ help: !app.ui.help });
      return;
    case "Escape":
      if (app.ui.form) {
        handled();
        actions.closeForm();
      } else if (app.ui.help) {
        handled();
        app.setUi({ help: false });
      }
      return;
    case "x":
      handled();
      if (app.state.meeting.spotlight !== null) actions.spotlight(null);
      return;
    default:
      break;
  }
  if (!message) return;
  const k = key.toLowerCase();
  if (k === "a" && (message.status === "pending" || message.status === "rejected")) {
    handled();
    actions.moderate(message, "approve");
  } else if (k === "r" && message.status === "pending") {
    handled();
    actions.openForm(list, message, "reject");
  } else if (k === "h" && message.status === "visible") {
    handled();
    actions.openForm(list === "queue" ? "messages" : list, message, "hide");
  } else if (k === "u" && message.status === "hidden") {
    handled();
    actions.moderate(message, "restore");
  } else if (k === "p" && !["rejected", "erased"].includes(message.status)) {
    handled();
    actions.moderate(message, message.pinned ? "unpin" : "pin");
  } else if (k === "s" && message.status === "visible" && message.kind !== "topic") {
    handled();
    actions.spotlight(message.id);
  } else if ((k === "w" || k === "o") && message.kind === "question") {
    handled();
    actions.openForm("messages", message, "answered", { state: k === "w" ? "answered_written" : "answered_oral" });
  } else if (k === "m" && message.kind === "question" && message.merged_into === null) {
    handled();
    actions.openForm("messages", message, "merge");
  }
}

function onChange(appRef, before, after, frame) {
  // A new question in the queue is announced; the flood is summarised.
  if (frame.type === "event" && frame.kind === "message.created" && frame.data.status === "pending") {
    queued += 1;
    clearTimeout(queuedTimer);
    queuedTimer = setTimeout(() => {
      announce(t("announce.queue", { count: queued }));
      queued = 0;
    }, 3000);
  }
}
let queued = 0;
let queuedTimer = null;

startStaffPage({
  role: "moderator",
  askName: true,
  ui,
  view: (a) => ModeratorView(a, actions),
  onChange,
  onStart(a, c, s) {
    app = a;
    connection = c;
    session = s;
    document.addEventListener("keydown", onKey);
  },
});
