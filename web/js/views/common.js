// Pieces every page shows: the top bar, connection state, language switch,
// badges of a message, the basis, a text box with a character count.

import { html, Component, createRef } from "../html.js";
import { t, language, setLanguage, LANGUAGES, formatTime } from "../i18n.js";
import { renderMarkdown } from "../markdown.js";
import { audience } from "../tree.js";

export function PhaseChip({ phase }) {
  if (!phase) return null;
  return html`<span class=${`phase phase-${phase}`}>${t(`phase.${phase}`)}</span>`;
}

export function ConnectionStatus({ status }) {
  // role=status is a polite live region: the change is announced, once.
  return html`<p class=${`conn conn-${status}`} role="status">
    <span class="conn-dot" aria-hidden="true"></span>${t(`conn.${status}`)}
  </p>`;
}

export function LanguageSwitch() {
  const current = language();
  return html`<div class="lang-switch" role="group" aria-label=${t("lang.label")}>
    ${LANGUAGES.map(
      (lang) => html`<button type="button" lang=${lang} aria-pressed=${String(lang === current)}
        onClick=${() => setLanguage(lang, { remember: true })}>${t(`lang.${lang}`)}</button>`,
    )}
  </div>`;
}

/** The first stop of the Tab key: straight past the top bar to the content. */
export function SkipLink() {
  return html`<a class="skip-link" href="#main">${t("skip")}</a>`;
}

export function TopBar({ app, role, children }) {
  const meeting = app.state.meeting;
  return html`<${SkipLink} /><header class="topbar">
    <div class="topbar-title">
      <p class="brand"><span class="brand-mark" aria-hidden="true">T</span> Ting · ${t(`role.${role}`)}</p>
      <h1>${meeting ? meeting.title : t("loading")}</h1>
    </div>
    <div class="topbar-side">
      ${meeting && html`<${PhaseChip} phase=${meeting.phase} />`}
      ${children}
      <${ConnectionStatus} status=${app.status} />
      <${LanguageSwitch} />
    </div>
  </header>`;
}

export function authorName(message) {
  if (message.mine && message.source !== "floor") {
    return message.author.name ? t("author.you_named", { name: message.author.name }) : t("author.you");
  }
  if (message.source === "floor" && !message.author.name) return t("author.floor");
  return message.author.name || t("author.anonymous");
}

export function AuthorLine({ message }) {
  const role = message.author.role;
  return html`<p class="meta">
    <span class="author">${authorName(message)}</span>
    ${role === "speaker" || role === "moderator"
      ? html`<span class="role-tag">${t(`role.${role}`)}</span>`
      : null}
    <span class="sep" aria-hidden="true">·</span>
    <time datetime=${message.created_at}>${formatTime(message.created_at)}</time>
  </p>`;
}

/** The status marks of a message; `spotlightId` marks the current spotlight. */
export function Badges({ message, spotlightId }) {
  const badges = [];
  if (message.id === spotlightId) badges.push(["spotlight", t("badge.spotlight")]);
  if (message.source === "floor") badges.push(["floor", t("badge.floor")]);
  if (message.pinned) badges.push(["pinned", t("badge.pinned")]);
  if (message.kind === "answer") badges.push(["answer", t("badge.answer")]);
  if (message.answered === "answered_written") {
    badges.push(["answered", message.answered_by ? t("badge.answered_written_by", { name: message.answered_by }) : t("badge.answered_written")]);
  } else if (message.answered === "answered_oral") {
    badges.push(["answered", message.answered_by ? t("badge.answered_oral_by", { name: message.answered_by }) : t("badge.answered_oral")]);
  }
  if (message.status === "pending") badges.push(["pending", t("badge.pending")]);
  if (message.status === "hidden") badges.push(["hidden", t("badge.hidden")]);
  if (message.status === "rejected") badges.push(["rejected", t("badge.rejected")]);
  if (message.status === "withdrawn") badges.push(["withdrawn", t("badge.withdrawn")]);
  if (message.status === "erased") badges.push(["withdrawn", t("badge.erased")]);
  if (message.merged_into !== null) badges.push(["merged", t("badge.merged")]);
  if (!badges.length) return null;
  return html`<ul class="badges" aria-label=${t("badge.label")}>
    ${badges.map(([kind, text]) => html`<li class=${`badge badge-${kind}`}>${text}</li>`)}
  </ul>`;
}

