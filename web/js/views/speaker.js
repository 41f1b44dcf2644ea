// The speaker's tablet: the spotlight, the questions by votes, and writing
// official answers (also after the meeting has closed). Renders only.

import { html } from "../html.js";
import { t } from "../i18n.js";
import { questionsByVotes, spotlight, childrenIndex } from "../tree.js";
import { TopBar, Badges, Body, AuthorLine, TextBox, Notice, authorName } from "./common.js";

const ANSWER_PHASES = new Set(["live", "closed"]);

export function SpeakerView(app, actions) {
  const state = app.state;
  const ui = app.ui;
  if (!state.meeting) {
    return html`<${TopBar} app=${app} role="speaker" />
      <main id="main" tabindex="-1" class="center-page"><${Notice} notice=${ui.notice} />${!ui.notice && html`<p class="loading">${t("loading")}</p>`}</main>`;
  }
  const current = spotlight(state);
  const questions = questionsByVotes(state, { answered: ui.filter });
  const selected = ui.selected !== null ? state.messages[ui.selected] : null;
  return html`<${TopBar} app=${app} role="speaker" />
    <main id="main" tabindex="-1" class="speaker">
      <section class="column speaker-queue" aria-labelledby="speaker-queue-heading">
        ${current && html`<div class="spotlight-card">
          <h2>${t("spotlight.heading")}</h2>
          <p class="body">${current.body}</p>
          <p class="meta">${authorName(current)} · ${t("votes", { count: current.votes })}</p>
          <button type="button" class="secondary small" onClick=${() => actions.select(current.id)}>${t("speaker.open")}</button>
        </div>`}
        <h2 id="speaker-queue-heading">${t("speaker.queue")}</h2>
        <fieldset class="segmented">
          <legend class="visually-hidden">${t("speaker.show")}</legend>
          ${["unanswered", "answered", "all"].map((filter) => html`<label>
            <input type="radio" name="speaker-filter" value=${filter} checked=${ui.filter === filter}
              onChange=${() => actions.setUi({ filter })} />
            <span>${t(`speaker.filter_${filter}`)}</span>
          </label>`)}
        </fieldset>
        ${questions.length === 0
          ? html`<p class="empty">${t("speaker.none")}</p>`
          : html`<ol class="speaker-list">
              ${questions.map((m) => html`<li key=${m.id}>
                <button type="button" class=${`question-button${ui.selected === m.id ? " selected" : ""}${m.id === state.meeting.spotlight ? " is-spotlight" : ""}`}
                  aria-current=${ui.selected === m.id ? "true" : undefined} onClick=${() => actions.select(m.id)}>
                  <span class="big-votes"><strong>${m.votes}</strong> <span>${t("speaker.votes_short", { count: m.votes })}</span></span>
                  <span class="question-text">
                    <span class="question-body">${m.body}</span>
                    <span class="question-meta">${authorName(m)}${m.source === "floor" ? ` · ${t("badge.floor")}` : ""}${m.answered !== "unanswered" ? ` · ${t(m.answered === "answered_oral" ? "badge.answered_oral" : "badge.answered_written")}` : ""}</span>
                  </span>
                </button>
              </li>`)}
            </ol>`}
      </section>
      <section class="column speaker-detail" aria-labelledby="speaker-detail-heading">
        <h2 id="speaker-detail-heading" tabindex="-1">${t("speaker.selected")}</h2>
        <${Notice} notice=${ui.notice} onClose=${() => actions.setUi({ notice: null })} />
        ${selected ? html`<${Detail} app=${app} message=${selected} actions=${actions} />` : html`<p class="empty">${t("speaker.pick")}</p>`}
      </section>
    </main>`;
}

function Thread({ index, id }) {
  const children = (index.get(id) || []).filter((m) => m.status === "visible" || m.mine);
  if (!children.length) return null;
  children.sort((a, b) => Number(b.kind === "answer") - Number(a.kind === "answer") || (a.created_at < b.created_at ? -1 : 1));
  return html`<ol class="replies">
    ${children.map((m) => html`<li key=${m.id} class=${`message kind-${m.kind}`}>
      <article aria-label=${t(`kind.${m.kind}`)}>
        <${Badges} message=${m} spotlightId=${null} />
        <${Body} message=${m} />
        <${AuthorLine} message=${m} />
      </article>
      <${Thread} index=${index} id=${m.id} />
    </li>`)}
  </ol>`;
}

function Detail({ app, message, actions }) {
  const state = app.state;
  const ui = app.ui;
  const phase = state.meeting.phase;
  const canAnswer = ANSWER_PHASES.has(phase) && ["visible", "hidden"].includes(message.status);
  const index = childrenIndex(state);
  return html`<article class="detail" aria-label=${t("kind.question")}>
    <${Badges} message=${message} spotlightId=${state.meeting.spotlight} />
    <p class="detail-body">${message.body}</p>
    <${AuthorLine} message=${message} />
    <p class="detail-votes">${t("votes", { count: message.votes })}</p>
    <h3>${t("speaker.thread")}</h3>
    ${(index.get(message.id) || []).length ? html`<${Thread} index=${index} id=${message.id} />` : html`<p class="empty">${t("speaker.no_replies")}</p>`}
    ${phase === "closed" && html`<p class="phase-help">${t("speaker.followup")}</p>`}
    ${canAnswer
      ? html`<form class="answer-form" onSubmit=${(e) => { e.preventDefault(); actions.answer(message); }}>
          <${TextBox} id="answer-body" label=${t("speaker.answer_label")} value=${ui.answerText} max=${state.meeting.settings.max_body}
            rows=${5} onInput=${(answerText) => actions.setUi({ answerText })} />
          <div class="buttons">
            <button type="submit" class="primary" disabled=${!ui.answerText.trim() || [...ui.answerText].length > state.meeting.settings.max_body}>${t("speaker.publish")}</button>
            ${message.answered === "unanswered"
              ? html`<button type="button" class="secondary" onClick=${() => actions.answered(message, "answered_oral")}>${t("speaker.mark_oral")}</button>`
              : html`<button type="button" class="secondary" onClick=${() => actions.answered(message, "unanswered")}>${t("speaker.mark_unanswered")}</button>`}
          </div>
        </form>`
      : html`<p class="hint">${t("speaker.answer_when_live")}</p>`}
  </article>`;
}
