// Money and dates for people: amounts arrive as integer minor units (cents), dates as ISO 8601 UTC.

// The largest amount of minor units any route takes or answers: wallet.amounts.MAX_AMOUNT, 2^53 - 1,
// the largest integer JavaScript holds exactly. tests/unit/test_amounts.py keeps the two equal.
export const MAX_AMOUNT = 9007199254740991;

const formatters = new Map();
// Typeset minus: "−$2.50" reads as minus, where a hyphen can be read as a dash or lost.
const MINUS = "\u2212";

function currencyFormat(currency, signDisplay, trailingZeroDisplay = "auto") {
  const code = String(currency || "usd").toUpperCase();
  const key = `${code} ${signDisplay} ${trailingZeroDisplay}`;
  if (!formatters.has(key)) {
    let format;
    try {
      format = new Intl.NumberFormat(undefined, { style: "currency", currency: code, signDisplay, trailingZeroDisplay });
    } catch {
      format = null;
    }
    formatters.set(key, format);
  }
  return [code, formatters.get(key)];
}

/** `minorUnits` as an exact decimal string with `digits` decimals: 123456 -> "1234.56", no float division. */
function decimal(minorUnits, digits) {
  const text = String(Math.abs(minorUnits)).padStart(digits + 1, "0");
  const sign = minorUnits < 0 ? "-" : "";
  return digits ? `${sign}${text.slice(0, -digits)}.${text.slice(-digits)}` : `${sign}${text}`;
}

function formatMoney(minorUnits, currency, signDisplay, trailingZeroDisplay = "auto") {
  // Past the bound a number is no longer exact in JavaScript: say so rather than show a rounded amount.
  if (!Number.isInteger(minorUnits) || Math.abs(minorUnits) > MAX_AMOUNT) {
    const bound = formatMoney(minorUnits < 0 ? -MAX_AMOUNT : MAX_AMOUNT, currency, signDisplay);
    return Number.isInteger(minorUnits) ? `${minorUnits < 0 ? "below" : "over"} ${bound}` : "—";
  }
  const [code, format] = currencyFormat(currency, signDisplay, trailingZeroDisplay);
  if (!format) {
    const sign = minorUnits < 0 ? MINUS : signDisplay === "exceptZero" && minorUnits > 0 ? "+" : "";
    return `${sign}${decimal(Math.abs(minorUnits), 2)} ${code}`;
  }
  // A decimal string is formatted exactly (Intl.NumberFormat v3); a float division would round.
  const value = decimal(minorUnits, format.resolvedOptions().maximumFractionDigits);
  return format
    .formatToParts(value)
    .map((part) => (part.type === "minusSign" && part.value === "-" ? MINUS : part.value))
    .join("");
}

/** 6000 usd -> "$60.00", -250 -> "−$2.50"; the currency's own number of decimals (JPY has none). */
export function money(minorUnits, currency) {
  return formatMoney(minorUnits, currency, "auto");
}

/** An amount's text as nodes that may wrap only between its digit groups, never between a sign or a
 * currency symbol and the number: "−$1,234.50" breaks as "−$1," "234." "50". */
export function wrappable(text) {
  return text
    .split(/(?<=\d\D)(?=\d)/u)
    .flatMap((part, index) => (index ? [document.createElement("wbr"), part] : [part]));
}

/** A round amount without its zero cents, as packs are named: 1000 -> "$10", 1250 -> "$12.50". */
export function roundMoney(minorUnits, currency) {
  return formatMoney(minorUnits, currency, "auto", "stripIfInteger");
}

/** What a change did to a balance: 1000 -> "+$10.00", -250 -> "−$2.50", 0 -> "$0.00". */
export function signedMoney(minorUnits, currency) {
  return formatMoney(minorUnits, currency, "exceptZero");
}

const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

/** `{day, time}` in the reader's time zone, or null for a date that does not parse. */
export function dateParts(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return null;
  return { day: dayFormat.format(date), time: timeFormat.format(date) };
}

const momentFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  day: "numeric",
  month: "short",
  hour: "2-digit",
  minute: "2-digit",
});

/** A moment soon, to the minute, in the reader's time zone ("Thu 5 Dec, 14:03" in en-GB), rounded up so
 * the time shown is never before it; null for a date that does not parse. */
export function minuteAfter(iso) {
  // new Date(null) is 1970, not "no date": only a string is a date here.
  const time = typeof iso === "string" ? new Date(iso).getTime() : Number.NaN;
  if (Number.isNaN(time)) return null;
  return momentFormat.format(new Date(Math.ceil(time / 60000) * 60000));
}
