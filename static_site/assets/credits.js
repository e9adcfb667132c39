// The credits page: a signed-in user's balance, top-ups through Stripe Checkout, and history.
import { ApiError, createApi, SESSION_ENDED } from "./api.js";
import { createAuth } from "./auth.js";
import { dateParts, money, wrappable } from "./format.js";
import { createHistory, PAGE_SIZE as HISTORY_PAGE_SIZE } from "./history.js";
import { createAutoTopUp } from "./auto-top-up.js";
import { createUsage } from "./usage.js";
import { createLowBalanceEmail } from "./low-balance-email.js";

// Back from Checkout, how long to keep asking before saying the credits will arrive later.
const POLL_BUDGET_MS = 60_000;
const POLL_FIRST_DELAY_MS = 500;
const POLL_MAX_DELAY_MS = 8_000;
// Consecutive polls that got no answer at all before the page says the connection is down.
const POLL_NETWORK_FAILURES = 3;
const CHECKOUT_KEY = "credits.checkout";
const USER_ID = /^[A-Za-z0-9_.@-]{1,64}$/;
const SESSION_ID = /^cs_[A-Za-z0-9_]{1,250}$/;

const TEXT = {
  opening: "Opening secure checkout…",
  paid: "Payment received — adding your credits…",
  bankPending:
    "Payment submitted — waiting for your bank to confirm it. Credits are added as soon as it clears.",
  slow: "Your payment is safe; credits appear within minutes.",
  pollOffline:
    "Your payment is safe, but we couldn’t reach the server to confirm it. " +
    "Check your connection, then try again.",
  slowBank:
    "Your bank is still confirming the payment. Credits are added once it clears; you can leave this page.",
  cancelled: "Checkout cancelled — no charge was made.",
  expired: "This checkout expired before it was paid — no charge was made.",
  signedOut: "You’ve signed out.",
  broken: "Something went wrong on this page. Reload it to try again.",
  noConfig: "This page could not load its settings. Check your connection, then try again.",
  noCheckoutPage: "The payment page could not be opened. Nothing was charged; try again.",
  unreadableBalance: "The balance could not be read. Try again in a moment.",
};
const TEST_MODE_NOTES = {
  emulator:
    "Test mode: payments go to a local Stripe emulator, whose checkout page has buttons to pay or decline " +
    "instead of a card form. No real money moves.",
  test: "Stripe test mode: no real money moves. Pay with the test card 4242 4242 4242 4242.",
};

const byId = (id) => document.getElementById(id);
const ui = {
  notice: byId("notice"),
  status: byId("status"),
  retry: byId("retry"),
  boot: byId("boot"),
  account: byId("account"),
  accountName: byId("account-name"),
  signOut: byId("sign-out"),
  signedOut: byId("signed-out"),
  signinForm: byId("signin-form"),
  userName: byId("user-name"),
  userNameError: byId("user-name-error"),
  signinSubmit: byId("signin-submit"),
  signinOidc: byId("signin-oidc"),
  signedIn: byId("signed-in"),
  pageHeading: byId("page-heading"),
  balance: byId("balance"),
  lastTopUp: byId("last-topup"),
  packs: byId("packs"),
  otherAmount: byId("other-amount"),
  otherAmountInput: byId("other-amount-input"),
  otherAmountSubmit: byId("other-amount-submit"),
  otherAmountHint: byId("other-amount-hint"),
  otherAmountError: byId("other-amount-error"),
  testMode: byId("test-mode"),
  balanceNote: byId("balance-note"),
  balanceSplit: byId("balance-split"),
  balanceHeld: byId("balance-held"),
  balanceAvailable: byId("balance-available"),
  expiring: byId("expiring"),
  negativeBalance: byId("negative-balance"),
};

const state = {
  auth: null,
  api: null,
  currency: "usd",
  packs: null,
  // A checkout is being opened: every pack button stays disabled until the page is left or it fails.
  opening: false,
  retry: null,
  // Bumped on sign-out, so that answers for the previous session are dropped.
  generation: 0,
  // Bumped per balance request, so that an older answer never overwrites a newer one.
  balanceRequest: 0,
};

