// HTTP helpers and the participant session of a page (its token).
//
// Role keys come in the URL fragment (#key=...), which never reaches a
// server log; the page trades the key for a token once and then removes the
// fragment from the address bar. Citizens keep their token in localStorage
// (they come back days later to read the answers); staff keep theirs in
// sessionStorage, so that a shared municipal laptop forgets it with the tab.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

export async function api(path, { method = "GET", token = null, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network");
  }
  const type = response.headers.get("content-type") || "";
  const data = type.startsWith("application/json") ? await response.json() : await response.text();
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || "http", error.message);
  }
  return data;
}

/** The meeting id of the page: /m/{id} or /m/{id}/{role}. */
export function meetingIdFromPath() {
  const parts = location.pathname.split("/").filter(Boolean);
  return parts[0] === "m" && parts[1] ? decodeURIComponent(parts[1]) : null;
}

/** The role key in the fragment, removed from the address bar at once. */
export function takeKeyFromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const key = params.get("key");
  if (key) history.replaceState(null, "", location.pathname + location.search);
  return key;
}

function storageFor(role) {
  return role === "citizen" ? localStorage : sessionStorage;
}

function storageKey(meetingId, role) {
  return `ting.session.${meetingId}.${role}`;
}

export function loadSession(meetingId, role) {
  try {
    const raw = storageFor(role).getItem(storageKey(meetingId, role));
    const session = raw ? JSON.parse(raw) : null;
    return session && typeof session.token === "string" ? session : null;
  } catch {
    return null;
  }
}

export function saveSession(meetingId, role, session) {
  try {
    storageFor(role).setItem(storageKey(meetingId, role), JSON.stringify(session));
  } catch {
    // Storage full or disabled: the session lasts as long as the page.
  }
}

export function forgetSession(meetingId, role) {
  try {
    storageFor(role).removeItem(storageKey(meetingId, role));
  } catch {
    // Nothing stored.
  }
}

/** POST /join; returns and stores {participant_id, token, role, name, in_room}. */
export async function join(meetingId, { key, name, inRoom = false, role = "citizen" }) {
  const body = { in_room: Boolean(inRoom) };
  if (key) body.key = key;
  if (name) body.name = name;
  const joined = await api(`/api/meetings/${encodeURIComponent(meetingId)}/join`, {
    method: "POST",
    body,
  });
  const session = { ...joined, name: name || null, in_room: Boolean(inRoom) };
  saveSession(meetingId, role, session);
  return session;
}

/** A random id for a post, kept with it until the server has acknowledged it. */
export function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
