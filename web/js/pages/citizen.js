// The citizen page: join (or read as a viewer), then live.

import { App, announce } from "../app.js";
import { Connection, CommandError } from "../connection.js";
import { Outbox } from "../outbox.js";
import { loadCatalogues, pickLanguage, setLanguage, t, userChoice } from "../i18n.js";
import { api, ApiError, join, loadSession, forgetSession, meetingIdFromPath, newClientId } from "../session.js";
import { CitizenView, JoinView } from "../views/citizen.js";
import { spotlight, questionOf } from "../tree.js";

const meetingId = meetingIdFromPath();
const root = document.getElementById("app");

const ui = {
  tab: "questions",
  sort: "popular",
  collapsed: {},
  expanded: {},
  shown: {},
  askOpen: false,
  askText: "",
  askTopic: null,
  replyTo: null,
  replyText: "",
  confirmWithdraw: null,
  notice: null,
  outbox: [],
  readOnly: false,
  whoAmI: "",
  // before joining
  meeting: null,
  name: "",
  inRoom: false,
  busy: false,
  error: null,
};

let app = null;
let connection = null;
let outbox = null;

function errorText(error) {
  const code = error instanceof CommandError || error instanceof ApiError ? error.code : "unknown";
  return t(`error.${code}`) === `error.${code}` ? t("error.unknown") : t(`error.${code}`);
}

// --- before joining ---------------------------------------------------------

const joinApp = new App({ root, view: (a) => JoinView({ ui: a.ui, actions: joinActions }), ui });
const joinActions = {
  setUi: (patch) => joinApp.setUi(patch),
  async join() {
    joinApp.setUi({ busy: true, error: null });
    try {
      const session = await join(meetingId, { name: joinApp.ui.name.trim() || null, inRoom: joinApp.ui.inRoom });
      startLive(session, joinApp.ui.meeting);
    } catch (error) {
      joinApp.setUi({ busy: false, error: errorText(error) });
    }
  },
};

// --- live ---------------------------------------------------------------------

const actions = {
  setUi: (patch) => app.setUi(patch),
  toggle(field, key) {
    app.setUi((u) => ({ [field]: { ...u[field], [key]: !u[field][key] } }));
  },
  ask() {
    const body = app.ui.askText.trim();
    if (!body) return;
    const topic = app.ui.askTopic ?? defaultTopic();
    outbox.add({ client_id: newClientId(), parent_id: topic ? Number(topic) : null, body });
    app.setUi({ askText: "", askOpen: false, notice: { kind: "info", text: sentNotice() } });
    focus("ask-open");
  },
  openAsk() {
    app.setUi({ askOpen: true });
    focus("ask-body");
  },
  closeAsk() {
    app.setUi({ askOpen: false });
    focus("ask-open");
  },
  startReply(message) {
    app.setUi({ replyTo: message.id, replyText: "" });
    focus(`reply-${message.id}`);
  },
  cancelReply(message) {
    app.setUi({ replyTo: null });
    focus(`reply-button-${message.id}`);
  },
  reply(parent) {
    const body = app.ui.replyText.trim();
    if (!body) return;
    outbox.add({ client_id: newClientId(), parent_id: parent.id, body });
    app.setUi((u) => ({ replyTo: null, replyText: "", expanded: { ...u.expanded, [questionId(parent)]: true }, notice: { kind: "info", text: sentNotice() } }));
    focus(`reply-button-${parent.id}`);
  },
  async vote(message) {
    try {
      await connection.send("vote", { message_id: message.id, value: message.voted ? 0 : 1 });
    } catch (error) {
      app.setUi({ notice: { kind: "error", text: errorText(error) } });
    }
  },
  async withdraw(message) {
    app.setUi({ confirmWithdraw: null });
    try {
      await connection.send("withdraw", { message_id: message.id });
      app.setUi({ notice: { kind: "info", text: t("withdraw.done") } });
    } catch (error) {
      app.setUi({ notice: { kind: "error", text: errorText(error) } });
    }
  },
};

/** Move the keyboard focus to an element once the view shows it. */
function focus(id) {
  app.renderNow();
  document.getElementById(id)?.focus();
}

function sentNotice() {
  if (app.status !== "live") return t("outbox.kept");
  return app.state.meeting && app.state.meeting.settings.moderation === "pre" ? t("ask.sent_pre") : t("ask.sent");
}

