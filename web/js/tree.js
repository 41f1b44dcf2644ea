// Read-only questions about the state: the tree, orders, queues. Pure.

const byCreated = (a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id - b.id);
const byRecent = (a, b) => -byCreated(a, b);
const byVotes = (a, b) => b.votes - a.votes || byCreated(a, b);

export const SORTS = {
  popular: (a, b) => Number(b.pinned) - Number(a.pinned) || byVotes(a, b),
  recent: (a, b) => Number(b.pinned) - Number(a.pinned) || byRecent(a, b),
};

export function allMessages(state) {
  return Object.values(state.messages);
}

/** parent id (or "root") -> children, unsorted. */
export function childrenIndex(state) {
  const index = new Map();
  for (const message of Object.values(state.messages)) {
    const key = message.parent_id === null ? "root" : message.parent_id;
    if (!index.has(key)) index.set(key, []);
    index.get(key).push(message);
  }
  return index;
}

export function topics(state) {
  return allMessages(state)
    .filter((m) => m.kind === "topic" && m.status === "visible")
    .sort(byCreated);
}

export function spotlight(state) {
  const id = state.meeting && state.meeting.spotlight;
  return id === null || id === undefined ? null : state.messages[id] || null;
}

export function isOpenQuestion(m) {
  return m.kind === "question" && m.status === "visible" && m.merged_into === null;
}

/** Visible questions, most votes first: what the speaker and the screen queue show. */
export function questionsByVotes(state, { answered = "all" } = {}) {
  return allMessages(state)
    .filter(isOpenQuestion)
    .filter((m) =>
      answered === "all" ? true : answered === "unanswered" ? m.answered === "unanswered" : m.answered !== "unanswered",
    )
    .sort(byVotes);
}

/** The next questions for the big screen: unanswered, by votes, not the spotlight. */
export function nextQuestions(state, count) {
  const current = state.meeting ? state.meeting.spotlight : null;
  return questionsByVotes(state, { answered: "unanswered" })
    .filter((m) => m.id !== current)
    .slice(0, count);
}

/** The pre-moderation queue, oldest first. */
export function pendingQueue(state) {
  return allMessages(state)
    .filter((m) => m.status === "pending")
    .sort(byCreated);
}

export const FILTERS = {
  all: () => true,
  pending: (m) => m.status === "pending",
  visible: (m) => m.status === "visible",
  hidden: (m) => m.status === "hidden" || m.status === "rejected",
  answered: (m) => m.answered !== "unanswered",
  floor: (m) => m.source === "floor",
};

export function filtered(state, filter) {
  const test = FILTERS[filter] || FILTERS.all;
  return allMessages(state)
    .filter((m) => m.kind !== "topic" && test(m))
    .sort(byRecent);
}

/** How many of each filter, for the filter buttons. */
export function filterCounts(state) {
  const counts = {};
  const messages = allMessages(state).filter((m) => m.kind !== "topic");
  for (const [name, test] of Object.entries(FILTERS)) {
    counts[name] = messages.filter(test).length;
  }
  return counts;
}

/** The question a message belongs to (itself for a question). */
export function questionOf(state, message) {
  let current = message;
  while (current && current.kind !== "question" && current.parent_id !== null) {
    current = state.messages[current.parent_id];
  }
  return current && current.kind === "question" ? current : null;
}

/** The number of replies below a message, however deep. */
export function replyCount(index, id) {
  const children = index.get(id) || [];
  return children.reduce((sum, child) => sum + 1 + replyCount(index, child.id), 0);
}

/** Whether a message is worth showing to this reader in a thread. */
export function shownInThread(message, index) {
  if (message.mine) return true;
  if (message.merged_into !== null) return false;
  if (message.status === "visible") return true;
  // A placeholder keeps its place only when replies hang under it.
  return (index.get(message.id) || []).length > 0 && message.status !== "pending";
}

export function canReply(state, message) {
  const meeting = state.meeting;
  if (!meeting || message.kind === "topic" || message.merged_into !== null) return false;
  if (message.status !== "visible") return false;
  return message.depth + 1 <= meeting.settings.max_depth;
}

/**
 * Participants in the hall and following from elsewhere. Staff and screens
 * are connected too, but they are not the audience these counts are about.
 */
export function audience(presence) {
  if (!presence) return { inRoom: 0, remote: 0 };
  const byRole = presence.by_role || {};
  const people = (byRole.citizen || 0) + (byRole.viewer || 0);
  return { inRoom: presence.in_room, remote: Math.max(0, people - presence.in_room) };
}
