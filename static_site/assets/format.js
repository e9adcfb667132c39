// Money and dates for people: amounts arrive as integer minor units (cents), dates as ISO 8601 UTC.

const formatters = new Map();
// Typeset minus: "−$2.50" reads as minus, where a hyphen can be read as a dash or lost.
const MINUS = "\u2212";

function currencyFormat(currency, signDisplay) {
  const code = String(currency || "usd").toUpperCase();
  const key = `${code} ${signDisplay}`;
  if (!formatters.has(key)) {
    let format;
    try {
      format = new Intl.NumberFormat(undefined, { style: "currency", currency: code, signDisplay });
    } catch {
      format = null;
    }
    formatters.set(key, format);
  }
  return [code, formatters.get(key)];
}

function formatMoney(minorUnits, currency, signDisplay) {
  const [code, format] = currencyFormat(currency, signDisplay);
  if (!format) {
    const sign = minorUnits < 0 ? MINUS : signDisplay === "exceptZero" && minorUnits > 0 ? "+" : "";
    return `${sign}${(Math.abs(minorUnits) / 100).toFixed(2)} ${code}`;
  }
  const value = minorUnits / 10 ** format.resolvedOptions().maximumFractionDigits;
  return format
    .formatToParts(value)
    .map((part) => (part.type === "minusSign" && part.value === "-" ? MINUS : part.value))
    .join("");
}

/** 6000 usd -> "$60.00", -250 -> "−$2.50"; the currency's own number of decimals (JPY has none). */
export function money(minorUnits, currency) {
  return formatMoney(minorUnits, currency, "auto");
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