const historyCard = createHistory({
  loadPage: (limit, cursor, kind) => state.api.balance(limit, cursor, kind),
  documents: (paymentId) => state.api.documents(paymentId),
  fail,
});
const autoTopUpCard = createAutoTopUp({ api: () => state.api, fail });
const usageCard = createUsage({ api: () => state.api, fail });
const lowBalanceEmailCard = createLowBalanceEmail({ api: () => state.api, fail });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// --- the status region ---------------------------------------------------------------------------------

/** Shows one message; tone is info, progress, success, warning or error. */
function notify(text, { tone = "info", retry = null, retryLabel = "Retry" } = {}) {
  ui.notice.dataset.tone = text ? tone : "none";
  ui.status.textContent = text;
  state.retry = retry;
  ui.retry.textContent = retryLabel;
  ui.retry.hidden = !retry;
}

const clearNotice = () => notify("");

/** Says what went wrong; 401 returns to sign-in; failures that may pass offer `retry`. */
function fail(error, retry = null) {
  if (error instanceof ApiError && error.kind === "unauthorized") {
    endSession(SESSION_ENDED);
    return;
  }
  const known = error instanceof ApiError || error?.name === "SignInError";
  const retryable = error instanceof ApiError && error.retryable;
  notify(known ? error.message : TEXT.broken, { tone: "error", retry: retryable ? retry : null });
}

// --- signing in and out --------------------------------------------------------------------------------

function showSignIn(message, { focus = false } = {}) {
  state.generation += 1;
  resetDashboard();
  ui.signedIn.hidden = true;
  ui.account.hidden = true;
  ui.signedOut.hidden = false;
  const local = state.auth.mode === "local";
  ui.signinForm.hidden = !local;
  ui.signinOidc.hidden = local;
  // Signing out is what the user asked for; only a session that ended on its own is a warning.
  if (message) notify(message, { tone: message === TEXT.signedOut ? "info" : "warning" });
  else clearNotice();
  if (focus) (local ? ui.userName : ui.signinOidc).focus();
}

function endSession(message) {
  state.auth.forget();
  showSignIn(message, { focus: true });
}

function showFieldError(message) {
  ui.userNameError.textContent = message;
  ui.userName.toggleAttribute("aria-invalid", Boolean(message));
}

async function submitSignIn(event) {
  event?.preventDefault();
  const name = ui.userName.value.trim();
  if (!USER_ID.test(name)) {
    showFieldError(name ? "Use up to 64 letters, digits or the characters _ . @ -" : "Enter a user name.");
    ui.userName.focus();
    return;
  }
  showFieldError("");
  ui.signinSubmit.disabled = true;
  ui.signinSubmit.textContent = "Signing in…";
  try {
    await state.auth.signInLocal(name);
    clearNotice();
    showDashboard(state.auth.current().session, { focus: true });
  } catch (error) {
    fail(error, submitSignIn);
  } finally {
    ui.signinSubmit.disabled = false;
    ui.signinSubmit.textContent = "Sign in";
  }
}

async function beginSignIn() {
  try {
    await state.auth.beginSignIn(window.location.pathname + window.location.search);
  } catch (error) {
    fail(error, beginSignIn);
  }
}

/** Clears the page and returns to sign-in first; then ends the provider's session when it has a way. */
async function signOut() {
  forgetCheckout();
  let logoutUrl = null;
  try {
    logoutUrl = await state.auth.signOut();
  } catch {
    logoutUrl = null;
  }
  ui.userName.value = "";
  showSignIn(TEXT.signedOut, { focus: true });
  if (logoutUrl) window.location.assign(logoutUrl);
}

// --- the dashboard -------------------------------------------------------------------------------------

function resetDashboard() {
  state.balanceRequest += 1;
  showBalance(null);
  ui.lastTopUp.hidden = true;
  ui.accountName.textContent = "";
  historyCard.reset();
  autoTopUpCard.reset();
  usageCard.reset();
  lowBalanceEmailCard.reset();
}

