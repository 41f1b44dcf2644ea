// Message catalogues: every string the pages show lives in web/i18n/*.json.
// The language is the user's own choice if they made one, else the meeting's.

export const LANGUAGES = ["da", "en"];
const CHOICE_KEY = "ting.language";
const catalogues = {};
let current = "da";
const listeners = new Set();

/** Load both catalogues once; both are small and switching must be instant. */
export async function loadCatalogues() {
  await Promise.all(
    LANGUAGES.map(async (lang) => {
      const response = await fetch(`/static/i18n/${lang}.json`, { cache: "no-cache" });
      catalogues[lang] = await response.json();
    }),
  );
}

export function userChoice() {
  // ?lang=en in the address chooses too (for a big screen nobody touches).
  const asked = new URLSearchParams(location.search).get("lang");
  if (LANGUAGES.includes(asked)) {
    setLanguage(asked, { remember: true });
    return asked;
  }
  try {
    const value = localStorage.getItem(CHOICE_KEY);
    return LANGUAGES.includes(value) ? value : null;
  } catch {
    return null;
  }
}

/** The language to show: the user's choice, else the meeting's, else the browser's. */
export function pickLanguage(meetingLanguage) {
  const chosen = userChoice();
  if (chosen) return chosen;
  if (LANGUAGES.includes(meetingLanguage)) return meetingLanguage;
  const browser = (navigator.language || "da").slice(0, 2);
  return LANGUAGES.includes(browser) ? browser : "da";
}

export function setLanguage(lang, { remember = false } = {}) {
  if (!LANGUAGES.includes(lang)) return;
  if (remember) {
    try {
      localStorage.setItem(CHOICE_KEY, lang);
    } catch {
      // Private mode: the choice holds for this page only.
    }
  }
  if (lang === current && document.documentElement.lang === lang) return;
  current = lang;
  document.documentElement.lang = lang;
  for (const listener of listeners) listener(lang);
}

export function language() {
  return current;
}

export function onLanguageChange(listener) {
  listeners.add(listener);
}

/**
 * The string for `key` with `{name}` placeholders filled in. A `count`
 * parameter picks `key.one` or `key.other` when the catalogue has them.
 */
export function t(key, params = {}) {
  const template = lookup(catalogues[current], key, params) ?? lookup(catalogues.en, key, params);
  if (template === undefined) {
    console.warn(`missing string: ${key}`);
    return key;
  }
  return template.replace(/\{(\w+)\}/g, (whole, name) =>
    name in params ? formatParam(params[name]) : whole,
  );
}

function lookup(catalogue, key, params) {
  if (!catalogue) return undefined;
  if (key in catalogue) return catalogue[key];
  if ("count" in params) return catalogue[`${key}.${params.count === 1 ? "one" : "other"}`];
  return undefined;
}

function formatParam(value) {
  return typeof value === "number" ? value.toLocaleString(locale()) : String(value);
}

export function locale() {
  return current === "da" ? "da-DK" : "en-GB";
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const now = new Date();
  const sameDay = date.toDateString() === now.toDateString();
  const options = sameDay
    ? { hour: "2-digit", minute: "2-digit" }
    : { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
  return new Intl.DateTimeFormat(locale(), options).format(date);
}
