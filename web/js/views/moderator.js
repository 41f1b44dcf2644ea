// The moderator console: the pre-moderation queue (keyboard first), all
// messages with filters and actions, and the meeting panel. Renders only.

import { html } from "../html.js";
import { t } from "../i18n.js";
import { pendingQueue, filtered, filterCounts, spotlight, topics, questionsByVotes, FILTERS } from "../tree.js";
import { TopBar, Badges, Body, Reason, AuthorLine, TextBox, Notice, Presence, excerpt, authorName, Markdown } from "./common.js";

export const PHASE_MOVES = {
  draft: ["open", "live"],
  open: ["live", "closed"],
  live: ["open", "closed"],
  closed: ["live", "archived"],
  archived: [],
};
export const LIST_STEP = 200;
// The queue is worked from the top; in a flood the oldest 100 are shown and the count says the rest.
export const QUEUE_SHOWN = 100;
export const PRESET_REASONS = ["reason.off_topic", "reason.offensive", "reason.duplicate", "reason.personal"];

export function ModeratorView(app, actions) {
  const state = app.state;
  const ui = app.ui;
  if (!state.meeting) {
    return html`<${TopBar} app=${app} role="moderator" />
      <main id="main" tabindex="-1" class="center-page">
        <${Notice} notice=${ui.notice} />
        ${!ui.notice && html`<p class="loading">${t("loading")}</p>`}
      </main>`;
  }
  return html`<${TopBar} app=${app} role="moderator">
      <button type="button" class="secondary small" aria-expanded=${String(ui.help)} aria-controls="shortcut-help"
        onClick=${() => actions.setUi({ help: !ui.help })}>${t("mod.shortcuts")}</button>
    </${TopBar}>
    ${ui.help && html`<${ShortcutHelp} />`}
    <main id="main" tabindex="-1" class="console">
      <${Queue} app=${app} actions=${actions} />
      <${Messages} app=${app} actions=${actions} />
      <${SidePanel} app=${app} actions=${actions} />
    </main>`;
}

function ShortcutHelp() {
  const keys = [
    ["J / ↓", "keys.next"], ["K / ↑", "keys.previous"], ["A", "keys.approve"], ["R", "keys.reject"],
    ["1–4", "keys.preset"], ["H", "keys.hide"], ["U", "keys.restore"], ["P", "keys.pin"], ["S", "keys.spotlight"],
    ["X", "keys.clear_spotlight"], ["W", "keys.written"], ["O", "keys.oral"], ["M", "keys.merge"],
    ["Q", "keys.queue"], ["F", "keys.floor"], ["Esc", "keys.cancel"], ["?", "keys.help"],
  ];
  return html`<section id="shortcut-help" class="shortcut-help" aria-labelledby="shortcut-heading">
    <h2 id="shortcut-heading">${t("mod.shortcuts")}</h2>
    <dl>${keys.map(([key, text]) => html`<div><dt><kbd>${key}</kbd></dt><dd>${t(text)}</dd></div>`)}</dl>
  </section>`;
}

function Queue({ app, actions }) {
  const state = app.state;
  const ui = app.ui;
  const queue = pendingQueue(state);
  const moderation = state.meeting.settings.moderation;
  return html`<section class="column queue" aria-labelledby="queue-heading">
    <div class="column-head">
      <h2 id="queue-heading" tabindex="-1">${t("queue.heading")} <span class="count-pill">${queue.length}</span></h2>
      <p class="hint">${moderation === "pre" ? t("queue.hint_pre") : t("queue.hint_post")}</p>
    </div>
    ${queue.length === 0
      ? html`<p class="empty">${t("queue.empty")}</p>`
      : html`<ol class="items" aria-label=${t("queue.heading")}>
          ${queue.slice(0, QUEUE_SHOWN).map((m) => html`<${QueueItem} key=${m.id} message=${m} app=${app} actions=${actions} selected=${ui.selected === m.id && ui.list === "queue"} />`)}
        </ol>`}
  </section>`;
}

