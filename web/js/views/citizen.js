// The citizen's phone page: the basis, the phase, topics -> questions ->
// replies, asking, replying, voting, withdrawing. Renders state; does nothing else.

import { html } from "../html.js";
import { t } from "../i18n.js";
import { childrenIndex, topics, spotlight, SORTS, shownInThread, replyCount, canReply } from "../tree.js";
import {
  TopBar, SkipLink, Badges, Body, Reason, AuthorLine, Markdown, TextBox, Notice, PauseControl, PhaseChip, LanguageSwitch, excerpt,
} from "./common.js";

const CAN_POST = new Set(["open", "live"]);
const TOPIC_STEP = 30;

/** Before joining: title, phase, the basis, and the join form. */
export function JoinView({ ui, actions }) {
  const meeting = ui.meeting;
  if (!meeting) {
    return html`<main id="main" tabindex="-1" class="center-page">
      ${ui.error ? html`<${Notice} notice=${{ kind: "error", text: ui.error }} />` : html`<p>${t("loading")}</p>`}
      <p><a href="/">${t("join.other_code")}</a></p>
    </main>`;
  }
  const canJoin = CAN_POST.has(meeting.phase);
  return html`<${SkipLink} /><header class="topbar">
      <div class="topbar-title">
        <p class="brand"><span class="brand-mark" aria-hidden="true">T</span> Ting</p>
        <h1>${meeting.title}</h1>
      </div>
      <div class="topbar-side"><${PhaseChip} phase=${meeting.phase} /><${LanguageSwitch} /></div>
    </header>
    <main id="main" tabindex="-1" class="citizen-join">
      <p class="phase-help">${t(`phase_help.${meeting.phase}`)}</p>
      <section class="basis card" aria-labelledby="basis-heading">
        <h2 id="basis-heading">${t("basis.heading")}</h2>
        <${Markdown} source=${meeting.basis} />
      </section>
      ${canJoin
        ? html`<form class="card join-form" onSubmit=${(e) => { e.preventDefault(); actions.join(); }}>
            <h2>${t("join.heading")}</h2>
            <div class="field">
              <label for="join-name">${t("join.name")}</label>
              <p class="hint" id="join-name-hint">${meeting.settings.anonymous ? t("join.name_hint_anonymous") : t("join.name_hint")}</p>
              <input id="join-name" type="text" maxlength="60" autocomplete="nickname" value=${ui.name}
                aria-describedby="join-name-hint" onInput=${(e) => actions.setUi({ name: e.currentTarget.value })} />
            </div>
            <div class="field check">
              <input id="join-in-room" type="checkbox" checked=${ui.inRoom}
                onChange=${(e) => actions.setUi({ inRoom: e.currentTarget.checked })} />
              <label for="join-in-room">${t("join.in_room")}</label>
            </div>
            ${ui.error && html`<${Notice} notice=${{ kind: "error", text: ui.error }} />`}
            <button type="submit" class="primary" disabled=${ui.busy}>${t("join.submit")}</button>
          </form>`
        : html`<${Notice} notice=${{ kind: "info", text: t("join.not_now") }} />`}
    </main>`;
}

export function CitizenView(app, actions) {
  const state = app.shown;
  const ui = app.ui;
  const meeting = state.meeting;
  return html`<${TopBar} app=${app} role=${ui.readOnly ? "viewer" : "citizen"} />
    <nav class="tabs" aria-label=${t("nav.label")}>
      ${["questions", "basis"].map(
        (tab) => html`<button type="button" aria-current=${ui.tab === tab ? "page" : "false"}
          onClick=${() => actions.setUi({ tab })}>${t(`nav.${tab}`)}</button>`,
      )}
    </nav>
    <main id="main" tabindex="-1" class="citizen">
      ${!meeting
        ? html`<p class="loading">${t("loading")}</p>`
        : ui.tab === "basis"
          ? html`<section class="basis card" aria-labelledby="basis-heading">
              <h2 id="basis-heading">${t("basis.heading")}</h2>
              <${Markdown} source=${meeting.basis} />
            </section>`
          : html`<${Questions} app=${app} state=${state} actions=${actions} />`}
    </main>`;
}

