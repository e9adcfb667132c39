// The auto top-up card: a saved card refills the balance once whenever it falls below a threshold.
import { money } from "./format.js";

const STATUS_TEXT = {
  on: "On",
  off: "Off",
  failed: "Off — the last automatic payment failed",
  limit_reached: "Paused — daily limit reached",
};
const NO_CARD = "No card saved. Save one to turn auto top-up on.";
const SAVED = "Auto top-up saved.";
const REMOVED = "Card removed; auto top-up is off.";

/** `api()` is the signed API of the current session; `fail(error, retry)` and `notify(text)` speak for the page. */
export function createAutoTopUp({ api, fail, notify }) {
  const byId = (id) => document.getElementById(id);
  const ui = {
    card: byId("auto-top-up"),
    status: byId("auto-top-up-status"),
    reason: byId("auto-top-up-reason"),
    form: byId("auto-top-up-form"),
    enabled: byId("auto-top-up-enabled"),
    threshold: byId("auto-top-up-threshold"),
    pack: byId("auto-top-up-pack"),
    save: byId("auto-top-up-save"),
    savedCard: byId("saved-card"),
    addCard: byId("add-card"),
    removeCard: byId("remove-card"),
  };
  let currency = "usd";
  let generation = 0;
  let current = null;

  function reset() {
    generation += 1;
    current = null;
    ui.card.hidden = true;
  }

  function render(settings) {
    current = settings;
    ui.card.hidden = false;
    ui.card.dataset.status = settings.status;
    ui.status.textContent = STATUS_TEXT[settings.status] ?? settings.status;
    ui.reason.textContent = settings.reason ?? "";
    ui.reason.hidden = !settings.reason;
    ui.enabled.checked = settings.enabled;
    if (settings.threshold !== null) ui.threshold.value = String(settings.threshold / 100);
    if (settings.amount !== null) ui.pack.value = String(settings.amount);
    const method = settings.paymentMethod;
    ui.savedCard.textContent = method
      ? `${method.brand.toUpperCase()} •••• ${method.last4}, expires ${String(method.expMonth).padStart(2, "0")}/${method.expYear}`
      : NO_CARD;
    ui.removeCard.hidden = !method;
    ui.addCard.textContent = method ? "Use another card" : "Save a card";
    ui.enabled.disabled = !method;
  }

  /** Shows the card for the signed-in user, with the packs on sale as the amounts to refill by. */
  async function load(packs, code) {
    const mine = generation;
    currency = code;
    ui.pack.replaceChildren(
      ...packs.map((pack) => new Option(`${pack.label || money(pack.amount, currency)} (adds ${money(pack.credits, currency)})`, String(pack.amount))),
    );
    try {
      const settings = await api().autoTopUp();
      if (mine === generation) render(settings);
    } catch (error) {
      if (mine === generation) fail(error, () => load(packs, code));
    }
  }

  async function save(event) {
    event.preventDefault();
    const threshold = Math.round(Number(ui.threshold.value) * 100);
    if (!Number.isFinite(threshold) || threshold < 0) {
      notify("Enter a threshold of 0 or more.", { tone: "error" });
      return;
    }
    ui.save.disabled = true;
    try {
      render(await api().saveAutoTopUp({ enabled: ui.enabled.checked, threshold, amount: Number(ui.pack.value) }));
      notify(SAVED, { tone: "success" });
    } catch (error) {
      fail(error);
      if (current) render(current);
    } finally {
      ui.save.disabled = false;
    }
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
      notify(REMOVED, { tone: "info" });
    } catch (error) {
      fail(error);
    } finally {
      ui.removeCard.disabled = false;
    }
  }

  ui.form.addEventListener("submit", save);
  ui.addCard.addEventListener("click", addCard);
  ui.removeCard.addEventListener("click", removeCard);
  return { reset, load };
}