async function showDashboard(session, { focus = false } = {}) {
  ui.signedOut.hidden = true;
  ui.signedIn.hidden = false;
  ui.account.hidden = false;
  ui.accountName.textContent = session.name;
  if (focus) ui.pageHeading.focus();

  const returned = checkoutReturn();
  if (returned?.outcome === "cancelled") {
    forgetCheckout();
    cleanUrl();
    notify(TEXT.cancelled, { tone: "info" });
  } else if (returned && returned.outcome !== "success") {
    cleanUrl();
  }
  // Back from Stripe's card setup page: said once on the auto top-up card, then gone from the address.
  const card = new URLSearchParams(window.location.search).get("card");
  if (card) cleanUrl();
  const loading = loadAccount(card === "saved" || card === "cancelled" ? card : null);
  if (returned?.outcome === "success") await confirmPayment(returned.sessionId);
  await loading;
}

/** The price list (once) and the balance with its first page of history. */
async function loadAccount(cardReturn = null) {
  // Signed out (or in as someone else) while this loads: what comes back belongs to a session that is
  // gone. Its cards start no request, and its failures (a 401, as the token is forgotten) say nothing.
  const generation = state.generation;
  const current = () => generation === state.generation;
  const packs = state.packs ? Promise.resolve() : loadPacks();
  // The auto top-up card has its own request: it fills in whether or not the balance could be read.
  const card = packs.then(
    () => current() && autoTopUpCard.load(state.packs ?? [], state.currency, cardReturn),
    () => current() && autoTopUpCard.load([], state.currency, cardReturn),
  );
  // The chart has its own request too, and says itself when it fails.
  usageCard.load(state.currency);
  const email = packs.then(
    () => current() && lowBalanceEmailCard.load(state.currency),
    () => current() && lowBalanceEmailCard.load(state.currency),
  );
  const [read] = await Promise.allSettled([Promise.all([packs, loadBalance()]), card, email]);
  if (read.status === "rejected" && current()) fail(read.reason, () => loadAccount(cardReturn));
}

async function loadPacks() {
  const generation = state.generation;
  const data = await state.api.packs();
  if (generation !== state.generation) return;
  const currency = data.currency ?? state.currency;
  const packs = (Array.isArray(data.packs) ? data.packs : []).filter(
    (pack) => Number.isInteger(pack?.amount) && Number.isInteger(pack?.credits),
  );
  state.packs = packs;
  ui.packs.replaceChildren(...packs.map((pack) => packButton(pack, currency)));
  if (!packs.length) ui.packs.append(element("p", "muted", "No packs are on sale right now."));
  ui.packs.removeAttribute("aria-busy");
  const custom = data.custom;
  const bounded = Number.isInteger(custom?.min) && Number.isInteger(custom?.max);
  state.custom = bounded ? { min: custom.min, max: custom.max, currency } : null;
  ui.otherAmount.hidden = !state.custom;
  if (state.custom) {
    ui.otherAmountHint.textContent = `From ${money(custom.min, currency)} to ${money(custom.max, currency)}.`;
    ui.otherAmountInput.disabled = false;
    ui.otherAmountSubmit.disabled = state.opening;
  }
}

function packButton(pack, currency) {
  const button = element("button", "pack");
  button.type = "button";
  button.dataset.amount = String(pack.amount);
  button.disabled = state.opening;
  // The spaces keep the accessible name readable: "$50 Adds $55.00 +$5.00 bonus".
  button.append(
    element("span", "pack-price", pack.label || money(pack.amount, currency)),
    " ",
    element("span", "pack-detail", `Adds ${money(pack.credits, currency)}`),
  );
  if (pack.credits > pack.amount) {
    button.classList.add("pack-bonus");
    const bonus = money(pack.credits - pack.amount, currency);
    button.append(" ", element("span", "pack-badge", `+${bonus} bonus`));
  }
  button.addEventListener("click", () => buy(pack, button));
  return button;
}