function QueueItem({ message, app, actions, selected }) {
  const ui = app.ui;
  const form = ui.form && ui.form.id === message.id && ui.list === "queue" ? ui.form : null;
  const parent = message.parent_id ? app.state.messages[message.parent_id] : null;
  return html`<li id=${`queue-${message.id}`} class=${`item${selected ? " selected" : ""}`} tabindex="-1"
      aria-current=${selected ? "true" : undefined}
      onClick=${(e) => actions.select("queue", message.id, e)}>
    ${parent && html`<p class="context">${t(parent.kind === "topic" ? "mod.under_topic" : "mod.reply_to", { excerpt: excerpt(parent.body, 50) })}</p>`}
    <${Body} message=${message} />
    <${AuthorLine} message=${message} />
    <div class="actions">
      <button type="button" class="primary small" onClick=${() => actions.moderate(message, "approve")}>${t("mod.approve")} <kbd aria-hidden="true">A</kbd></button>
      <button type="button" class="danger small" onClick=${() => actions.openForm("queue", message, "reject")}>${t("mod.reject")} <kbd aria-hidden="true">R</kbd></button>
    </div>
    ${form && form.type === "reject" && html`<${ReasonForm} form=${form} actions=${actions} message=${message} />`}
  </li>`;
}

function ReasonForm({ form, actions, message }) {
  const id = `reason-${message.id}`;
  const action = form.type;
  return html`<form class="inline-form" onSubmit=${(e) => { e.preventDefault(); actions.submitForm(); }}>
    <div class="field">
      <label for=${id}>${t(action === "reject" ? "mod.reject_reason" : "mod.hide_reason")}</label>
      <input id=${id} type="text" maxlength="500" value=${form.reason} autocomplete="off"
        aria-describedby=${`${id}-hint`}
        onInput=${(e) => actions.setForm({ reason: e.currentTarget.value })}
        onKeyDown=${(e) => actions.reasonKey(e)} />
      <p class="hint" id=${`${id}-hint`}>${t("mod.reason_hint")}</p>
    </div>
    <div class="presets">
      ${PRESET_REASONS.map((key, i) => html`<button type="button" class="secondary small" onClick=${() => actions.setForm({ reason: t(key) })}>
        <kbd aria-hidden="true">${i + 1}</kbd> ${t(key)}</button>`)}
    </div>
    <div class="buttons">
      <button type="submit" class="danger small">${t(action === "reject" ? "mod.reject_confirm" : "mod.hide_confirm")}</button>
      <button type="button" class="secondary small" onClick=${() => actions.closeForm()}>${t("action.cancel")}</button>
    </div>
  </form>`;
}

function Messages({ app, actions }) {
  const state = app.state;
  const ui = app.ui;
  const counts = filterCounts(state);
  const all = filtered(state, ui.filter);
  // Thousands of rows would slow every update; the rest is one click away.
  const list = all.slice(0, ui.listLimit);
  return html`<section class="column messages" aria-labelledby="messages-heading">
    <div class="column-head">
      <h2 id="messages-heading">${t("messages.heading")}</h2>
      <div class="filters" role="group" aria-label=${t("messages.filter")}>
        ${Object.keys(FILTERS).map((name) => html`<button type="button" class="chip" aria-pressed=${String(ui.filter === name)}
          onClick=${() => actions.setUi({ filter: name })}>${t(`filter.${name}`)} <span class="chip-count">${counts[name]}</span></button>`)}
      </div>
      <${Notice} notice=${ui.notice} onClose=${() => actions.setUi({ notice: null })} />
    </div>
    ${list.length === 0
      ? html`<p class="empty">${t("messages.none")}</p>`
      : html`<ol class="items" aria-label=${t("messages.heading")}>
          ${list.map((m) => html`<${MessageRow} key=${m.id} message=${m} app=${app} actions=${actions} selected=${ui.selected === m.id && ui.list === "messages"} />`)}
        </ol>`}
    ${all.length > list.length && html`<button type="button" class="secondary wide" onClick=${() => actions.setUi({ listLimit: ui.listLimit + LIST_STEP })}>
      ${t("list.more", { count: all.length - list.length })}</button>`}
  </section>`;
}

