// Decisions: the log with its filters, one decision with its reasons and audit record, and
// the review queue with the resolution form.

import {
  amount, api, bandBadge, clientLink, dayStart, decisionLink, el, facts, flashNext, hash, mono,
  outcomeBadge, problemBox, query, section, table, when,
} from "./core.js";
import { recordSection } from "./record.js";

const OUTCOMES = ["approved", "conditional", "review", "declined"];

/** The columns of every decision list (the client view reuses them). */
export const decisionRows = [
  ["Decided", (d) => decisionLink(d.decision_id, when(d.decided_at))],
  ["Client", (d) => clientLink(d.client_id)],
  ["Outcome", (d) => el("span", { class: "nowrap" }, outcomeBadge(d.outcome), d.resolved_by ? el("span", { class: "muted", text: " resolved" }) : null)],
  ["Requested", (d) => el("span", { class: "num", text: amount(d.requested_amount, d.currency) })],
  ["Approved", (d) => el("span", { class: "num", text: amount(d.approved_amount, d.currency) })],
  ["Terms", (d) => (d.terms_days === null || d.terms_days === undefined ? "—" : `${d.terms_days} d`)],
  ["Deposit", (d) => (d.deposit ? `${d.deposit.percent} %` : "—")],
  ["Risk", (d) => bandBadge(d.risk?.band, d.risk?.score)],
  ["Reasons", (d) => el("span", { class: "codes" }, (d.reasons || []).map((r) => el("code", { title: r.message, text: r.code })))],
];

/** A paged list: fetches `path + cursor`, appends rows, offers "Load more" while there is more. */
export function pagedTable(columns, fetchPage, empty) {
  const wrap = el("div", { class: "paged" });
  const body = el("tbody");
  const more = el("div", { class: "actions" });
  const tableEl = el(
    "table",
    {},
    el("thead", {}, el("tr", {}, columns.map(([h]) => el("th", { text: h })))),
    body,
  );
  const counter = el("span", { class: "muted" });
  let shown = 0;
  const load = async (cursor) => {
    more.replaceChildren(el("span", { class: "muted", text: "Loading…" }));
    try {
      const page = await fetchPage(cursor);
      for (const row of page.items) {
        body.append(el("tr", {}, columns.map(([, cell]) => el("td", {}, cell(row)))));
      }
      shown += page.items.length;
      counter.textContent = `${shown} shown${page.next_cursor ? ", more available" : ""}`;
      more.replaceChildren(counter);
      if (page.next_cursor) {
        more.append(el("button", { type: "button", class: "secondary", text: "Load more", onclick: () => load(page.next_cursor) }));
      }
      if (!shown) wrap.replaceChildren(el("p", { class: "empty", text: empty }));
    } catch (e) {
      more.replaceChildren(problemBox(e));
    }
  };
  wrap.append(tableEl, more);
  return { element: wrap, load };
}

/** `#/decisions?client_id=&outcome=&resolved=&from=&to=&limit=` */
export async function decisionList(container, _args, params) {
  const value = (k) => params.get(k) || "";
  const form = el(
    "form",
    { class: "filters", id: "decision-filters" },
    field("Client", el("input", { name: "client_id", value: value("client_id"), placeholder: "C-001" })),
    field("Outcome", select("outcome", ["", ...OUTCOMES], value("outcome"), "any")),
    field("Review", select("resolved", ["", "false", "true"], value("resolved"), "any", { false: "waiting", true: "resolved" })),
    field("From (UTC day)", el("input", { type: "date", name: "from", value: value("from") })),
    field("To (UTC day, inclusive)", el("input", { type: "date", name: "to", value: value("to") })),
    field("Page", select("limit", ["25", "50", "100", "200"], value("limit") || "50")),
    el("div", { class: "actions" }, el("button", { type: "submit", text: "Filter" })),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    location.hash = `#/decisions${query(data)}`;
  });
  const list = pagedTable(
    decisionRows,
    (cursor) =>
      api(
        `/v1/credit-decisions${query({
          client_id: value("client_id"),
          outcome: value("outcome"),
          resolved: value("resolved"),
          from: dayStart(value("from")),
          to: dayStart(value("to"), true),
          limit: value("limit") || "50",
          cursor,
        })}`,
      ),
    "No decision matches these filters.",
  );
  container.append(el("h1", { text: "Decision log" }), form, section("Decisions, newest first", list.element));
  await list.load();
}

/** `#/reviews`: what waits for a credit manager. */
export async function reviewQueue(container) {
  const columns = [
    ...decisionRows.filter(([h]) => !["Approved", "Deposit"].includes(h)),
    ["", (d) => el("a", { class: "button", href: `#/decision/${encodeURIComponent(d.decision_id)}`, text: "Review" })],
  ];
  const list = pagedTable(
    columns,
    (cursor) => api(`/v1/credit-decisions${query({ outcome: "review", resolved: "false", limit: 50, cursor })}`),
    "The queue is empty: no referred request waits for a decision.",
  );
  container.append(
    el("h1", { text: "Review queue" }),
    el("p", { class: "muted", text: "Requests the policies referred to a credit manager, newest first. Open one to see its reasons and resolve it." }),
    section("Waiting", list.element),
  );
  await list.load();
}