function Questions({ app, state, actions }) {
  const ui = app.ui;
  const meeting = state.meeting;
  const canPost = CAN_POST.has(meeting.phase) && !ui.readOnly;
  const index = childrenIndex(state);
  const current = spotlight(state);
  const topicList = topics(state);
  const loose = (index.get("root") || []).filter((m) => m.kind === "question");
  const mine = Object.values(state.messages).filter((m) => m.mine && m.status === "pending");
  return html`
    <p class="phase-help">${t(ui.readOnly ? "phase_help.read_only" : `phase_help.${meeting.phase}`)}</p>
    ${!ui.readOnly && html`<p class="me">${ui.whoAmI}</p>`}
    <${Notice} notice=${ui.notice} onClose=${() => actions.setUi({ notice: null })} />
    ${current && html`<section class="spotlight-card" aria-labelledby="spotlight-heading">
      <h2 id="spotlight-heading">${t("spotlight.heading")}</h2>
      <p class="body">${current.body}</p>
      <${AuthorLine} message=${current} />
    </section>`}
    ${canPost && html`<${AskForm} ui=${ui} meeting=${meeting} topicList=${topicList} actions=${actions} />`}
    ${ui.outbox.length > 0 && html`<section class="outbox card" aria-labelledby="outbox-heading">
      <h2 id="outbox-heading">${t("outbox.heading", { count: ui.outbox.length })}</h2>
      <p class="hint">${app.status === "live" ? t("outbox.sending") : t("outbox.waiting")}</p>
      <ul>${ui.outbox.map((item) => html`<li key=${item.client_id} class="outbox-item">${item.body}</li>`)}</ul>
    </section>`}
    ${mine.length > 0 && html`<p class="hint pending-note">${t("pending.note", { count: mine.length })}</p>`}
    <div class="toolbar">
      <fieldset class="segmented">
        <legend>${t("sort.label")}</legend>
        ${["popular", "recent"].map(
          (sort) => html`<label>
            <input type="radio" name="sort" value=${sort} checked=${ui.sort === sort}
              onChange=${() => actions.setUi({ sort })} />
            <span>${t(`sort.${sort}`)}</span>
          </label>`,
        )}
      </fieldset>
      <${PauseControl} app=${app} />
    </div>
    ${topicList.map((topic) => html`<${TopicSection} key=${topic.id} topic=${topic} index=${index} state=${state} ui=${ui} actions=${actions} canPost=${canPost} />`)}
    ${loose.length > 0 && html`<${TopicSection} key="loose" topic=${null} index=${index} state=${state} ui=${ui} actions=${actions} canPost=${canPost} />`}
    ${topicList.length === 0 && loose.length === 0 && html`<p class="empty">${t("questions.none")}</p>`}
  `;
}

function AskForm({ ui, meeting, topicList, actions }) {
  if (!ui.askOpen) {
    return html`<p><button type="button" id="ask-open" class="primary wide" onClick=${() => actions.openAsk()}>${t("ask.open")}</button></p>`;
  }
  const max = meeting.settings.max_body;
  return html`<form class="card ask-form" aria-labelledby="ask-heading" onSubmit=${(e) => { e.preventDefault(); actions.ask(); }}>
    <h2 id="ask-heading">${t("ask.heading")}</h2>
    ${topicList.length > 0 && html`<div class="field">
      <label for="ask-topic">${t("ask.topic")}</label>
      <select id="ask-topic" value=${ui.askTopic ?? String(topicList[0].id)} onChange=${(e) => actions.setUi({ askTopic: e.currentTarget.value })}>
        ${topicList.map((topic) => html`<option value=${String(topic.id)}>${topic.body}</option>`)}
        <option value="">${t("ask.no_topic")}</option>
      </select>
    </div>`}
    <${TextBox} id="ask-body" label=${t("ask.body")} value=${ui.askText} max=${max} rows=${4}
      hint=${meeting.settings.moderation === "pre" ? t("ask.hint_pre") : t("ask.hint")}
      onInput=${(askText) => actions.setUi({ askText })} />
    <div class="buttons">
      <button type="submit" class="primary" disabled=${!ui.askText.trim() || [...ui.askText].length > max}>${t("ask.submit")}</button>
      <button type="button" class="secondary" onClick=${() => actions.closeAsk()}>${t("action.cancel")}</button>
    </div>
  </form>`;
}

function TopicSection({ topic, index, state, ui, actions, canPost }) {
  const key = topic ? topic.id : "loose";
  const collapsed = Boolean(ui.collapsed[key]);
  const all = (index.get(topic ? topic.id : "root") || [])
    .filter((m) => m.kind === "question" && shownInThread(m, index))
    .sort(SORTS[ui.sort]);
  // A phone shows the first questions of a long topic; the rest on request.
  const questions = all.slice(0, ui.shown[key] || TOPIC_STEP);
  const headingId = `topic-${key}`;
  const listId = `topic-list-${key}`;
  return html`<section class="topic" aria-labelledby=${headingId}>
    <div class="topic-head">
      <h2 id=${headingId}>${topic ? topic.body : t("topic.loose")}</h2>
      <button type="button" class="secondary small" aria-expanded=${String(!collapsed)} aria-controls=${collapsed ? undefined : listId}
        onClick=${() => actions.toggle("collapsed", key)}>
        ${collapsed ? t("topic.expand", { count: all.length }) : t("topic.collapse")}
      </button>
    </div>
    ${!collapsed && html`<ol class="questions" id=${listId}>
      ${questions.length === 0 && html`<li class="empty">${t("topic.empty")}</li>`}
      ${questions.map((q) => html`<${MessageItem} key=${q.id} message=${q} index=${index} state=${state} ui=${ui} actions=${actions} canPost=${canPost} />`)}
    </ol>`}
    ${!collapsed && all.length > questions.length && html`<button type="button" class="secondary wide"
      onClick=${() => actions.setUi((u) => ({ shown: { ...u.shown, [key]: questions.length + TOPIC_STEP } }))}>
      ${t("list.more", { count: all.length - questions.length })}</button>`}
  </section>`;
}