function MessageRow({ message, app, actions, selected }) {
  const state = app.state;
  const spotId = state.meeting.spotlight;
  const parent = message.parent_id ? state.messages[message.parent_id] : null;
  return html`<li id=${`messages-${message.id}`} class=${`item row kind-${message.kind}${selected ? " selected" : ""}${message.id === spotId ? " is-spotlight" : ""}`}
      tabindex="-1" aria-current=${selected ? "true" : undefined}
      onClick=${(e) => actions.select("messages", message.id, e)}>
    <div class="row-main">
      <p class="row-kind">${t(`kind.${message.kind}`)}${message.kind === "question" ? html` · ${t("votes", { count: message.votes })}` : null}</p>
      <${Badges} message=${message} spotlightId=${spotId} />
      ${parent && html`<p class="context">${t(parent.kind === "topic" ? "mod.under_topic" : "mod.reply_to", { excerpt: excerpt(parent.body, 50) })}</p>`}
      <${Body} message=${message} />
      <${AuthorLine} message=${message} />
      <${Reason} message=${message} />
    </div>
    ${selected ? html`<${MessageActions} message=${message} app=${app} actions=${actions} />` : null}
  </li>`;
}

function MessageActions({ message, app, actions }) {
  const state = app.state;
  const phase = state.meeting.phase;
  const form = app.ui.form && app.ui.form.id === message.id && app.ui.list === "messages" ? app.ui.form : null;
  const isQuestion = message.kind === "question";
  const canSpotlight = phase === "live" && message.kind !== "topic" && message.status === "visible" && message.merged_into === null;
  const answerable = isQuestion && ["live", "closed"].includes(phase) && ["visible", "hidden"].includes(message.status);
  const mergeable = isQuestion && message.merged_into === null && ["visible", "pending", "hidden"].includes(message.status);
  const participant = message.author.participant_id;
  return html`<div class="row-actions">
    ${participant && html`<p class="hint">${t("mod.participant", { id: participant })}</p>`}
    <div class="actions">
      ${message.status === "pending" && html`<button type="button" class="primary small" onClick=${() => actions.moderate(message, "approve")}>${t("mod.approve")} <kbd aria-hidden="true">A</kbd></button>`}
      ${message.status === "pending" && html`<button type="button" class="danger small" onClick=${() => actions.openForm("messages", message, "reject")}>${t("mod.reject")} <kbd aria-hidden="true">R</kbd></button>`}
      ${message.status === "rejected" && html`<button type="button" class="secondary small" onClick=${() => actions.moderate(message, "approve")}>${t("mod.approve_anyway")}</button>`}
      ${message.status === "visible" && html`<button type="button" class="danger small" onClick=${() => actions.openForm("messages", message, "hide")}>${t("mod.hide")} <kbd aria-hidden="true">H</kbd></button>`}
      ${message.status === "hidden" && html`<button type="button" class="secondary small" onClick=${() => actions.moderate(message, "restore")}>${t("mod.restore")} <kbd aria-hidden="true">U</kbd></button>`}
      ${message.status !== "rejected" && message.status !== "erased" && html`<button type="button" class="secondary small" aria-pressed=${String(message.pinned)}
        onClick=${() => actions.moderate(message, message.pinned ? "unpin" : "pin")}>${t(message.pinned ? "mod.unpin" : "mod.pin")} <kbd aria-hidden="true">P</kbd></button>`}
      ${canSpotlight && (state.meeting.spotlight === message.id
        ? html`<button type="button" class="secondary small" onClick=${() => actions.spotlight(null)}>${t("mod.clear_spotlight")} <kbd aria-hidden="true">X</kbd></button>`
        : html`<button type="button" class="spot small" onClick=${() => actions.spotlight(message.id)}>${t("mod.spotlight")} <kbd aria-hidden="true">S</kbd></button>`)}
      ${answerable && html`<button type="button" class="secondary small" onClick=${() => actions.openForm("messages", message, "answered", { state: "answered_written" })}>${t("mod.mark_written")} <kbd aria-hidden="true">W</kbd></button>`}
      ${answerable && html`<button type="button" class="secondary small" onClick=${() => actions.openForm("messages", message, "answered", { state: "answered_oral" })}>${t("mod.mark_oral")} <kbd aria-hidden="true">O</kbd></button>`}
      ${answerable && message.answered !== "unanswered" && html`<button type="button" class="link" onClick=${() => actions.answered(message, "unanswered", null)}>${t("mod.mark_unanswered")}</button>`}
      ${mergeable && html`<button type="button" class="secondary small" onClick=${() => actions.openForm("messages", message, "merge")}>${t("mod.merge")} <kbd aria-hidden="true">M</kbd></button>`}
    </div>
    ${form && (form.type === "hide" || form.type === "reject") && html`<${ReasonForm} form=${form} actions=${actions} message=${message} />`}
    ${form && form.type === "merge" && html`<${MergeForm} form=${form} message=${message} state=${state} actions=${actions} />`}
    ${form && form.type === "answered" && html`<${AnsweredForm} form=${form} message=${message} state=${state} actions=${actions} />`}
  </div>`;
}

