// Clients: find one, see its live state, its event history and its decisions.

import { amount, api, bandBadge, clientLink, el, facts, mono, query, section, when } from "./core.js";
import { decisionRows, field, pagedTable, select } from "./decisions.js";

/** `#/clients?band=&status=`: a lookup by id, and the list. */
export async function clientList(container, _args, params) {
  const value = (k) => params.get(k) || "";
  const lookup = el(
    "form",
    { class: "filters", id: "client-lookup" },
    field("Client id", el("input", { name: "client_id", required: true, placeholder: "C-001" })),
    el("div", { class: "actions" }, el("button", { type: "submit", text: "Open" })),
  );
  lookup.addEventListener("submit", (e) => {
    e.preventDefault();
    const id = new FormData(lookup).get("client_id").trim();
    if (id) location.hash = `#/client/${encodeURIComponent(id)}`;
  });
  const filters = el(
    "form",
    { class: "filters" },
    field("Risk band", select("band", ["", "A", "B", "C", "D", "E"], value("band"), "any")),
    field("Status", select("status", ["", "active", "blocked"], value("status"), "any")),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "secondary", text: "Filter" })),
  );
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/clients${query(Object.fromEntries(new FormData(filters)))}`;
  });
  const list = pagedTable(
    [
      ["Client", (c) => clientLink(c.client_id)],
      ["Name", (c) => c.name],
      ["Status", (c) => `${c.status}${c.is_prospect ? " (prospect)" : ""}`],
      ["Risk", (c) => bandBadge(c.risk?.band, c.risk?.score)],
      ["Limit", (c) => num(amount(c.credit_limit, c.currency))],
      ["Exposure", (c) => num(amount(c.exposure?.total, c.currency))],
      ["Available", (c) => num(amount(c.available_credit, c.currency))],
      ["Overdue", (c) => num(amount(c.overdue?.amount, c.currency))],
    ],
    (cursor) => api(`/v1/clients${query({ band: value("band"), status: value("status"), limit: 50, cursor })}`),
    "No client matches.",
  );
  container.append(el("h1", { text: "Clients" }), section("Open a client", lookup), section("Clients, newest first", filters, list.element));
  await list.load();
}

function num(text) {
  return el("span", { class: "num", text });
}

/** `#/client/{id}`: the state the policies read, then what happened and what was decided. */
export async function clientView(container, [id]) {
  const c = await api(`/v1/clients/${encodeURIComponent(id || "")}`);
  const cur = c.currency;
  const ins = c.insurance;
  const score = c.external_score;
  const pay = c.payment_behaviour || {};
  container.append(
    el("div", { class: "title" },
      el("h1", { text: c.name }),
      el("p", { class: "muted" }, mono(c.client_id), ` · ${c.country}`, c.sector ? ` · NACE ${c.sector}` : "",
        c.registration_number ? ` · reg. ${c.registration_number}` : "", ` · ${c.status}`, c.is_prospect ? " · prospect" : "")),
    section(
      "Credit",
      facts([
        ["Credit limit", amount(c.credit_limit, cur)],
        ["Exposure", `${amount(c.exposure?.total, cur)} (invoices ${amount(c.exposure?.open_invoices)}, reserved ${amount(c.exposure?.reserved)})`],
        ["Available credit", el("strong", { text: amount(c.available_credit, cur) })],
        ["Overdue", `${amount(c.overdue?.amount, cur)}${c.overdue?.max_days_past_due ? `, oldest ${c.overdue.max_days_past_due} days past due` : ""}`],
        ["Payment behaviour", `${pay.invoices_paid ?? 0} paid, ${pay.paid_late ?? 0} late${pay.average_days_late !== null && pay.average_days_late !== undefined ? ` (avg ${pay.average_days_late} days)` : ""}`],
        ["Insurance", ins ? `${ins.insurer}: ${amount(ins.insured_amount, cur)}${ins.valid_until ? ` until ${ins.valid_until}` : ""}` : "none"],
        ["External score", score ? `${score.score}/100 (${score.provider}, ${score.as_of})` : "none"],
        ["Sales alerts", `${c.alerts?.negative ?? 0} negative, ${c.alerts?.positive ?? 0} positive`],
        ["Legal status", c.legal_status],
        ["Risk", bandBadge(c.risk?.band, c.risk?.score)],
        ["Updated", when(c.updated_at)],
      ]),
      c.risk?.factors?.length
        ? el("p", { class: "factors" }, "Risk factors: ", c.risk.factors.map((f) => el("span", { class: "chip", text: `${f.code} ${f.points > 0 ? "+" : ""}${f.points}` })))
        : null,
    ),
  );
  const decisions = pagedTable(
    decisionRows.filter(([h]) => h !== "Client"),
    (cursor) => api(`/v1/credit-decisions${query({ client_id: c.client_id, limit: 25, cursor })}`),
    "No decision for this client yet.",
  );
  const events = pagedTable(
    [
      ["Received", (e) => when(e.received_at)],
      ["Occurred", (e) => when(e.event?.occurred_at)],
      ["Type", (e) => mono(e.event?.type)],
      ["Event id", (e) => e.event?.event_id],
      ["Details", (e) => eventDetail(e.event || {})],
      ["By", (e) => e.received_by],
    ],
    (cursor) => api(`/v1/clients/${encodeURIComponent(c.client_id)}/events${query({ limit: 25, cursor })}`),
    "No event received for this client yet.",
  );
  container.append(section("Decisions", decisions.element), section("Event history", events.element));
  await Promise.all([decisions.load(), events.load()]);
}

function eventDetail(e) {
  const skip = new Set(["event_id", "client_id", "type", "occurred_at"]);
  return Object.entries(e)
    .filter(([k]) => !skip.has(k))
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(" · ");
}
