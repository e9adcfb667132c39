// Money and dates for people: amounts arrive as integer minor units (cents), dates as ISO 8601 UTC.

const formatters = new Map();

function currencyFormat(currency) {
  const code = String(currency || "usd").toUpperCase();
  if (!formatters.has(code)) {
    let format;
    try {
      format = new Intl.NumberFormat(undefined, { style: "currency", currency: code });
    } catch {
      format = null;
    }
    formatters.set(code, format);
  }
  return [code, formatters.get(code)];
}

/** 6000 usd -> "$60.00"; the currency's own number of decimals (JPY has none). */
export function money(minorUnits, currency) {
  const [code, format] = currencyFormat(currency);
  if (!format) return `${(minorUnits / 100).toFixed(2)} ${code}`;
  return format.format(minorUnits / 10 ** format.resolvedOptions().maximumFractionDigits);
}

const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

/** `{day, time}` in the reader's time zone, or null for a date that does not parse. */
export function dateParts(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return null;
  return { day: dayFormat.format(date), time: timeFormat.format(date) };
}
