// The pure state reducer: snapshot and events in, state out. No I/O, no DOM.
//
// It mirrors what the server sends each reader (docs/protocol.md): messages
// are upserted by id, `voted` is kept when an event's message carries none,
// `votes.updated` sets counts and, when personal, this reader's votes.

export const initialState = Object.freeze({
  seq: null,
  role: null,
  participantId: null,
  meeting: null,
  messages: Object.freeze({}),
  presence: null,
});

/** Apply one server frame (welcome, snapshot, event, batch, presence). */
export function reduce(state, frame) {
  switch (frame.type) {
    case "welcome":
      return { ...state, role: frame.role, participantId: frame.participant_id };
    case "snapshot":
      return fromSnapshot(state, frame);
    case "event":
      return applyEvent(state, frame);
    case "batch":
      return frame.frames.reduce(reduce, state);
    case "presence":
      return { ...state, presence: presenceOf(frame) };
    default:
      return state;
  }
}

function presenceOf(frame) {
  return { online: frame.online, in_room: frame.in_room, by_role: { ...frame.by_role } };
}

function fromSnapshot(state, frame) {
  const messages = {};
  for (const message of frame.messages) {
    messages[message.id] = { ...message, voted: Boolean(message.voted) };
  }
  return {
    ...state,
    seq: frame.seq,
    meeting: frame.meeting,
    messages,
    presence: frame.presence ? presenceOf(frame.presence) : state.presence,
  };
}

function applyEvent(state, frame) {
  // The server never repeats an event; a stale one would be a client bug,
  // and ignoring it keeps the state equal to a fresh snapshot.
  if (state.seq !== null && frame.seq <= state.seq) return state;
  const next = { ...state, seq: frame.seq };
  const data = frame.data;
  switch (frame.kind) {
    case "message.created":
    case "message.updated":
      next.messages = upsert(state.messages, data);
      break;
    case "votes.updated":
      next.messages = applyVotes(state.messages, data);
      break;
    case "spotlight.changed":
      if (state.meeting) next.meeting = { ...state.meeting, spotlight: data.message_id };
      break;
    case "meeting.updated":
      next.meeting = data;
      break;
    default:
      break;
  }
  return next;
}

function upsert(messages, data) {
  const previous = messages[data.id];
  const voted = "voted" in data ? Boolean(data.voted) : previous ? previous.voted : false;
  return { ...messages, [data.id]: { ...data, voted } };
}

function applyVotes(messages, data) {
  const out = { ...messages };
  for (const [id, votes] of Object.entries(data.counts || {})) {
    if (out[id]) out[id] = { ...out[id], votes };
  }
  for (const [id, voted] of Object.entries(data.voted || {})) {
    if (out[id]) out[id] = { ...out[id], voted: Boolean(voted) };
  }
  return out;
}

/**
 * Whether a frame concerns only this reader's own doing (their message,
 * their vote). A paused list still shows those at once.
 */
export function isPersonal(frame) {
  if (frame.type !== "event") return false;
  if (frame.kind === "votes.updated") return "voted" in frame.data;
  if (frame.kind === "message.created" || frame.kind === "message.updated") {
    return Boolean(frame.data.mine);
  }
  return false;
}

/** Apply only the personal frames of a batch (for a paused view). */
export function reducePersonal(state, frame) {
  if (frame.type === "batch") return frame.frames.reduce(reducePersonal, state);
  if (!isPersonal(frame)) return state;
  // A paused copy must not advance `seq`: it is never used to resume.
  const seq = state.seq;
  return { ...applyEvent({ ...state, seq: null }, frame), seq };
}
