// The low balance email card: one email, to the address the sign-in verified, when the balance dips below
// an amount the user chooses; off by default.
import { ApiError } from "./api.js";
import { money } from "./format.js";

// wallet.email_alerts.MIN_THRESHOLD and MAX_THRESHOLD, in minor units (credits).
const MIN_THRESHOLD = 1;
const MAX_THRESHOLD = 100_000_000;
// A dollar amount as typed: digits, and at most two decimals.
const AMOUNT = /^\d+(\.\d{1,2})?$/;
const OFFERED_NOT = "This site sends no email alerts.";

/** The amount typed in dollars, as minor units, or the error to show beside the field. */
export function parseEmailThreshold(text, currency) {
  const typed = text.trim();
  if (!typed) return { error: "Enter an amount, such as 5 for $5.00." };
  if (!AMOUNT.test(typed)) return { error: "Enter an amount in dollars and cents, such as 5 or 12.50." };
  const [whole, cents = ""] = typed.split(".");
  const minorUnits = Number(whole) * 100 + Number(cents.padEnd(2, "0"));
  if (!Number.isSafeInteger(minorUnits) || minorUnits < MIN_THRESHOLD || minorUnits > MAX_THRESHOLD) {
    return { error: `Enter an amount from ${money(MIN_THRESHOLD, currency)} to ${money(MAX_THRESHOLD, currency)}.` };
  }
  return { minorUnits };
}

function dollars(minorUnits) {
  const text = String(minorUnits).padStart(3, "0");
  const cents = text.slice(-2);
  return cents === "00" ? text.slice(0, -2) : `${text.slice(0, -2)}.${cents}`;
}

/** `api()` is the signed API of the current session; `fail(error, retry)` speaks for the page. */
export function createLowBalanceEmail({ api, fail }) {
  const byId = (id) => document.getElementById(id);
  const ui = {
    card: byId("low-balance-email"),
    status: byId("low-balance-email-status"),
    form: byId("low-balance-email-form"),
    enabled: byId("low-balance-email-enabled"),
    threshold: byId("low-balance-email-threshold"),
    thresholdError: byId("low-balance-email-threshold-error"),
    save: byId("low-balance-email-save"),
    message: byId("low-balance-email-message"),
  };
  let currency = "usd";
  let generation = 0;

  function controls() {
    return [ui.enabled, ui.threshold, ui.save];
  }

  function say(text, tone = "success") {
    ui.message.textContent = text;
    ui.message.dataset.tone = text ? tone : "";
  }

  function showError(message) {
    ui.thresholdError.textContent = message;
    ui.threshold.toggleAttribute("aria-invalid", Boolean(message));
  }

  function reset() {
    generation += 1;
    ui.card.setAttribute("aria-busy", "true");
    ui.status.textContent = "Loading…";
    for (const control of controls()) control.disabled = true;
    showError("");
    say("");
  }

  function render(setting) {
    ui.card.removeAttribute("aria-busy");
    if (!setting.available) {
      ui.status.textContent = OFFERED_NOT;
      for (const control of controls()) control.disabled = true;
      return;
    }
    ui.status.textContent = setting.enabled
      ? `On: we email ${setting.email} once each time your balance falls below ${money(setting.threshold, currency)}.`
      : "Off.";
    ui.enabled.checked = setting.enabled;
    if (Number.isInteger(setting.threshold)) ui.threshold.value = dollars(setting.threshold);
    for (const control of controls()) control.disabled = false;
  }

  async function load(code) {
    const mine = generation;
    currency = code;
    try {
      const setting = await api().lowBalanceEmail();
      if (mine === generation) render(setting);
    } catch (error) {
      if (mine === generation) fail(error, () => load(code));
    }
  }

  async function save(event) {
    event.preventDefault();
    say("");
    const on = ui.enabled.checked;
    const threshold = on ? parseEmailThreshold(ui.threshold.value, currency) : { minorUnits: null };
    showError(threshold.error ?? "");
    if (threshold.error) {
      ui.threshold.focus();
      return;
    }
    ui.save.disabled = true;
    try {
      const saved = await api().saveLowBalanceEmail({ enabled: on, threshold: threshold.minorUnits });
      render(saved);
      say(saved.enabled ? "Saved: the low balance email is on." : "Saved: the low balance email is off.");
    } catch (error) {
      if (error instanceof ApiError && error.kind === "http" && error.status < 500 && error.status !== 429) {
        if (error.code === "invalid_amount") {
          showError(error.message);
          ui.threshold.focus();
        } else {
          say(error.message, "error");
        }
      } else {
        fail(error);
      }
    } finally {
      ui.save.disabled = false;
    }
  }

  ui.form.addEventListener("submit", save);
  ui.threshold.addEventListener("input", () => showError(""));
  return { reset, load };
}
