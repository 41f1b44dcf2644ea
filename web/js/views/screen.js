// The big screen in the hall (1920x1080, read-only): the spotlight in very
// large type, the next five questions, how to join, counts and phase.
// No scrolling and no interaction: everything fits or is clamped.

import { html } from "../html.js";
import { t } from "../i18n.js";
import { spotlight, nextQuestions, audience } from "../tree.js";
import { authorName } from "./common.js";

export const NEXT_COUNT = 5;

/** A size class by length, so that a long question still fits its box. */
function sizeClass(text) {
  const length = [...text].length;
  if (length <= 50) return "size-xl";
  if (length <= 110) return "size-l";
  if (length <= 180) return "size-m";
  return "size-s";
}

export function ScreenView(app) {
  const state = app.state;
  const meeting = state.meeting;
  if (!meeting) {
    return html`<main id="main" tabindex="-1" class="screen screen-loading">
      <p class="screen-status">${app.ui.notice ? app.ui.notice.text : t(`conn.${app.status}`)}</p>
    </main>`;
  }
  const current = spotlight(state);
  const next = nextQuestions(state, NEXT_COUNT);
  const counts = audience(state.presence);
  return html`<main id="main" tabindex="-1" class="screen">
    <header class="screen-top">
      <h1 class="screen-title">${meeting.title}</h1>
      <p class=${`screen-phase phase-${meeting.phase}`}>${t(`phase.${meeting.phase}`)}</p>
      <p class="screen-counts">
        <span class="count-item"><strong data-count="in_room">${counts.inRoom}</strong> ${t("screen.in_room")}</span>
        <span class="count-item"><strong data-count="online">${counts.remote}</strong> ${t("screen.online")}</span>
      </p>
    </header>
    <section class="screen-spotlight" aria-labelledby="screen-spot-label" aria-live="polite">
      <h2 id="screen-spot-label" class="screen-label">${current ? t("spotlight.heading") : t("screen.ask_heading")}</h2>
      ${current
        ? html`<div class="spot-content" data-spotlight-id=${String(current.id)}>
            <p class=${`spot-body ${sizeClass(current.body)}`}>${current.body}</p>
            <p class="spot-meta">
              <span class="spot-author">${authorName(current)}</span>
              ${current.kind === "question" && html`<span class="spot-votes">${t("votes", { count: current.votes })}</span>`}
              ${current.source === "floor" && html`<span class="spot-floor">${t("badge.floor")}</span>`}
            </p>
          </div>`
        : html`<p class="spot-body size-l spot-empty">${t("screen.ask_text")}</p>`}
    </section>
    <section class="screen-next" aria-labelledby="screen-next-label">
      <h2 id="screen-next-label" class="screen-label">${t("screen.next")}</h2>
      ${next.length
        ? html`<ol class="next-list">
            ${next.map((m) => html`<li key=${m.id}>
              <span class="next-votes">${m.votes}</span>
              <span class="next-body">${m.body}</span>
              ${m.source === "floor" && html`<span class="next-floor">${t("screen.floor_short")}</span>`}
            </li>`)}
          </ol>`
        : html`<p class="next-empty">${t("screen.no_next")}</p>`}
    </section>
    <aside class="screen-join" aria-label=${t("screen.join_label")}>
      <img class="screen-qr" src=${`/api/meetings/${encodeURIComponent(meeting.id)}/qr.svg`} alt=${t("share.qr_alt", { code: meeting.code })} />
      <p class="screen-code-label">${t("screen.code")}</p>
      <p class="screen-code">${meeting.code}</p>
      <p class="screen-url"><span>${location.host}</span><span>/j/${meeting.code}</span></p>
    </aside>
    ${app.status !== "live" && html`<p class="screen-conn" role="status">${t(`conn.${app.status}`)}</p>`}
  </main>`;
}