function defaultTopic() {
  const topicIds = Object.values(app.state.messages)
    .filter((m) => m.kind === "topic" && m.status === "visible")
    .sort((a, b) => (a.created_at < b.created_at ? -1 : 1));
  return topicIds.length ? String(topicIds[0].id) : "";
}

function questionId(message) {
  const question = questionOf(app.state, message);
  return question ? question.id : message.id;
}

function whoAmI(session) {
  const name = session.name || t("author.anonymous");
  return t(session.in_room ? "me.in_room" : "me.remote", { name });
}

function startLive(session, meeting) {
  const readOnly = session === null;
  joinApp.detach();
  app = new App({
    root,
    view: (a) => CitizenView(a, actions),
    ui: { ...ui, readOnly, whoAmI: readOnly ? "" : whoAmI(session), meeting },
  });
  app.onChange(announceChanges);
  connection = new Connection({
    meetingId,
    token: readOnly ? null : session.token,
    getSeq: () => app.state.seq,
    onFrame: (frame) => app.receive(frame),
    onStatus: (status, detail) => {
      app.setStatus(status, detail);
      if (status === "live" && outbox) outbox.flush();
      if (status === "refused") refused(detail);
    },
  });
  if (!readOnly) {
    outbox = new Outbox({
      meetingId,
      participantId: session.participant_id,
      onChange: (items) => app.setUi({ outbox: items }),
      onRejected: (item, code) =>
        app.setUi({ notice: { kind: "error", text: t("outbox.rejected", { excerpt: item.body.slice(0, 60), reason: errorText(new CommandError(code)) }) } }),
    });
    outbox.attach(connection);
    app.ui.outbox = outbox.items.slice();
  }
  connection.start();
  app.renderNow();
}

function refused(detail) {
  if (detail === "unauthorized") {
    // The token is gone (erased or from an old database): join again.
    forgetSession(meetingId, "citizen");
    connection.stop();
    app.detach();
    joinApp.setUi({ busy: false, error: t("join.expired"), meeting: app.state.meeting || app.ui.meeting });
    joinApp.attach();
    return;
  }
  app.setUi({ notice: { kind: "error", text: t(`refused.${detail}`) } });
}

// Announce what matters, politely and rarely: never the whole flood.
let newQuestions = 0;
let announceTimer = null;
function announceChanges(before, after, frame) {
  if (!before.meeting || !after.meeting || frame.type !== "event") return;
  if (before.meeting.phase !== after.meeting.phase) {
    announce(t("announce.phase", { phase: t(`phase.${after.meeting.phase}`) }));
  }
  if (before.meeting.spotlight !== after.meeting.spotlight) {
    const current = spotlight(after);
    if (current) announce(t("announce.spotlight", { body: current.body }));
  }
  if (frame.kind === "message.created" || frame.kind === "message.updated") {
    const old = before.messages[frame.data.id];
    const now = after.messages[frame.data.id];
    if (now && now.mine && old && old.status !== now.status) {
      announce(t(`announce.mine.${now.status}`));
    } else if (!old && now && now.kind === "question" && !now.mine && !app.paused) {
      newQuestions += 1;
      clearTimeout(announceTimer);
      announceTimer = setTimeout(() => {
        announce(t("announce.new_questions", { count: newQuestions }));
        newQuestions = 0;
      }, 5000);
    }
  }
}

async function boot() {
  await loadCatalogues();
  setLanguage(userChoice() || pickLanguage(null));
  if (!meetingId) {
    location.replace("/");
    return;
  }
  let meeting;
  try {
    meeting = await api(`/api/meetings/${encodeURIComponent(meetingId)}`);
  } catch (error) {
    joinApp.setUi({ error: error.code === "not_found" ? t("join.not_found") : errorText(error) });
    return;
  }
  setLanguage(pickLanguage(meeting.language));
  document.title = `${meeting.title} · Ting`;
  const session = loadSession(meetingId, "citizen");
  if (session) {
    startLive(session, meeting);
  } else if (!["open", "live"].includes(meeting.phase) && meeting.settings.public) {
    startLive(null, meeting);
  } else {
    joinApp.setUi({ meeting });
  }
}

boot();
