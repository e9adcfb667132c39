// The auto top-up card: a saved card refills the balance once whenever it falls below a threshold.
import { ApiError } from "./api.js";
import { MAX_AMOUNT, minuteAfter, money, roundMoney } from "./format.js";

const STATUS_TEXT = {
  on: "On",
  off: "Off",
  failed: "Off — stopped, see why below",
  limit_reached: "Paused — daily limit reached",
};
const LOADING = "Loading…";
const NO_CARD = "No card saved. Save one to turn auto top-up on.";
// What Save says matches the status the server answered, not what was asked.
const SAVED = {
  on: "Saved: auto top-up is on.",
  off: "Saved: auto top-up is off.",
  limit_reached: "Saved: auto top-up is on, paused until the daily limit allows another charge.",
  failed: "Saved, but auto top-up is off: see why above.",
};
const REMOVED = "Card removed; auto top-up is off.";
const CARD_SAVED_OFF = "Card saved: turn auto top-up on below.";
const CARD_SAVED_ON = "Card saved: auto top-up now charges this card.";
const CARD_NOT_SAVED = "No card was saved.";
// The lowest threshold, in minor units: wallet.auto_top_up.MIN_THRESHOLD.
const MIN_THRESHOLD = 1;
// A dollar amount as typed: digits, and at most two decimals.
const THRESHOLD = /^\d+(\.\d{1,2})?$/;

/** The threshold typed in dollars, as minor units, or the error to show beside the field. One charge of
 * the pack must lift any balance below it, so it is at most the pack's credits (`pack`: {amount, credits},
 * `larger`: whether a pack with more credits is on sale). */
export function parseThreshold(text, currency, pack = null, larger = false) {
  const typed = text.trim();
  if (!typed) return { error: "Enter a threshold, such as 5 for $5.00." };
  if (!THRESHOLD.test(typed)) return { error: "Enter an amount in dollars and cents, such as 5 or 12.50." };
  const [whole, cents = ""] = typed.split(".");
  const minorUnits = Number(whole) * 100 + Number(cents.padEnd(2, "0"));
  // A spend never takes the balance below zero: a threshold of 0 would be on and never refill.
  if (minorUnits < MIN_THRESHOLD) {
    return { error: `Enter a threshold of at least ${money(MIN_THRESHOLD, currency)}: spending stops at ${money(0, currency)}.` };
  }
  if (!Number.isSafeInteger(minorUnits) || minorUnits > MAX_AMOUNT) {
    return { error: `Enter a threshold of at most ${money(MAX_AMOUNT, currency)}.` };
  }
  if (pack && minorUnits > pack.credits) {
    const range = `from ${money(MIN_THRESHOLD, currency)} to ${roundMoney(pack.credits, currency)}`;
    const name = `the ${roundMoney(pack.amount, currency)} pack`;
    return { error: `Choose a threshold ${range} for ${name}${larger ? ", or a larger pack" : ""}.` };
  }
  return { minorUnits };
}

/** 500 -> "5", 1250 -> "12.50": minor units as typed into the field, without float division. */
function dollars(minorUnits) {
  const text = String(minorUnits).padStart(3, "0");
  const cents = text.slice(-2);
  return cents === "00" ? text.slice(0, -2) : `${text.slice(0, -2)}.${cents}`;
}

