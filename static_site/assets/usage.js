// The last 30 days as a picture (credits used per day, top-ups marked) with the same numbers as a table
// and a sentence, and the history of any date range as a CSV file the API makes. No chart library: the
// bars are SVG elements made here, under the page's CSP (script-src 'self', no inline styles).
import { money } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 160;
const AXIS = 18;
// The export's bounds, as GET /api/balance/export holds them (wallet/activity.py).
export const MAX_EXPORT_DAYS = 366;
const DAY_MS = 86_400_000;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

/** "2026-11-08" -> "8 Nov", read in UTC, as the API counts days. */
export function dayLabel(day) {
  const date = new Date(`${day}T00:00:00Z`);
  if (Number.isNaN(date.getTime())) return String(day);
  return date.toLocaleDateString(undefined, { day: "numeric", month: "short", timeZone: "UTC" });
}

/** One sentence for the whole period: what was used, on how many days, the busiest, and the top-ups. */
export function summary(days, currency) {
  const counted = days.filter((day) => Number.isInteger(day.used));
  if (!counted.length) return "No usage could be counted for the last 30 days.";
  const used = counted.reduce((sum, day) => sum + day.used, 0);
  const topUps = counted.reduce((sum, day) => sum + (day.topUps ?? 0), 0);
  const busiest = counted.reduce((best, day) => (day.used > best.used ? day : best), counted[0]);
  const parts = [
    used
      ? `${money(used, currency)} used over the last ${days.length} days, the most on ${dayLabel(busiest.date)} (${money(busiest.used, currency)})`
      : `Nothing used over the last ${days.length} days`,
    topUps === 1 ? "1 top-up" : `${topUps} top-ups`,
  ];
  const uncounted = days.length - counted.length;
  if (uncounted) parts.push(`the ${uncounted} oldest days were too busy to count here: export them instead`);
  return `${parts.join("; ")}.`;
}

/** The card: `api()` is the signed API, `fail(error, retry)` says why something did not work. */
export function createUsage({ api, fail }) {
  const byId = (id) => document.getElementById(id);
  const ui = {
    card: byId("usage"),
    chart: byId("usage-chart"),
    summary: byId("usage-summary"),
    rows: byId("usage-rows"),
    form: byId("export-form"),
    from: byId("export-from"),
    to: byId("export-to"),
    submit: byId("export-submit"),
    message: byId("export-message"),
  };
  let generation = 0;

  function reset() {
    generation += 1;
    ui.chart.replaceChildren();
    ui.rows.replaceChildren();
    ui.summary.textContent = "Loading…";
    ui.card.setAttribute("aria-busy", "true");
    say("");
    const today = new Date().toISOString().slice(0, 10);
    ui.to.value = today;
    ui.from.value = new Date(Date.now() - 29 * DAY_MS).toISOString().slice(0, 10);
  }

  async function load(currency) {
    const asked = generation;
    try {
      const data = await api().daily();
      if (asked !== generation) return;
      show(Array.isArray(data.days) ? data.days : [], data.currency ?? currency);
    } catch (error) {
      if (asked !== generation) return;
      ui.summary.textContent = "The last 30 days could not be loaded.";
      fail(error, () => load(currency));
    } finally {
      if (asked === generation) ui.card.removeAttribute("aria-busy");
    }
  }

  function show(days, currency) {
    ui.summary.textContent = summary(days, currency);
    drawChart(days, currency);
    ui.rows.replaceChildren(...days.map((day) => tableRow(day, currency)));
  }

  function drawChart(days, currency) {
    const most = Math.max(1, ...days.map((day) => (Number.isInteger(day.used) ? day.used : 0)));
    const step = WIDTH / Math.max(days.length, 1);
    const plot = HEIGHT - AXIS;
    const picture = svg("svg", {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      class: "usage-svg",
      role: "img",
      "aria-labelledby": "usage-summary",
      focusable: "false",
    });
    picture.append(svg("line", { x1: 0, y1: plot, x2: WIDTH, y2: plot, class: "usage-axis" }));
    days.forEach((day, index) => {
      const x = index * step;
      if (Number.isInteger(day.used) && day.used > 0) {
        const height = Math.max(1, Math.round((day.used / most) * (plot - 14)));
        const bar = svg("rect", {
          x: x + step * 0.15,
          y: plot - height,
          width: step * 0.7,
          height,
          class: "usage-bar",
        });
        const title = svg("title", {});
        title.textContent = `${dayLabel(day.date)}: ${money(day.used, currency)} used`;
        bar.append(title);
        picture.append(bar);
      }
      if (day.topUps) {
        // A top-up: a diamond above the day's bar line, in the colour of credits coming in.
        const cx = x + step / 2;
        const marker = svg("path", { d: `M${cx} 2 l5 5 l-5 5 l-5 -5 z`, class: "usage-topup" });
        const title = svg("title", {});
        title.textContent = `${dayLabel(day.date)}: topped up ${money(day.toppedUp ?? 0, currency)}`;
        marker.append(title);
        picture.append(marker);
      }
      // The first and last days, and each week between, away from the last so their labels never meet.
      const last = index === days.length - 1;
      if (index === 0 || last || (index % 7 === 0 && days.length - 1 - index >= 4)) {
        const place = index === 0 ? ["is-first", x] : last ? ["is-last", x + step] : ["", x + step / 2];
        const label = svg("text", { x: place[1], y: HEIGHT - 4, class: `usage-label ${place[0]}`.trim() });
        label.textContent = dayLabel(day.date);
        picture.append(label);
      }
    });
    ui.chart.replaceChildren(picture);
  }

  function tableRow(day, currency) {
    const row = element("tr");
    const date = element("th", "date", dayLabel(day.date));
    date.scope = "row";
    const used = Number.isInteger(day.used) ? money(day.used, currency) : "Not counted";
    const topUp = day.topUps ? `${money(day.toppedUp ?? 0, currency)} (${day.topUps})` : "—";
    row.append(date, element("td", "amount", used), element("td", "amount", topUp));
    return row;
  }

  function say(text, tone = "info") {
    ui.message.textContent = text;
    ui.message.dataset.tone = text ? tone : "";
  }

  /** The range as the API takes it, or a sentence saying what is wrong with it. */
  function range() {
    const from = ui.from.value;
    const to = ui.to.value;
    if (!from || !to) return { error: "Choose the first and the last day." };
    if (to < from) return { error: "The last day must not be before the first." };
    const days = Math.round((Date.parse(to) - Date.parse(from)) / DAY_MS) + 1;
    if (days > MAX_EXPORT_DAYS) return { error: `Choose at most ${MAX_EXPORT_DAYS} days at a time.` };
    return { from, to };
  }

  async function download(event) {
    event.preventDefault();
    const chosen = range();
    if (chosen.error) {
      say(chosen.error, "error");
      return;
    }
    ui.submit.disabled = true;
    say("Preparing the file…");
    try {
      const file = await api().exportCsv(chosen.from, chosen.to);
      const link = element("a");
      link.href = URL.createObjectURL(file.blob);
      link.download = file.filename || `credits-${chosen.from}-to-${chosen.to}.csv`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      say(`Downloaded ${link.download}.`, "success");
    } catch (error) {
      say(error?.message || "The file could not be made. Try again.", "error");
      if (error?.kind === "unauthorized") fail(error);
    } finally {
      ui.submit.disabled = false;
    }
  }

  ui.form.addEventListener("submit", download);
  reset();
  return { reset, load };
}
