// Text and time helpers shared by the room and the lobby. The wire carries UTC ISO 8601 times; people read them
// in their own locale and time zone.

// The characters Python's str.strip() removes, which the server uses: those str.isspace() is true for.
// JavaScript's trim() differs: it also strips U+FEFF, and keeps U+001C-U+001F and U+0085.
const SPACE = "[\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const OUTER_SPACE = new RegExp(`^${SPACE}+|${SPACE}+$`, "gu");

// A body as the server will store it: NFC-normalised, then stripped as the server strips.
export function cleanBody(text) {
  return text.normalize("NFC").replace(OUTER_SPACE, "");
}

// A message's length as the server counts it: Unicode code points of the cleaned body (docs/protocol.md,
// "Length"). `.length` would count UTF-16 units, so an emoji would count twice.
export function bodyLength(text) {
  return [...cleanBody(text)].length;
}

// A key that is equal for two moments on the same local calendar day.
export function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth() + 1}-${date.getDate()}`;
}

export function dayLabel(date, now = new Date()) {
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (dayKey(date) === dayKey(now)) return "Today";
  if (dayKey(date) === dayKey(yesterday)) return "Yesterday";
  const year = date.getFullYear() === now.getFullYear() ? undefined : "numeric";
  return date.toLocaleDateString(undefined, { weekday: "long", day: "numeric", month: "long", year });
}

export const timeLabel = (date) => date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

export const fullLabel = (date) => date.toLocaleString([], { dateStyle: "full", timeStyle: "short" });

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const UNITS = [
  ["year", 365 * 86_400],
  ["month", 30 * 86_400],
  ["week", 7 * 86_400],
  ["day", 86_400],
  ["hour", 3_600],
  ["minute", 60],
];

// "just now", "5 minutes ago", "yesterday"…: how long ago a moment was, in the largest unit that fits.
export function agoLabel(date, now = Date.now()) {
  const seconds = (date.getTime() - now) / 1000;
  if (Math.abs(seconds) < 45) return "just now";
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return relative.format(Math.sign(seconds), "minute");
}