/** Reloads the balance and the first page of history; `highlight` marks the row of that payment. */
async function loadBalance({ highlight = null } = {}) {
  const generation = state.generation;
  const request = ++state.balanceRequest;
  const kind = historyCard.kind();
  let data;
  try {
    data = await state.api.balance(HISTORY_PAGE_SIZE, null, kind);
  } catch (error) {
    if (request === state.balanceRequest) throw error;
    return;
  }
  if (generation !== state.generation || request !== state.balanceRequest) return;
  if (!Number.isInteger(data.balance)) {
    throw new ApiError(TEXT.unreadableBalance, { kind: "unreadable" });
  }
  state.currency = data.currency ?? state.currency;
  showBalance(data.balance, data);
  // The first page names the credits about to expire; later pages and other kinds leave the line as it is.
  if (Array.isArray(data.expiring)) showExpiring(data.expiring);
  historyCard.show(data, { currency: state.currency, highlight, kind });
  // Other kinds hold no top-ups: the line keeps what the last page of every kind or of top-ups said.
  if (kind === "" || kind === "topups") showLastTopUp(Array.isArray(data.transactions) ? data.transactions : []);
}

/** The balance, or "—" for none; below zero it says why and what to do. While holds keep some of it
 * aside for usage in progress, what they reserve and what is left to spend show beneath it. */
function showBalance(balance, { held = 0, available = balance } = {}) {
  const negative = balance !== null && balance < 0;
  const holding = balance !== null && Number.isInteger(held) && held > 0 && Number.isInteger(available);
  const text = balance === null ? "—" : money(balance, state.currency);
  // Long amounts take a smaller size and wrap between digit groups rather than widen the card and the page.
  ui.balance.replaceChildren(...(text.length > 12 ? wrappable(text) : [text]));
  ui.balance.classList.toggle("is-long", text.length > 12);
  // No balance yet: a light placeholder, not a heavy bar that reads as a value.
  ui.balance.classList.toggle("is-unknown", balance === null);
  ui.balance.classList.toggle("is-negative", negative);
  ui.balanceNote.hidden = negative || holding;
  ui.negativeBalance.hidden = !negative;
  ui.balanceSplit.hidden = !holding;
  ui.balanceHeld.textContent = holding ? money(held, state.currency) : "";
  ui.balanceAvailable.textContent = holding ? money(available, state.currency) : "";
}

/** "$5.00 of promotional credits expire on 12 Jan 2027": one line per kind of credit and day, soonest
 * first, for what the server says expires in the next 30 days. */
function showExpiring(grants) {
  const lines = new Map();
  for (const grant of grants) {
    const day = dateParts(grant?.expiresAt)?.day;
    if (!day || !Number.isInteger(grant.credits) || grant.credits <= 0) continue;
    const kind = grant.kind === "paid" ? "paid" : "promotional";
    const key = `${kind} ${day}`;
    const line = lines.get(key) ?? { kind, day, credits: 0 };
    line.credits += grant.credits;
    lines.set(key, line);
  }
  ui.expiring.replaceChildren(
    ...[...lines.values()].map(({ kind, day, credits }) => {
      const item = element("li", "", "");
      item.append(element("strong", "", money(credits, state.currency)), ` of ${kind} credits expire on ${day}`);
      return item;
    }),
  );
  ui.expiring.hidden = lines.size === 0;
}

function showLastTopUp(transactions) {
  const last = transactions.find((transaction) => transaction?.type === "deposit");
  const day = last && Number.isInteger(last.amount) ? dateParts(last.createdAt)?.day : null;
  ui.lastTopUp.hidden = !day && transactions.length > 0;
  if (day) {
    const amount = element("strong", "", money(last.amount, state.currency));
    ui.lastTopUp.replaceChildren("Last top-up: ", amount, ` on ${day}`);
  } else {
    ui.lastTopUp.textContent = "No top-ups yet.";
  }
}

async function refreshBalance() {
  try {
    await loadBalance();
    clearNotice();
  } catch (error) {
    fail(error, refreshBalance);
  }
}

// --- buying a pack -------------------------------------------------------------------------------------

