// Policies: the stages and their versions; for one version, a backtest over logged decisions
// (what it would have changed) and the report of its shadow run on live traffic.

import {
  actionButton, amount, api, clientLink, dayStart, decisionLink, el, facts, hash, link, mono,
  outcomeBadge, Problem, problemBox, section, table, when,
} from "./core.js";
import { field, pagedTable, select } from "./decisions.js";

/** `#/policies` */
export async function policyList(container) {
  const { items } = await api("/v1/policies");
  container.append(
    el("h1", { text: "Policies" }),
    el("p", { class: "muted", text: "The stages of both pipelines, in order. Open a version to backtest it on logged decisions or read its shadow report." }),
    section(
      "Stages",
      table(
        [
          ["Stage", (p) => mono(p.name)],
          ["Trigger", (p) => p.trigger],
          ["Position", (p) => String(p.position)],
          ["Active", (p) => (p.active_version ? link(`#/policy/${encodeURIComponent(p.name)}/${p.active_version}`, `v${p.active_version}`) : "—")],
          ["Versions", (p) => el("span", { class: "codes" }, p.versions.map((v) => versionLink(p.name, v)))],
        ],
        items,
        "No policy is stored.",
      ),
    ),
  );
}

function versionLink(name, v) {
  return el(
    "a",
    { href: `#/policy/${encodeURIComponent(name)}/${v.version}`, title: v.description, class: v.active ? "active-version" : "" },
    `v${v.version}`,
  );
}

/** `#/policy/{name}/{version}` */
export async function policyView(container, [name, number]) {
  const p = await api(`/v1/policies/${encodeURIComponent(name || "")}`);
  const v = p.versions.find((x) => String(x.version) === String(number));
  if (!v) throw new Problem(404, { title: "Not found", detail: `${p.name} has no version ${number}.`, code: "not_found" });
  container.append(
    el("div", { class: "title" },
      el("h1", {}, `${p.name} v${v.version} `, v.active ? el("span", { class: "chip", text: "active" }) : null),
      el("p", { class: "muted" }, link("#/policies", "← policies"))),
    section("Version", facts([
      ["Description", v.description],
      ["Author", v.author],
      ["Created", when(v.created_at)],
      ["Active version", p.active_version ? `v${p.active_version}` : "none"],
      ["sha256", hash(v.sha256)],
    ])),
    backtestSection(p.name, v.version),
    await shadowSection(p.name, v.version),
  );
}

function backtestSection(name, version) {
  const result = el("div", { id: "backtest-result" });
  const form = el(
    "form",
    { class: "filters", id: "backtest-form" },
    field("From (UTC day)", el("input", { type: "date", name: "from" })),
    field("To (UTC day, inclusive)", el("input", { type: "date", name: "to" })),
    field("Most recent decisions", el("input", { type: "number", name: "limit", min: 1, max: 100000, value: 10000 })),
    field("Changes per page", select("changes_limit", ["25", "100", "500"], "100")),
    el("div", { class: "actions" }, el("button", { type: "submit", id: "backtest-run", text: "Run backtest" })),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    const body = { limit: Number(data.limit), changes_limit: Number(data.changes_limit) };
    if (data.from) body.from = dayStart(data.from);
    if (data.to) body.to = dayStart(data.to, true);
    const button = form.querySelector("button");
    button.disabled = true;
    result.replaceChildren(el("p", { class: "muted", text: "Re-running logged decisions…" }));
    try {
      await showBacktest(result, name, version, body);
    } catch (err) {
      result.replaceChildren(problemBox(err));
    } finally {
      button.disabled = false;
    }
  });
  return section(
    "Backtest",
    el("p", { class: "muted", text: `Re-runs logged decisions with v${version} in place of the ${name} version they recorded, every other stage as recorded, and compares with what was answered. Nothing is written.` }),
    form,
    result,
  );
}

async function showBacktest(slot, name, version, body) {
  const path = `/v1/policies/${encodeURIComponent(name)}/versions/${version}/backtest`;
  const first = await api(path, { method: "POST", body });
  const s = first.skipped;
  const changes = pagedTable(
    changeColumns,
    async (cursor) => {
      const page = cursor ? await api(path, { method: "POST", body: { ...body, cursor } }) : first;
      return { items: page.changes, next_cursor: page.next_cursor };
    },
    "No decision would change.",
  );
  slot.replaceChildren(
    el("div", { class: first.changed ? "note info" : "note ok", id: "backtest-summary" },
      el("strong", { text: `${first.changed} of ${first.replayed} decisions would change. ` }),
      `${s.total} skipped (stage not run ${s.stage_not_run}, version missing ${s.version_missing}, unreadable ${s.unreadable}); up to record #${first.upto}, in ${first.duration_ms} ms.`),
    comparisonParts(first.comparison),
    el("h3", { text: "Changed decisions" }),
    changes.element,
  );
  await changes.load();
}