function MergeForm({ form, message, state, actions }) {
  const targets = questionsByVotes(state).filter((m) => m.id !== message.id);
  const id = `merge-${message.id}`;
  return html`<form class="inline-form" onSubmit=${(e) => { e.preventDefault(); actions.submitForm(); }}>
    <div class="field">
      <label for=${id}>${t("mod.merge_into")}</label>
      <select id=${id} value=${form.into || ""} onChange=${(e) => actions.setForm({ into: e.currentTarget.value })} onKeyDown=${(e) => actions.formKey(e)}>
        <option value="">${t("mod.merge_choose")}</option>
        ${targets.map((m) => html`<option value=${String(m.id)}>${`${excerpt(m.body, 70)} (${t("votes", { count: m.votes })})`}</option>`)}
      </select>
      <p class="hint">${t("mod.merge_hint")}</p>
    </div>
    <div class="buttons">
      <button type="submit" class="primary small" disabled=${!form.into}>${t("mod.merge_confirm")}</button>
      <button type="button" class="secondary small" onClick=${() => actions.closeForm()}>${t("action.cancel")}</button>
    </div>
  </form>`;
}

function speakerNames(state) {
  const names = new Set();
  for (const m of Object.values(state.messages)) {
    if (m.author.role === "speaker" && m.author.name) names.add(m.author.name);
    if (m.answered_by) names.add(m.answered_by);
  }
  return [...names].sort();
}

function AnsweredForm({ form, message, state, actions }) {
  const id = `by-${message.id}`;
  return html`<form class="inline-form" onSubmit=${(e) => { e.preventDefault(); actions.submitForm(); }}>
    <fieldset class="segmented">
      <legend>${t("mod.answered_how")}</legend>
      ${["answered_written", "answered_oral"].map((value) => html`<label>
        <input type="radio" name=${`answered-${message.id}`} value=${value} checked=${form.state === value}
          onChange=${() => actions.setForm({ state: value })} />
        <span>${t(`mod.${value}`)}</span>
      </label>`)}
    </fieldset>
    <div class="field">
      <label for=${id}>${t("mod.answered_by")}</label>
      <input id=${id} type="text" maxlength="60" list=${`${id}-names`} value=${form.by || ""} autocomplete="off"
        onInput=${(e) => actions.setForm({ by: e.currentTarget.value })} onKeyDown=${(e) => actions.formKey(e)} />
      <datalist id=${`${id}-names`}>${speakerNames(state).map((name) => html`<option value=${name}></option>`)}</datalist>
    </div>
    <div class="buttons">
      <button type="submit" class="primary small">${t("mod.answered_confirm")}</button>
      <button type="button" class="secondary small" onClick=${() => actions.closeForm()}>${t("action.cancel")}</button>
    </div>
  </form>`;
}