function setOpening(opening, button = null) {
  state.opening = opening;
  ui.otherAmountSubmit.disabled = opening;
  for (const pack of ui.packs.querySelectorAll("button.pack")) {
    pack.disabled = opening;
    pack.classList.toggle("is-opening", opening && pack === button);
  }
}

async function buy(pack, button) {
  if (state.opening) return;
  // Disabled before anything else, so a second click of a double click lands on a disabled button.
  setOpening(true, button);
  notify(TEXT.opening, { tone: "progress" });
  try {
    const checkout = await state.api.startCheckout(pack.amount);
    const url = checkoutUrl(checkout.url);
    if (!url) throw new ApiError(TEXT.noCheckoutPage, { kind: "unreadable" });
    const { sessionId, paymentId } = checkout;
    sessionStorage.setItem(CHECKOUT_KEY, JSON.stringify({ sessionId, paymentId }));
    window.location.assign(url);
  } catch (error) {
    setOpening(false);
    if (button.isConnected) button.focus();
    fail(error, () => buy(pack, button));
  }
}

/** "12.5" -> 1250 in a currency of two decimals: digits only, no float on the way; null if not an amount. */
function minorUnits(text, currency) {
  const decimals = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions()
    .maximumFractionDigits;
  const match = /^(\d{1,12})(?:\.(\d*))?$/u.exec(text.trim().replace(/,/gu, ""));
  if (!match || (match[2] ?? "").length > decimals) return null;
  return Number(match[1] + (match[2] ?? "").padEnd(decimals, "0"));
}

function showAmountError(message) {
  ui.otherAmountError.textContent = message;
  ui.otherAmountInput.toggleAttribute("aria-invalid", Boolean(message));
}

function buyOtherAmount(event) {
  event.preventDefault();
  if (!state.custom) return;
  const { min, max, currency } = state.custom;
  const amount = minorUnits(ui.otherAmountInput.value, currency);
  if (amount === null || amount < min || amount > max) {
    showAmountError(`Enter an amount from ${money(min, currency)} to ${money(max, currency)}.`);
    ui.otherAmountInput.focus();
    return;
  }
  showAmountError("");
  buy({ amount }, ui.otherAmountSubmit);
}