function MessageItem({ message, index, state, ui, actions, canPost }) {
  const meeting = state.meeting;
  const isQuestion = message.kind === "question";
  const replies = (index.get(message.id) || [])
    .filter((m) => shownInThread(m, index))
    .sort((a, b) => Number(b.kind === "answer") - Number(a.kind === "answer") || (a.created_at < b.created_at ? -1 : 1));
  const total = replyCount(index, message.id);
  const open = isQuestion ? Boolean(ui.expanded[message.id]) : true;
  const votable = isQuestion && meeting.settings.voting && message.status === "visible" && message.merged_into === null;
  const classes = ["message", `kind-${message.kind}`, `status-${message.status}`];
  if (message.id === meeting.spotlight) classes.push("is-spotlight");
  if (message.source === "floor") classes.push("is-floor");
  if (message.mine) classes.push("is-mine");
  const threadId = `thread-${message.id}`;
  return html`<li class=${classes.join(" ")}>
    <article aria-label=${t(`kind.${message.kind}`)}>
      <${Badges} message=${message} spotlightId=${meeting.spotlight} />
      <${Body} message=${message} />
      ${message.status !== "withdrawn" && message.status !== "erased" && html`<${AuthorLine} message=${message} />`}
      ${message.mine && html`<${Reason} message=${message} />`}
      <div class="actions">
        ${votable && html`<button type="button" class="vote" aria-pressed=${String(message.voted)}
          disabled=${!canPost} onClick=${() => actions.vote(message)}>
          <span class="vote-arrow" aria-hidden="true">▲</span><span class="vote-count">${message.votes}</span>
          <span class="visually-hidden">${t("vote.label", { count: message.votes })}</span>
        </button>`}
        ${isQuestion && !votable && message.votes > 0 && html`<span class="votes-static">${t("votes", { count: message.votes })}</span>`}
        ${canPost && canReply(state, message) && html`<button type="button" id=${`reply-button-${message.id}`} class="secondary small" onClick=${() => actions.startReply(message)}>${t("action.reply")}</button>`}
        ${isQuestion && total > 0 && html`<button type="button" class="link" aria-expanded=${String(open)} aria-controls=${open ? threadId : undefined}
          onClick=${() => actions.toggle("expanded", message.id)}>
          ${open ? t("thread.hide") : t("thread.show", { count: total })}
        </button>`}
        ${message.mine && !["withdrawn", "erased"].includes(message.status) && canPost &&
        (ui.confirmWithdraw === message.id
          ? html`<span class="confirm">${t("withdraw.confirm")}
              <button type="button" class="danger small" onClick=${() => actions.withdraw(message)}>${t("withdraw.yes")}</button>
              <button type="button" class="secondary small" onClick=${() => actions.setUi({ confirmWithdraw: null })}>${t("action.cancel")}</button>
            </span>`
          : html`<button type="button" class="link" onClick=${() => actions.setUi({ confirmWithdraw: message.id })}>${t("action.withdraw")}</button>`)}
      </div>
      ${ui.replyTo === message.id && html`<form class="reply-form" onSubmit=${(e) => { e.preventDefault(); actions.reply(message); }}>
        <${TextBox} id=${`reply-${message.id}`} label=${t("reply.label", { excerpt: excerpt(message.body, 40) })} value=${ui.replyText}
          max=${meeting.settings.max_body} rows=${3} onInput=${(replyText) => actions.setUi({ replyText })} />
        <div class="buttons">
          <button type="submit" class="primary small" disabled=${!ui.replyText.trim() || [...ui.replyText].length > meeting.settings.max_body}>${t("reply.submit")}</button>
          <button type="button" class="secondary small" onClick=${() => actions.cancelReply(message)}>${t("action.cancel")}</button>
        </div>
      </form>`}
    </article>
    ${open && replies.length > 0 && html`<ol class="replies" id=${threadId}>
      ${replies.map((r) => html`<${MessageItem} key=${r.id} message=${r} index=${index} state=${state} ui=${ui} actions=${actions} canPost=${canPost} />`)}
    </ol>`}
  </li>`;
}
