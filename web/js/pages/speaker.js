// The speaker page: wiring. The view is views/speaker.js.

import { announce } from "../app.js";
import { CommandError } from "../connection.js";
import { t } from "../i18n.js";
import { newClientId } from "../session.js";
import { startStaffPage } from "../staff.js";
import { SpeakerView } from "../views/speaker.js";

let app = null;
let connection = null;

function errorText(error) {
  const code = error instanceof CommandError ? error.code : "unknown";
  const text = t(`error.${code}`);
  return text === `error.${code}` ? t("error.unknown") : text;
}

async function run(type, fields, done) {
  try {
    const result = await connection.send(type, fields);
    app.setUi({ notice: { kind: "ok", text: done } });
    announce(done);
    return result;
  } catch (error) {
    app.setUi({ notice: { kind: "error", text: errorText(error) } });
    return null;
  }
}

const actions = {
  setUi: (patch) => app.setUi(patch),
  select(id) {
    if (app.ui.selected !== id) app.setUi({ selected: id, answerText: "", notice: null });
    app.renderNow();
    document.getElementById("speaker-detail-heading")?.focus();
  },
  async answer(question) {
    const body = app.ui.answerText.trim();
    if (!body) return;
    // The server makes a speaker's post an answer and marks the question answered in writing.
    if (await run("post", { parent_id: question.id, body, kind: "answer", client_id: newClientId() }, t("speaker.published"))) {
      app.setUi({ answerText: "" });
    }
  },
  async answered(question, state) {
    await run("answered", { message_id: question.id, state }, t(`done.${state}`));
  },
};

startStaffPage({
  role: "speaker",
  askName: true,
  ui: { filter: "unanswered", selected: null, answerText: "", notice: null },
  view: (a) => SpeakerView(a, actions),
  onStart(a, c) {
    app = a;
    connection = c;
  },
  onChange(a, before, after) {
    // Follow the spotlight when nothing is being written.
    const spot = after.meeting && after.meeting.spotlight;
    if (spot && (!before.meeting || before.meeting.spotlight !== spot) && !a.ui.answerText) {
      a.setUi({ selected: spot });
    }
  },
});