/** The Checkout page's address, if it is a web address at all. */
function checkoutUrl(value) {
  try {
    const url = new URL(value, window.location.href);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

// --- back from Checkout --------------------------------------------------------------------------------

function checkoutReturn() {
  const params = new URLSearchParams(window.location.search);
  const outcome = params.get("checkout");
  if (!outcome) return null;
  const sessionId = params.get("session_id") ?? "";
  if (outcome === "success" && SESSION_ID.test(sessionId)) return { outcome, sessionId };
  return { outcome: outcome === "cancelled" ? outcome : "unknown" };
}

function cleanUrl() {
  const url = new URL(window.location.href);
  url.searchParams.delete("checkout");
  url.searchParams.delete("session_id");
  url.searchParams.delete("card");
  window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
}

function forgetCheckout() {
  sessionStorage.removeItem(CHECKOUT_KEY);
}

function rememberedPayment(sessionId) {
  try {
    const saved = JSON.parse(sessionStorage.getItem(CHECKOUT_KEY) ?? "null");
    return saved?.sessionId === sessionId ? saved.paymentId : null;
  } catch {
    return null;
  }
}

/** Asks, with back-off, until the session is credited, has expired, or the time budget is spent. */
async function confirmPayment(sessionId) {
  const generation = state.generation;
  const paymentId = rememberedPayment(sessionId);
  notify(TEXT.paid, { tone: "progress" });
  const started = performance.now();
  let delay = POLL_FIRST_DELAY_MS;
  let waitingForBank = false;
  let offline = 0;
  for (;;) {
    let status = null;
    try {
      status = await state.api.checkout(sessionId);
      offline = 0;
    } catch (error) {
      if (generation !== state.generation) return;
      if (!(error instanceof ApiError && error.retryable)) {
        // After a 401 the address is kept, so that signing in again picks the payment up where it was.
        if (!(error instanceof ApiError && error.kind === "unauthorized")) cleanUrl();
        fail(error);
        return;
      }
      // The server's own 5xx messages speak of starting a payment, not of one already made: ours instead.
      offline = error.kind === "network" ? offline + 1 : 0;
      if (offline >= POLL_NETWORK_FAILURES) {
        notify(TEXT.pollOffline, { tone: "warning", retry: () => confirmPayment(sessionId) });
        return;
      }
    }
    if (generation !== state.generation) return;
    if (status?.credited) {
      await credited(status);
      return;
    }
    if (status?.status === "expired") {
      forgetCheckout();
      cleanUrl();
      notify(TEXT.expired, { tone: "info" });
      return;
    }
    if (status?.status === "complete" && status.paymentStatus === "unpaid" && !waitingForBank) {
      waitingForBank = true;
      notify(TEXT.bankPending, { tone: "progress" });
    }
    if (performance.now() - started + delay > POLL_BUDGET_MS) break;
    await sleep(delay);
    delay = Math.min(delay * 1.6, POLL_MAX_DELAY_MS);
  }
  cleanUrl();
  notify(waitingForBank ? TEXT.slowBank : TEXT.slow, {
    tone: "info",
    retry: refreshBalance,
    retryLabel: "Refresh balance",
  });

  async function credited(status) {
    forgetCheckout();
    try {
      await loadBalance({ highlight: paymentId });
    } catch (error) {
      cleanUrl();
      fail(error, refreshBalance);
      return;
    }
    cleanUrl();
    // Only the tab that opened this checkout knows it was just paid; an old link says what is true of it.
    if (!paymentId) {
      const paid = Number.isInteger(status.amount) ? `${money(status.amount, state.currency)} from this payment` : "This payment";
      notify(`${paid} is already in your balance; nothing more was added.`, { tone: "info" });
      return;
    }
    const amount = Number.isInteger(status.amount) ? money(status.amount, state.currency) : "Your credits";
    notify(`Payment complete — ${amount} added to your balance.`, { tone: "success" });
  }
}

// --- start ---------------------------------------------------------------------------------------------

function wire() {
  ui.retry.addEventListener("click", () => {
    const retry = state.retry;
    // The button disappears with the message; keep focus in the page rather than losing it to <body>.
    ui.pageHeading.focus();
    clearNotice();
    retry?.();
  });
  ui.signinForm.addEventListener("submit", submitSignIn);
  ui.userName.addEventListener("input", () => showFieldError(""));
  ui.otherAmount.addEventListener("submit", buyOtherAmount);
  ui.otherAmountInput.addEventListener("input", () => showAmountError(""));
  ui.signinOidc.addEventListener("click", beginSignIn);
  ui.signOut.addEventListener("click", signOut);
  // Back from Checkout through the back/forward cache, the page is as it was left: packs disabled.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && state.opening) {
      setOpening(false);
      clearNotice();
    }
  });
}

async function start() {
  let config;
  try {
    config = (await import("/config.js")).default;
  } catch {
    ui.boot.hidden = true;
    notify(TEXT.noConfig, { tone: "error", retry: () => window.location.reload() });
    return;
  }
  state.currency = config.currency ?? state.currency;
  state.auth = createAuth(config.auth);
  state.api = createApi(config.apiBase ?? "/api", () => state.auth.token());
  const note = TEST_MODE_NOTES[config.stripe];
  ui.testMode.hidden = !note;
  ui.testMode.textContent = note ?? "";
  wire();

  try {
    const returnTo = await state.auth.completeSignIn();
    const local = returnTo?.startsWith("/") && !returnTo.startsWith("//");
    if (local) window.history.replaceState(null, "", returnTo);
  } catch (error) {
    ui.boot.hidden = true;
    showSignIn();
    fail(error, beginSignIn);
    return;
  }
  const { session, ended } = state.auth.current();
  ui.boot.hidden = true;
  if (session) await showDashboard(session);
  else showSignIn(ended ? SESSION_ENDED : null);
}

start();