/** `api()` is the signed API of the current session; `fail(error, retry)` speaks for the page. */
export function createAutoTopUp({ api, fail }) {
  const byId = (id) => document.getElementById(id);
  const ui = {
    card: byId("auto-top-up"),
    status: byId("auto-top-up-status"),
    summary: byId("auto-top-up-summary"),
    reason: byId("auto-top-up-reason"),
    form: byId("auto-top-up-form"),
    enabled: byId("auto-top-up-enabled"),
    threshold: byId("auto-top-up-threshold"),
    thresholdError: byId("auto-top-up-threshold-error"),
    pack: byId("auto-top-up-pack"),
    save: byId("auto-top-up-save"),
    message: byId("auto-top-up-message"),
    savedCard: byId("saved-card"),
    addCard: byId("add-card"),
    removeCard: byId("remove-card"),
  };
  let currency = "usd";
  let packs = [];
  let generation = 0;
  let current = null;

  /** Back to "loading": the card keeps its place, so nothing below it moves when it fills in. */
  function reset() {
    generation += 1;
    current = null;
    ui.card.setAttribute("aria-busy", "true");
    ui.card.dataset.status = "";
    ui.status.textContent = LOADING;
    ui.reason.hidden = true;
    ui.summary.hidden = true;
    ui.savedCard.textContent = "\u00a0";
    ui.removeCard.hidden = true;
    for (const control of [ui.addCard, ...settingsControls()]) control.disabled = true;
    showThresholdError("");
    say("");
  }

  /** A line beside Save: what the last action did, or why it did not. */
  function say(text, tone = "success") {
    ui.message.textContent = text;
    ui.message.dataset.tone = text ? tone : "";
  }

  function showThresholdError(message) {
    ui.thresholdError.textContent = message;
    ui.threshold.toggleAttribute("aria-invalid", Boolean(message));
  }

  /** The form's controls: usable only with a saved card, as nothing can be charged without one. */
  function settingsControls() {
    return [ui.enabled, ui.threshold, ui.pack, ui.save];
  }

  /** While it is on, what will happen, in one sentence. */
  function summary(settings) {
    const method = settings.paymentMethod;
    const pack = packs.find((each) => each.amount === settings.amount);
    if (settings.status !== "on" || !method || !pack || !Number.isInteger(settings.threshold)) return "";
    const price = pack.label || money(pack.amount, currency);
    const card = `${method.brand.toUpperCase()} •••• ${method.last4}`;
    const adds = pack.credits === pack.amount ? "" : ` (adds ${money(pack.credits, currency)})`;
    return `When your balance falls below ${money(settings.threshold, currency)}, we charge ${price}${adds} to ${card}, once per dip.`;
  }

  function render(settings) {
    current = settings;
    ui.card.removeAttribute("aria-busy");
    ui.card.dataset.status = settings.status;
    const resumes = settings.status === "limit_reached" ? minuteAfter(settings.resumesAt) : null;
    ui.status.textContent = resumes ? `Paused until ${resumes}` : (STATUS_TEXT[settings.status] ?? settings.status);
    ui.reason.textContent = settings.reason ?? "";
    ui.reason.hidden = !settings.reason;
    ui.enabled.checked = settings.enabled;
    if (Number.isInteger(settings.threshold)) ui.threshold.value = dollars(settings.threshold);
    if (settings.amount !== null) ui.pack.value = String(settings.amount);
    fitThresholdToPack();
    const method = settings.paymentMethod;
    ui.savedCard.textContent = method
      ? `${method.brand.toUpperCase()} •••• ${method.last4}, expires ${String(method.expMonth).padStart(2, "0")}/${method.expYear}`
      : NO_CARD;
    ui.removeCard.hidden = !method;
    ui.addCard.textContent = method ? "Use another card" : "Save a card";
    ui.addCard.disabled = false;
    for (const control of settingsControls()) control.disabled = !method;
    ui.form.classList.toggle("is-unavailable", !method);
    const sentence = summary(settings);
    ui.summary.textContent = sentence;
    ui.summary.hidden = !sentence;
  }

  /** The pack chosen, and whether a pack with more credits is on sale. */
  function chosenPack() {
    const pack = packs.find((each) => String(each.amount) === ui.pack.value) ?? null;
    return { pack, larger: Boolean(pack) && packs.some((each) => each.credits > pack.credits) };
  }

  /** The threshold goes up to the chosen pack's credits: the field's maximum says so. */
  function fitThresholdToPack() {
    const { pack } = chosenPack();
    ui.threshold.max = dollars(pack ? Math.min(pack.credits, MAX_AMOUNT) : MAX_AMOUNT);
  }

  /** Shows the card for the signed-in user, with the packs on sale as the amounts to refill by.
   * `returned` is what Stripe's card setup page sent the user back with: "saved", "cancelled" or null. */
  async function load(offered, code, returned = null) {
    const mine = generation;
    currency = code;
    packs = offered;
    ui.pack.replaceChildren(
      ...offered.map((pack) => new Option(`${pack.label || money(pack.amount, currency)} (adds ${money(pack.credits, currency)})`, String(pack.amount))),
    );
    fitThresholdToPack();
    try {
      const settings = await api().autoTopUp();
      if (mine !== generation) return;
      render(settings);
      if (returned === "saved" && settings.paymentMethod) say(settings.enabled ? CARD_SAVED_ON : CARD_SAVED_OFF);
      if (returned === "saved" && !settings.paymentMethod) say(CARD_NOT_SAVED, "info");
      if (returned === "cancelled") say(CARD_NOT_SAVED, "info");
      if (returned) ui.message.scrollIntoView({ block: "nearest" });
    } catch (error) {
      if (mine === generation) fail(error, () => load(offered, code, returned));
    }
  }

  async function save(event) {
    event.preventDefault();
    say("");
    const { pack, larger } = chosenPack();
    const threshold = parseThreshold(ui.threshold.value, currency, pack, larger);
    showThresholdError(threshold.error ?? "");
    if (threshold.error) {
      ui.threshold.focus();
      return;
    }
    ui.save.disabled = true;
    try {
      const saved = await api().saveAutoTopUp({ enabled: ui.enabled.checked, threshold: threshold.minorUnits, amount: Number(ui.pack.value) });
      render(saved);
      say(SAVED[saved.status] ?? SAVED.off, saved.status === "on" || saved.status === "off" ? "success" : "info");
    } catch (error) {
      if (mine(error)) {
        if (error.code === "invalid_amount") {
          // Beside the field, with what was typed left in it to correct; nothing was saved.
          showThresholdError(error.message);
          ui.threshold.focus();
          return;
        }
        say(error.message, "error");
      } else {
        fail(error);
      }
      if (current) render(current);
    } finally {
      ui.save.disabled = !current?.paymentMethod;
    }
  }

  /** An answer about this form's fields, said beside them; anything else is the page's to say. */
  function mine(error) {
    return error instanceof ApiError && error.kind === "http" && error.status < 500 && error.status !== 429;
  }

  async function addCard() {
    ui.addCard.disabled = true;
    try {
      const { url } = await api().addPaymentMethod();
      window.location.assign(url);
    } catch (error) {
      ui.addCard.disabled = false;
      fail(error);
    }
  }

  async function removeCard() {
    ui.removeCard.disabled = true;
    try {
      await api().removePaymentMethod();
      render(await api().autoTopUp());
      say(REMOVED, "info");
    } catch (error) {
      fail(error);
    } finally {
      ui.removeCard.disabled = false;
    }
  }

  ui.form.addEventListener("submit", save);
  ui.threshold.addEventListener("input", () => showThresholdError(""));
  ui.pack.addEventListener("change", () => {
    fitThresholdToPack();
    showThresholdError("");
  });
  ui.addCard.addEventListener("click", addCard);
  ui.removeCard.addEventListener("click", removeCard);
  return { reset, load };
}