/** The body of a message, or what stands in for it. User text: text nodes only. */
export function Body({ message }) {
  if (message.status === "withdrawn" && !message.body) return html`<p class="body placeholder">${t("placeholder.withdrawn")}</p>`;
  if (message.status === "hidden" && !message.body) return html`<p class="body placeholder">${t("placeholder.hidden")}</p>`;
  if (message.status === "erased") return html`<p class="body placeholder">${t("placeholder.erased")}</p>`;
  return html`<p class="body">${message.body}</p>`;
}

export function Reason({ message }) {
  if (!message.reason || !["hidden", "rejected"].includes(message.status)) return null;
  return html`<p class="reason"><strong>${t("reason.label")}</strong> ${message.reason}</p>`;
}

/** Sanitised basis Markdown, put in as DOM nodes. */
export class Markdown extends Component {
  constructor() {
    super();
    this.ref = createRef();
  }

  componentDidMount() {
    this.fill();
  }

  shouldComponentUpdate(next) {
    return next.source !== this.props.source;
  }

  componentDidUpdate() {
    this.fill();
  }

  fill() {
    if (this.ref.current) this.ref.current.replaceChildren(renderMarkdown(this.props.source, this.props.topLevel || 3));
  }

  render() {
    return html`<div class="markdown" ref=${this.ref}></div>`;
  }
}

/** A labelled text box with a live count against the limit. */
export function TextBox({ id, label, value, max, onInput, rows = 3, hint, required = true }) {
  const length = [...(value || "")].length;
  const over = length > max;
  const near = !over && length > max * 0.9;
  const countId = `${id}-count`;
  const hintId = `${id}-hint`;
  return html`<div class="field">
    <label for=${id}>${label}</label>
    ${hint && html`<p class="hint" id=${hintId}>${hint}</p>`}
    <textarea id=${id} rows=${rows} value=${value} required=${required}
      aria-describedby=${hint ? `${hintId} ${countId}` : countId}
      aria-invalid=${over ? "true" : "false"}
      onInput=${(e) => onInput(e.currentTarget.value)}></textarea>
    <p id=${countId} class=${`count${over ? " count-over" : near ? " count-near" : ""}`}>
      ${over ? t("count.over", { count: length - max, max }) : t("count.chars", { length, max })}
    </p>
  </div>`;
}

export function Notice({ notice, onClose }) {
  if (!notice) return null;
  return html`<div class=${`notice notice-${notice.kind || "info"}`} role=${notice.kind === "error" ? "alert" : "status"}>
    <p>${notice.text}</p>
    ${onClose && html`<button type="button" class="link" onClick=${onClose}>${t("action.dismiss")}</button>`}
  </div>`;
}

export function PauseControl({ app }) {
  const paused = app.paused;
  return html`<div class="pause">
    <button type="button" class="secondary" aria-pressed=${String(paused)} onClick=${() => (paused ? app.resume() : app.pause())}>
      ${paused ? t("pause.resume") : t("pause.pause")}
    </button>
    ${paused && html`<span class="pause-note">${t("pause.waiting", { count: app.waiting })}</span>`}
  </div>`;
}

export function Presence({ presence, detailed = false }) {
  if (!presence) return null;
  const counts = audience(presence);
  const byRole = presence.by_role || {};
  return html`<dl class="presence">
    <div><dt>${t("presence.in_room")}</dt><dd>${counts.inRoom}</dd></div>
    <div><dt>${t("presence.online")}</dt><dd>${counts.remote}</dd></div>
    ${detailed && html`<div><dt>${t("presence.total")}</dt><dd>${presence.online}</dd></div>`}
    ${detailed &&
    Object.keys(byRole)
      .sort()
      .map((role) => html`<div><dt>${t(`role.${role}`)}</dt><dd>${byRole[role]}</dd></div>`)}
  </dl>`;
}

/** A message's short excerpt, for select boxes and confirmations. */
export function excerpt(text, length = 80) {
  const chars = [...(text || "")];
  return chars.length > length ? `${chars.slice(0, length - 1).join("")}…` : chars.join("");
}