function SidePanel({ app, actions }) {
  const state = app.state;
  const ui = app.ui;
  const meeting = state.meeting;
  const current = spotlight(state);
  return html`<aside class="column side" aria-label=${t("side.label")}>
    <section class="panel" aria-labelledby="spot-heading">
      <h2 id="spot-heading">${t("spotlight.heading")}</h2>
      ${current
        ? html`<div class="spot-now"><p class="body">${current.body}</p><p class="meta">${authorName(current)} · ${t("votes", { count: current.votes })}</p>
            <button type="button" class="secondary small" onClick=${() => actions.spotlight(null)}>${t("mod.clear_spotlight")}</button></div>`
        : html`<p class="empty">${meeting.phase === "live" ? t("spotlight.none") : t("spotlight.only_live")}</p>`}
    </section>
    <section class="panel" aria-labelledby="phase-heading">
      <h2 id="phase-heading">${t("side.phase")}</h2>
      <p>${t("side.phase_now")} <strong>${t(`phase.${meeting.phase}`)}</strong></p>
      <div class="buttons">
        ${PHASE_MOVES[meeting.phase].map((phase) => html`<button type="button" class="secondary small" onClick=${() => actions.askPhase(phase)}>${t(`side.to_${phase}`)}</button>`)}
      </div>
      ${ui.phaseConfirm && html`<div class="confirm-box" role="group" aria-labelledby="phase-confirm">
        <p id="phase-confirm">${t(`side.confirm_${ui.phaseConfirm}`)}</p>
        <div class="buttons">
          <button type="button" class="primary small" onClick=${() => actions.phase(ui.phaseConfirm)}>${t("side.confirm_yes")}</button>
          <button type="button" class="secondary small" onClick=${() => actions.setUi({ phaseConfirm: null })}>${t("action.cancel")}</button>
        </div>
      </div>`}
    </section>
    <section class="panel" aria-labelledby="presence-heading">
      <h2 id="presence-heading">${t("side.presence")}</h2>
      <${Presence} presence=${state.presence} detailed=${true} />
    </section>
    <details class="panel" open=${ui.openPanels.floor} onToggle=${(e) => actions.panel("floor", e.currentTarget.open)}>
      <summary class="panel-title">${t("floor.heading")}</summary>
      <${FloorForm} app=${app} actions=${actions} />
    </details>
    <details class="panel" open=${ui.openPanels.topic} onToggle=${(e) => actions.panel("topic", e.currentTarget.open)}>
      <summary class="panel-title">${t("topic.new_heading")}</summary>
      <form onSubmit=${(e) => { e.preventDefault(); actions.createTopic(); }}>
        <div class="field">
          <label for="topic-title">${t("topic.new_label")}</label>
          <input id="topic-title" type="text" maxlength=${meeting.settings.max_body} value=${ui.topicText}
            onInput=${(e) => actions.setUi({ topicText: e.currentTarget.value })} />
        </div>
        <button type="submit" class="primary small" disabled=${!ui.topicText.trim()}>${t("topic.new_submit")}</button>
      </form>
    </details>
    <details class="panel" open=${ui.openPanels.share} onToggle=${(e) => actions.panel("share", e.currentTarget.open)}>
      <summary class="panel-title">${t("share.heading")}</summary>
      <${Share} meeting=${meeting} actions=${actions} />
    </details>
    <details class="panel" open=${ui.openPanels.export} onToggle=${(e) => actions.panel("export", e.currentTarget.open)}>
      <summary class="panel-title">${t("export.heading")}</summary>
      <p class="hint">${t("export.hint")}</p>
      <div class="buttons">
        ${["md", "csv", "json"].map((format) => html`<button type="button" class="secondary small" onClick=${() => actions.exportMinutes(format)}>${t(`export.${format}`)}</button>`)}
      </div>
    </details>
    <details class="panel" open=${ui.openPanels.settings} onToggle=${(e) => actions.panel("settings", e.currentTarget.open)}>
      <summary class="panel-title">${t("settings.heading")}</summary>
      <${SettingsForm} app=${app} actions=${actions} />
    </details>
  </aside>`;
}

