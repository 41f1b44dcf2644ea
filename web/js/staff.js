// What the moderator, speaker and screen pages share: trading the role key
// for a token (asking staff for the name shown with what they post), the
// connection, and a fresh join when a stored token is no longer valid.

import { App } from "./app.js";
import { html } from "./html.js";
import { Connection } from "./connection.js";
import { loadCatalogues, pickLanguage, setLanguage, t, userChoice } from "./i18n.js";
import { join, loadSession, forgetSession, meetingIdFromPath, takeKeyFromFragment } from "./session.js";
import { LanguageSwitch, Notice } from "./views/common.js";

const NAME_KEY = "ting.staff-name";

function SignIn({ ui, role, onSubmit, onName }) {
  return html`<header class="topbar">
      <p class="brand"><span class="brand-mark" aria-hidden="true">T</span> Ting · ${t(`role.${role}`)}</p>
      <div class="topbar-side"><${LanguageSwitch} /></div>
    </header>
    <main id="main" tabindex="-1" class="center-page">
      <h1>${t(`signin.${role}`)}</h1>
      ${ui.key
        ? html`<form class="card" onSubmit=${(e) => { e.preventDefault(); onSubmit(); }}>
            <div class="field">
              <label for="staff-name">${t("signin.name")}</label>
              <p class="hint" id="staff-name-hint">${t(`signin.name_hint_${role}`)}</p>
              <input id="staff-name" type="text" maxlength="60" autocomplete="name" value=${ui.name}
                aria-describedby="staff-name-hint" onInput=${(e) => onName(e.currentTarget.value)} />
            </div>
            ${ui.error && html`<${Notice} notice=${{ kind: "error", text: ui.error }} />`}
            <button type="submit" class="primary" disabled=${ui.busy}>${t("signin.submit")}</button>
          </form>`
        : html`<${Notice} notice=${{ kind: "error", text: ui.error || t("signin.need_link") }} />`}
    </main>`;
}

/**
 * Start a staff page. `askName`: ask for the name shown with posts before
 * joining (moderator, speaker); the screen joins at once.
 * `allowViewer`: without a key, read a public meeting as a viewer (the screen).
 * `view(app)` renders the live page; `onStart(app, connection, session)` wires it.
 */
export async function startStaffPage({ role, askName, allowViewer = false, ui, view, onStart, onChange }) {
  const meetingId = meetingIdFromPath();
  const root = document.getElementById("app");
  let key = takeKeyFromFragment();
  await loadCatalogues();
  setLanguage(userChoice() || pickLanguage(null));

  let storedName = "";
  try {
    storedName = localStorage.getItem(NAME_KEY) || "";
  } catch {
    // No storage: ask every time.
  }
  const signin = new App({
    root,
    view: (a) => SignIn({ ui: a.ui, role, onSubmit: signIn, onName: (name) => a.setUi({ name }) }),
    ui: { key, name: storedName, busy: false, error: null },
  });

  async function signIn() {
    signin.setUi({ busy: true, error: null });
    const name = signin.ui.name.trim();
    try {
      if (name) localStorage.setItem(NAME_KEY, name);
    } catch {
      // Not remembered; no harm.
    }
    try {
      const session = await join(meetingId, { key, name: name || null, role });
      if (session.role !== role) {
        forgetSession(meetingId, role);
        signin.setUi({ busy: false, error: t("signin.wrong_role") });
        return;
      }
      live(session);
    } catch (error) {
      signin.setUi({ busy: false, error: t(error.code === "unauthorized" ? "signin.bad_key" : `error.${error.code}`) });
    }
  }

  let app = null;
  let connection = null;

  function live(session) {
    signin.detach();
    app = new App({ root, view, ui: { ...ui, me: session } });
    let languageSet = Boolean(userChoice());
    app.onChange((before, after, frame) => {
      if (!languageSet && after.meeting) {
        languageSet = true;
        setLanguage(pickLanguage(after.meeting.language));
      }
      if (after.meeting && (!before.meeting || before.meeting.title !== after.meeting.title)) {
        document.title = `${after.meeting.title} · ${t(`role.${role}`)} · Ting`;
      }
      if (onChange) onChange(app, before, after, frame);
    });
    connection = new Connection({
      meetingId,
      token: session.token,
      getSeq: () => app.state.seq,
      onFrame: (frame) => app.receive(frame),
      onStatus: (status, detail) => {
        app.setStatus(status, detail);
        if (status === "refused") refused(detail);
      },
    });
    onStart(app, connection, session);
    connection.start();
    app.renderNow();
  }

  function refused(detail) {
    connection.stop();
    if (detail === "unauthorized") {
      forgetSession(meetingId, role);
      if (key && !askName) {
        // The screen rejoins by itself with the key it was opened with.
        join(meetingId, { key, role }).then(live, () => showSignIn(t("signin.bad_key")));
        return;
      }
      showSignIn(t(key ? "signin.expired" : "signin.need_link"));
      return;
    }
    app.setUi({ notice: { kind: "error", text: t(`refused.${detail}`) } });
  }

  function showSignIn(error) {
    if (app) app.detach();
    signin.setUi({ busy: false, error, key });
    signin.attach();
  }

  const stored = loadSession(meetingId, role);
  if (stored) {
    live(stored);
  } else if (key && !askName) {
    try {
      live(await join(meetingId, { key, role }));
    } catch (error) {
      showSignIn(t(error.code === "unauthorized" ? "signin.bad_key" : `error.${error.code}`));
    }
  } else if (!key && allowViewer) {
    // A public meeting's screen needs no key: it reads as a viewer.
    live({ token: null, role: "viewer", participant_id: null, name: null });
  } else {
    signin.renderNow();
  }
}