/** `#/decision/{id}`: the decision, its reasons and policies, then its audit record. */
export async function decisionView(container, [id]) {
  const d = await api(`/v1/credit-decisions/${encodeURIComponent(id || "")}`);
  const cur = d.currency;
  container.append(
    el(
      "div",
      { class: "title" },
      el("h1", {}, "Decision ", outcomeBadge(d.outcome)),
      el("p", { class: "muted" }, mono(d.decision_id), " · client ", clientLink(d.client_id), " · request ", mono(d.request_id)),
    ),
  );
  if (d.resolves) container.append(note("This decision resolves the review ", decisionLink(d.resolves, d.resolves), "."));
  if (d.resolved_by) container.append(note("This review was resolved by ", decisionLink(d.resolved_by, d.resolved_by), "."));
  container.append(
    section(
      "Terms",
      facts([
        ["Requested", amount(d.requested_amount, cur)],
        ["Approved", el("strong", { text: amount(d.approved_amount, cur) })],
        ["Terms", d.terms_days === null || d.terms_days === undefined ? "—" : `${d.terms_days} days`],
        ["Deposit", d.deposit ? `${d.deposit.percent} % = ${amount(d.deposit.amount, cur)}` : "none"],
        ["Credit limit applied", amount(d.credit_limit, cur)],
        ["Available after", amount(d.available_credit_after, cur)],
        ["Risk", bandBadge(d.risk?.band, d.risk?.score)],
        ["Decided", when(d.decided_at)],
        ["Decided by", d.decided_by],
        ["Reservation expires", when(d.expires_at)],
        d.comment ? ["Comment", d.comment] : null,
      ].filter(Boolean)),
    ),
    section(
      "Reasons",
      table(
        [
          ["Code", (r) => el("code", { class: "reason-code", text: r.code })],
          ["Message", (r) => el("span", { class: "reason-message", text: r.message })],
          ["Policy", (r) => r.policy],
          ["Version", (r) => String(r.policy_version)],
        ],
        d.reasons || [],
        "No reason was given.",
      ),
    ),
    section(
      "Policies that decided",
      table(
        [
          ["Policy", (p) => p.name],
          ["Version", (p) => String(p.version)],
          ["SHA-256", (p) => mono(p.sha256)],
        ],
        d.policies || [],
        "No policy: a credit manager decided (see the reasons).",
      ),
    ),
  );
  if (d.outcome === "review" && !d.resolved_by) container.append(resolutionForm(d));
  const audit = el("div");
  container.append(
    section(
      "Audit",
      facts([
        ["Sequence", d.audit ? el("a", { href: `#/record/${d.audit.sequence}`, text: `#${d.audit.sequence}` }) : "—"],
        ["Hash", d.audit ? hash(d.audit.hash) : "—"],
      ]),
      audit,
    ),
  );
  if (d.audit) await recordSection(audit, d.audit.sequence);
}

function note(...children) {
  return el("div", { class: "note info" }, ...children);
}

/** The credit manager's verdict; a 409 (already resolved, no room left) is shown in place. */
function resolutionForm(d) {
  const slot = el("div");
  const outcome = select("outcome", ["approved", "conditional", "declined"], "conditional");
  const form = el(
    "form",
    { class: "resolution", id: "resolution-form" },
    el("div", { class: "filters" },
      field("Outcome", outcome),
      field(`Approved amount (${d.currency})`, el("input", { name: "approved_amount", inputmode: "decimal", placeholder: d.requested_amount })),
      field("Terms (days)", el("input", { name: "terms_days", type: "number", min: 0, max: 365, placeholder: d.terms_days ?? "" })),
      field("Deposit (%)", el("input", { name: "deposit_percent", inputmode: "decimal", placeholder: "0" })),
    ),
    field("Comment (kept in the audit log)", el("textarea", { name: "comment", rows: 3, required: true })),
    slot,
    el("div", { class: "actions" }, el("button", { type: "submit", text: "Record resolution" })),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    const body = { outcome: data.outcome, comment: data.comment };
    if (data.approved_amount) body.approved_amount = data.approved_amount.trim();
    if (data.terms_days) body.terms_days = Number(data.terms_days);
    if (data.deposit_percent) body.deposit_percent = data.deposit_percent.trim();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    slot.replaceChildren();
    try {
      const resolved = await api(`/v1/credit-decisions/${encodeURIComponent(d.decision_id)}/resolution`, { method: "POST", body });
      flashNext(`Resolved: the new decision is ${resolved.outcome}, recorded as audit record #${resolved.audit?.sequence}.`);
      location.hash = `#/decision/${encodeURIComponent(resolved.decision_id)}`;
    } catch (err) {
      slot.replaceChildren(problemBox(err));
    } finally {
      button.disabled = false;
    }
  });
  return section("Resolve this review", form);
}

export function field(label, input) {
  return el("label", { class: "field" }, el("span", { text: label }), input);
}

export function select(name, options, selected, emptyLabel = "", labels = {}) {
  return el(
    "select",
    { name },
    options.map((o) => el("option", { value: o, selected: o === selected, text: o === "" ? emptyLabel : labels[o] || o })),
  );
}