function FloorForm({ app, actions }) {
  const state = app.state;
  const floor = app.ui.floor;
  const meeting = state.meeting;
  const live = meeting.phase === "live";
  const parents = floor.kind === "question" ? topics(state) : questionsByVotes(state);
  return html`<form onSubmit=${(e) => { e.preventDefault(); actions.logFloor(); }}>
    ${!live && html`<p class="hint">${t("floor.only_live")}</p>`}
    <div class="field">
      <label for="floor-kind">${t("floor.kind")}</label>
      <select id="floor-kind" value=${floor.kind} onChange=${(e) => actions.setFloor({ kind: e.currentTarget.value, parent: "" })}>
        ${["question", "comment", "answer"].map((kind) => html`<option value=${kind}>${t(`floor.kind_${kind}`)}</option>`)}
      </select>
    </div>
    <div class="field">
      <label for="floor-parent">${t(floor.kind === "question" ? "floor.topic" : "floor.parent")}</label>
      <select id="floor-parent" value=${floor.parent} onChange=${(e) => actions.setFloor({ parent: e.currentTarget.value })}>
        <option value="">${t(floor.kind === "question" ? "floor.no_topic" : "floor.choose_question")}</option>
        ${parents.map((m) => html`<option value=${String(m.id)}>${excerpt(m.body, 60)}</option>`)}
      </select>
    </div>
    <div class="field">
      <label for="floor-speaker">${t("floor.speaker")}</label>
      <input id="floor-speaker" type="text" maxlength="60" value=${floor.speaker} autocomplete="off"
        onInput=${(e) => actions.setFloor({ speaker: e.currentTarget.value })} />
    </div>
    <${TextBox} id="floor-body" label=${t("floor.body")} value=${floor.body} max=${meeting.settings.max_body} rows=${3}
      onInput=${(body) => actions.setFloor({ body })} />
    <button type="submit" class="primary small" disabled=${!live || !floor.body.trim() || (floor.kind !== "question" && !floor.parent)}>${t("floor.submit")}</button>
  </form>`;
}

function Share({ meeting, actions }) {
  const origin = location.origin;
  const links = [
    ["share.join_link", `${origin}/j/${meeting.code}`],
    ["share.citizen_link", `${origin}/m/${encodeURIComponent(meeting.id)}`],
    ["share.screen_link", `${origin}/m/${encodeURIComponent(meeting.id)}/screen`],
  ];
  return html`<div class="share">
    <p class="share-code"><span>${t("share.code")}</span> <strong>${meeting.code}</strong></p>
    <img class="qr" src=${`/api/meetings/${encodeURIComponent(meeting.id)}/qr.svg`} alt=${t("share.qr_alt", { code: meeting.code })} width="160" height="160" />
    <ul class="links">
      ${links.map(([label, url]) => html`<li>
        <span class="link-label">${t(label)}</span>
        <a href=${url} target="_blank" rel="noopener">${url}</a>
        <button type="button" class="link" onClick=${() => actions.copy(url)}>${t("share.copy")}</button>
      </li>`)}
    </ul>
    ${!meeting.settings.public && html`<p class="hint">${t("share.screen_key")}</p>`}
  </div>`;
}

function SettingsForm({ app, actions }) {
  const draft = app.ui.settings;
  const meeting = app.state.meeting;
  return html`<form onSubmit=${(e) => { e.preventDefault(); actions.saveSettings(); }}>
    <div class="field">
      <label for="settings-title">${t("settings.title")}</label>
      <input id="settings-title" type="text" maxlength="200" value=${draft.title ?? meeting.title}
        onInput=${(e) => actions.setSettings({ title: e.currentTarget.value })} />
    </div>
    <div class="field">
      <label for="settings-basis">${t("settings.basis")}</label>
      <p class="hint" id="settings-basis-hint">${t("settings.basis_hint")}</p>
      <textarea id="settings-basis" rows="8" aria-describedby="settings-basis-hint" value=${draft.basis ?? meeting.basis}
        onInput=${(e) => actions.setSettings({ basis: e.currentTarget.value })}></textarea>
    </div>
    <details class="preview">
      <summary>${t("settings.preview")}</summary>
      <${Markdown} source=${draft.basis ?? meeting.basis} topLevel=${3} />
    </details>
    <div class="field">
      <label for="settings-moderation">${t("settings.moderation")}</label>
      <select id="settings-moderation" value=${draft.moderation ?? meeting.settings.moderation}
        onChange=${(e) => actions.setSettings({ moderation: e.currentTarget.value })}>
        <option value="pre">${t("settings.moderation_pre")}</option>
        <option value="post">${t("settings.moderation_post")}</option>
      </select>
    </div>
    <div class="field check">
      <input id="settings-voting" type="checkbox" checked=${draft.voting ?? meeting.settings.voting}
        onChange=${(e) => actions.setSettings({ voting: e.currentTarget.checked })} />
      <label for="settings-voting">${t("settings.voting")}</label>
    </div>
    <button type="submit" class="primary small">${t("settings.save")}</button>
  </form>`;
}

