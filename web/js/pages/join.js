// The front page: join a meeting by its code (the QR code's /j/CODE lands here).

import { App } from "../app.js";
import { html } from "../html.js";
import { loadCatalogues, pickLanguage, setLanguage, t } from "../i18n.js";
import { api } from "../session.js";
import { LanguageSwitch, Notice } from "../views/common.js";

const params = new URLSearchParams(location.search);

function JoinByCode(app) {
  const ui = app.ui;
  return html`<header class="topbar">
      <p class="brand"><span class="brand-mark" aria-hidden="true">T</span> Ting</p>
      <div class="topbar-side"><${LanguageSwitch} /></div>
    </header>
    <main id="main" tabindex="-1" class="center-page">
      <div class="hero">
        <h1>${t("join.code_heading")}</h1>
        <p>${t("join.tagline")}</p>
      </div>
      <form class="card join-code" onSubmit=${submit} novalidate>
        <p>${t("join.code_intro")}</p>
        <div class="field">
          <label for="code">${t("join.code_label")}</label>
          <p class="hint" id="code-hint">${t("join.code_hint")}</p>
          <input id="code" type="text" inputmode="text" autocomplete="off" autocapitalize="characters"
            spellcheck="false" maxlength="16" value=${ui.code} aria-describedby="code-hint"
            aria-invalid=${ui.error ? "true" : "false"}
            onInput=${(e) => app.setUi({ code: e.currentTarget.value, error: null })} />
        </div>
        ${ui.error && html`<${Notice} notice=${{ kind: "error", text: ui.error }} />`}
        <button type="submit" class="primary wide" disabled=${ui.busy}>${t("join.code_submit")}</button>
      </form>
    </main>`;
}

const app = new App({
  root: document.getElementById("app"),
  view: JoinByCode,
  ui: { code: (params.get("code") || "").toUpperCase(), busy: false, error: null },
});

async function submit(event) {
  event.preventDefault();
  const code = app.ui.code.replace(/[^0-9a-z]/gi, "").toUpperCase();
  if (!code) {
    app.setUi({ error: t("join.code_empty") });
    return;
  }
  app.setUi({ busy: true, error: null });
  try {
    const found = await api(`/api/meetings/by-code/${encodeURIComponent(code)}`);
    location.assign(`/m/${encodeURIComponent(found.id)}`);
  } catch (error) {
    app.setUi({ busy: false, error: error.code === "not_found" ? t("join.code_unknown") : t(`error.${error.code}`) });
  }
}

async function boot() {
  await loadCatalogues();
  setLanguage(pickLanguage(null));
  document.title = `${t("join.code_heading")} · Ting`;
  app.renderNow();
}

boot();