const changeColumns = [
  ["Decision", (c) => decisionLink(c.decision_id)],
  ["Record", (c) => link(`#/record/${c.sequence}`, `#${c.sequence}`)],
  ["Client", (c) => clientLink(c.client_id)],
  ["Recorded", (c) => terms(c.recorded)],
  ["With this version", (c) => terms(c.challenger)],
];

function terms(t) {
  return el("span", { class: "nowrap" },
    outcomeBadge(t.outcome),
    ` ${amount(t.approved_amount, t.currency)}`,
    Number(t.deposit_percent) ? `, deposit ${t.deposit_percent} % (${amount(t.deposit_amount)})` : "",
    t.terms_days === null || t.terms_days === undefined ? "" : `, ${t.terms_days} d`);
}

/** The outcome matrix, amounts per currency and terms moves of a `Comparison`. */
export function comparisonParts(c) {
  const froms = Object.keys(c.outcomes);
  const tos = [...new Set(froms.flatMap((f) => Object.keys(c.outcomes[f])))].sort();
  const matrix = froms.length
    ? el("table", { class: "matrix", id: "outcome-matrix" },
        el("thead", {}, el("tr", {}, el("th", { text: "Recorded ↓ / now →" }), tos.map((t) => el("th", {}, outcomeBadge(t))))),
        el("tbody", {}, froms.map((f) => el("tr", {},
          el("th", {}, outcomeBadge(f)),
          tos.map((t) => el("td", { class: `num${f === t ? " same" : c.outcomes[f][t] ? " moved" : ""}`, text: String(c.outcomes[f][t] || 0) }))))))
    : el("p", { class: "empty", text: "No decision compared." });
  const amounts = table(
    [
      ["Currency", ([cur]) => cur],
      ["Approved, recorded", ([cur, a]) => el("span", { class: "num", text: amount(a.recorded_approved, cur) })],
      ["Approved, now", ([cur, a]) => el("span", { class: "num", text: amount(a.challenger_approved, cur) })],
      ["Deposits, recorded", ([cur, a]) => el("span", { class: "num", text: amount(a.recorded_deposits, cur) })],
      ["Deposits, now", ([cur, a]) => el("span", { class: "num", text: amount(a.challenger_deposits, cur) })],
    ],
    Object.entries(c.amounts),
    "No amount.",
  );
  return el("div", {},
    el("h3", { text: "Outcomes" }), matrix,
    el("h3", { text: "Amounts" }), amounts,
    el("p", { class: "muted", text: `Terms: ${c.terms.shortened} shortened, ${c.terms.lengthened} lengthened, ${c.terms.given_by_one_side} given by one side only.` }));
}

async function shadowSection(name, version) {
  const slot = el("div", { id: "shadow-report" });
  const load = async () => {
    try {
      const r = await api(`/v1/policies/${encodeURIComponent(name)}/versions/${version}/shadow`);
      slot.replaceChildren(
        facts([
          ["Sample rate", String(r.sample_rate)],
          ["Started", `${when(r.started_at)} by ${r.started_by}`],
          ["Stopped", r.stopped_at ? when(r.stopped_at) : "running"],
          ["Decisions seen", String(r.seen)],
        ]),
        comparisonParts(r.comparison),
        el("h3", { text: "Changed decisions" }),
        table(changeColumns, r.changes || [], "No decision would change."),
      );
    } catch (e) {
      if (e instanceof Problem && e.status === 404) {
        slot.replaceChildren(el("p", { class: "empty", text: `v${version} has no shadow run.` }));
      } else {
        slot.replaceChildren(problemBox(e));
      }
    }
  };
  await load();
  return section(
    "Shadow run",
    el("p", { class: "muted", text: "How this version compares with the champion on live decisions since its shadow run started." }),
    el("div", { class: "actions" }, actionButton("Refresh", load, slot)),
    slot,
  );
}
