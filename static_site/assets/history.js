// The history card: the ledger's rows, newest first, a page at a time, each with what it did to the balance.
import { dateParts, money, signedMoney, wrappable } from "./format.js";

export const PAGE_SIZE = 20;
// A row type this page does not know yet (the ledger may grow) still shows, signed, under this name.
const OTHER_LABEL = "Balance change";
const TYPE_LABELS = {
  deposit: "Top-up",
  spend: "Spent",
  refund: "Refunded",
  refund_failed: "Refund failed: credits returned",
  inquiry: "Bank inquiry: credits held",
  inquiry_closed: "Bank inquiry closed: credits returned",
  dispute: "Chargeback",
  dispute_won: "Chargeback won: credits returned",
  adjustment: "Adjustment",
  grant: "Free credits",
  expired: "Credits expired",
  hold_released: "Reservation released",
  hold_expired: "Reservation expired: released",
};
// The server folds a hold into one row (wallet/history.py); these say what each kind shows when empty.
export const KIND_EMPTY = {
  "": "No transactions yet. Top-ups appear here once they are credited.",
  topups: "No top-ups yet.",
  usage: "No usage yet.",
  refunds: "No refunds or chargebacks.",
  adjustments: "No adjustments.",
  grants: "No free credits yet.",
  expired: "No credits have expired.",
  holds: "No reservations yet.",
};
// Where a row came from, said on its second line; a spend's description or an adjustment's reason follows.
// A Checkout payment may be a card or a bank debit ("Pay later"): the row does not say which.
const SOURCES = {
  stripe_payment: "Paid at checkout",
  auto_top_up: "Auto top-up",
  service: "By the service",
  operator: "By an operator",
  promotion: "Promotion",
  signup: "Welcome credits",
  expiry: "Not used before they expired",
};
const TYPE_SOURCES = {
  refund: "Refund by the merchant",
  refund_failed: "Refund by the merchant",
  inquiry: "From the cardholder’s bank",
  inquiry_closed: "From the cardholder’s bank",
  dispute: "From the cardholder’s bank",
  dispute_won: "From the cardholder’s bank",
  adjustment: "By an operator",
  spend: "By the service",
  hold: "By the service",
  hold_released: "By the service",
  hold_expired: "Not used in time",
};

/** The first line of a row: what it was. A hold's rows move no credits, so they say what was reserved;
 * a spend that captured a hold says how much of the reservation it used. */
export function rowLabel(transaction, currency) {
  const type = String(transaction.type ?? "");
  const reserved = Number.isInteger(transaction.reserved) ? transaction.reserved : null;
  if (type === "hold" && reserved !== null) return `Reserved for usage: ${money(reserved, currency)}`;
  if (type === "hold") return "Reserved for usage";
  if (type === "hold_released" && reserved !== null) return `Reserved ${money(reserved, currency)}: released unused`;
  if (type === "hold_expired" && reserved !== null) return `Reserved ${money(reserved, currency)}: expired unused`;
  if (type === "spend" && reserved !== null && Number.isInteger(transaction.amount)) {
    return `Usage: ${money(-transaction.amount, currency)} of ${money(reserved, currency)} reserved`;
  }
  return TYPE_LABELS[type] ?? OTHER_LABEL;
}

/** The second line of a row: where it came from, then its description or reason if it has one. */
export function rowSource(transaction) {
  const type = String(transaction.type ?? "");
  const source = type === "deposit" ? SOURCES[transaction.source] : TYPE_SOURCES[type] ?? SOURCES[transaction.source];
  const description = typeof transaction.description === "string" ? transaction.description.trim() : "";
  return [source, description].filter(Boolean).join(": ");
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A top-up's receipt and invoice: a button that asks the API for Stripe's links (they are Stripe's to
 * keep current), then the links themselves, the first one focused. */
function documentsControl(transaction, when, documents, fail) {
  const holder = element("span", "documents");
  const button = element("button", "button-link", "Get receipt");
  button.type = "button";
  button.setAttribute("aria-label", `Get receipt for the top-up of ${when}`);
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.textContent = "Getting receipt…";
    try {
      const found = await documents(transaction.paymentId);
      const links = [
        ["Receipt", found.receiptUrl],
        ["Invoice", found.invoiceUrl],
        ["Invoice PDF", found.invoicePdf],
      ]
        .filter(([, url]) => typeof url === "string" && /^https?:\/\//.test(url))
        .map(([text, url]) => {
          const link = element("a", "document-link", text);
          link.href = url;
          link.setAttribute("aria-label", `${text} for the top-up of ${when}`);
          return link;
        });
      holder.replaceChildren(...(links.length ? links : [element("span", "type-detail", "No receipt yet")]));
      links[0]?.focus();
    } catch (error) {
      button.disabled = false;
      button.textContent = "Get receipt";
      fail(error);
    }
  });
  holder.append(button);
  return holder;
}

/** The card's rows, its kind filter and "Load more"; `loadPage(limit, cursor, kind)` reads a page,
 * `documents(paymentId)` a top-up's receipt and invoice, `fail(error, retry)` says why not. */
export function createHistory({ loadPage, documents, fail }) {
  const byId = (id) => document.getElementById(id);
  const ui = {
    table: byId("history"),
    rows: byId("history-rows"),
    empty: byId("history-empty"),
    loading: byId("history-loading"),
    loadMore: byId("load-more"),
    kind: byId("history-kind"),
  };
  const seen = new Set();
  let cursor = null;
  let currency = "usd";
  // Bumped on reset, so that a page asked for by the previous session is dropped.
  let generation = 0;
  // Bumped when the kind changes, so that a page of the kind before is dropped.
  let shown = 0;

  function clear() {
    cursor = null;
    seen.clear();
    ui.rows.replaceChildren();
    ui.table.hidden = true;
    ui.empty.hidden = true;
    ui.loading.hidden = false;
    ui.loadMore.hidden = true;
  }

  function reset() {
    generation += 1;
    shown += 1;
    ui.kind.value = "";
    clear();
  }

  /** The first page, from the same answer as the balance (asked for with `kind()`); `highlight` marks the
   * deposit of that payment. */
  function show(data, { currency: code, highlight = null, kind = ui.kind.value }) {
    if (kind !== ui.kind.value) return;
    currency = code;
    seen.clear();
    ui.rows.replaceChildren();
    ui.empty.textContent = KIND_EMPTY[kind] ?? KIND_EMPTY[""];
    append(data.transactions, highlight);
    setCursor(data.nextCursor);
  }

  /** The first page of the kind just chosen. */
  async function changeKind() {
    const asked = generation;
    const mine = ++shown;
    const kind = ui.kind.value;
    clear();
    try {
      const data = await loadPage(PAGE_SIZE, null, kind);
      if (asked === generation && mine === shown) show(data, { currency, kind });
    } catch (error) {
      if (asked === generation && mine === shown) fail(error, changeKind);
    }
  }

  function append(transactions, highlight = null) {
    const rows = [];
    for (const transaction of Array.isArray(transactions) ? transactions : []) {
      if (!transaction?.id || seen.has(transaction.id)) continue;
      seen.add(transaction.id);
      const isNew = Boolean(highlight) && transaction.type === "deposit" && transaction.paymentId === highlight;
      rows.push(transactionRow(transaction, isNew));
    }
    ui.rows.append(...rows);
    ui.loading.hidden = true;
    ui.table.hidden = seen.size === 0;
    ui.empty.hidden = seen.size > 0;
    return rows;
  }

  function transactionRow(transaction, isNew) {
    const row = element("tr");

    const when = element("time");
    const parts = dateParts(transaction.createdAt);
    when.dateTime = String(transaction.createdAt ?? "");
    when.append(element("span", "date-day", parts?.day ?? "Date unknown"), " ");
    if (parts) when.append(element("span", "date-time", parts.time));
    const dateCell = element("td", "date");
    dateCell.append(when);

    const typeCell = element("td", "type");
    typeCell.append(element("span", "type-label", rowLabel(transaction, currency)));
    if (isNew) {
      row.classList.add("is-new");
      typeCell.append(" ", element("span", "badge", "New"));
    }
    const detail = rowSource(transaction);
    if (detail) typeCell.append(" ", element("span", "type-detail", detail));
    if (transaction.type === "deposit" && transaction.paymentId && documents) {
      const when = parts ? `${parts.day} ${parts.time}` : "an unknown date";
      typeCell.append(" ", documentsControl(transaction, when, documents, fail));
    }

    // The sign says which way the balance moved; the colour only repeats it.
    const amount = Number.isInteger(transaction.amount) ? transaction.amount : null;
    const amountText = amount === null ? "—" : signedMoney(amount, currency);
    const amountCell = element("td", "amount");
    if (amount) amountCell.classList.add(amount > 0 ? "is-credit" : "is-debit");
    // A hold, its release or its expiry moves no credits: its $0.00 steps back from the moves around it.
    if (amount === 0) amountCell.classList.add("is-zero");
    // A long amount may wrap between digit groups rather than push the table past a narrow screen.
    amountCell.append(...(amountText.length > 12 ? wrappable(amountText) : [amountText]));
    amountCell.classList.toggle("is-long", amountText.length > 12);
    row.append(dateCell, typeCell, amountCell);
    return row;
  }

  function setCursor(next) {
    cursor = typeof next === "string" && next ? next : null;
    ui.loadMore.hidden = !cursor;
  }

  async function loadMore() {
    const asked = generation;
    const mine = shown;
    ui.loadMore.disabled = true;
    ui.loadMore.textContent = "Loading…";
    try {
      const data = await loadPage(PAGE_SIZE, cursor, ui.kind.value);
      if (asked !== generation || mine !== shown) return;
      const rows = append(data.transactions);
      setCursor(data.nextCursor);
      // The button is gone at the end of the history: keep the reader's place on the first new row.
      if (ui.loadMore.hidden && rows.length) {
        const cell = rows[0].cells[0];
        cell.tabIndex = -1;
        cell.focus();
      }
    } catch (error) {
      if (asked === generation && mine === shown) fail(error, loadMore);
    } finally {
      ui.loadMore.disabled = false;
      ui.loadMore.textContent = "Load more";
    }
  }

  ui.loadMore.addEventListener("click", loadMore);
  ui.kind.addEventListener("change", changeKind);
  return { reset, show, kind: () => ui.kind.value };
}
