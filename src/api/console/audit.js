// The audit chain: verify it, browse and filter its records, export it, read one record.

import {
  actionButton, api, clientLink, dayStart, download, el, hash, link, mono, query, section, when,
} from "./core.js";
import { field, pagedTable, select } from "./decisions.js";
import { recordParts } from "./record.js";

/** `#/audit?kind=&client_id=&from=&to=&order=&limit=` */
export async function auditView(container, _args, params) {
  const value = (k) => params.get(k) || "";
  const verifySlot = el("div", { class: "verify" });
  const verify = section(
    "Chain integrity",
    el("p", { class: "muted", text: "Recomputes every record's hash and link, from the first record to the head." }),
    el("div", { class: "actions" }, actionButton("Verify chain", () => verifyChain(verifySlot), verifySlot)),
    verifySlot,
  );

  const form = el(
    "form",
    { class: "filters", id: "audit-filters" },
    field("Kind", el("input", { name: "kind", value: value("kind"), placeholder: "decision" })),
    field("Client", el("input", { name: "client_id", value: value("client_id"), placeholder: "C-001" })),
    field("From (UTC day)", el("input", { type: "date", name: "from", value: value("from") })),
    field("To (UTC day, inclusive)", el("input", { type: "date", name: "to", value: value("to") })),
    field("Order", select("order", ["desc", "asc"], value("order") || "desc", "", { desc: "newest first", asc: "oldest first" })),
    field("Page", select("limit", ["25", "50", "100", "200"], value("limit") || "50")),
    el("div", { class: "actions" }, el("button", { type: "submit", text: "Filter" })),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/audit${query(Object.fromEntries(new FormData(form)))}`;
  });
  const range = { from: dayStart(value("from")), to: dayStart(value("to"), true) };
  const list = pagedTable(
    [
      ["#", (r) => link(`#/record/${r.sequence}`, `#${r.sequence}`)],
      ["Recorded", (r) => when(r.recorded_at)],
      ["Kind", (r) => mono(r.kind)],
      ["Subject", (r) => r.subject],
      ["Client", (r) => clientLink(r.client_id)],
      ["Actor", (r) => r.actor],
      ["Hash", (r) => hash(r.hash)],
    ],
    (cursor) =>
      api(
        `/v1/audit/records${query({
          kind: value("kind"),
          client_id: value("client_id"),
          ...range,
          order: value("order") || "desc",
          limit: value("limit") || "50",
          cursor,
        })}`,
      ),
    "No audit record matches these filters.",
  );

  container.append(
    el("h1", { text: "Audit" }),
    verify,
    exportSection(range),
    section("Records", form, list.element),
  );
  await list.load();
}

async function verifyChain(slot) {
  const v = await api("/v1/audit/verify");
  const head = v.head ? el("span", {}, ` Head: #${v.head.sequence} `, hash(v.head.hash)) : "";
  slot.replaceChildren(
    v.ok
      ? el("div", { class: "note ok", id: "verify-result" }, el("strong", { text: "Chain intact. " }), `${v.records} records check out.`, head)
      : el(
          "div",
          { class: "note bad", id: "verify-result" },
          el("strong", { text: "Chain broken. " }),
          `The first record that does not check out is `,
          link(`#/record/${v.first_broken}`, `#${v.first_broken}`),
          ` (of ${v.records}).`,
          head,
        ),
  );
}

/** A plain link cannot carry the bearer header, so the export is fetched and saved as a file. */
function exportSection(range) {
  const slot = el("div");
  const button = (format) =>
    actionButton(
      format.toUpperCase(),
      async () => {
        const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
        const name = `encours-audit-${stamp}.${format}`;
        const size = await download(`/v1/audit/export${query({ format, ...range })}`, name);
        slot.replaceChildren(el("div", { class: "note ok", text: `Saved ${name} (${size.toLocaleString("en")} bytes).` }));
      },
      slot,
    );
  return section(
    "Export",
    el("p", {
      class: "muted",
      text: `Every record ${range.from || range.to ? "in the date range of the filters below" : "of the chain"}, with its payload and hashes: NDJSON (one record a line) or CSV.`,
    }),
    el("div", { class: "actions" }, button("ndjson"), button("csv")),
    slot,
  );
}

/** `#/record/{sequence}` */
export async function recordView(container, [sequence]) {
  const r = await api(`/v1/audit/records/${encodeURIComponent(sequence || "")}`);
  container.append(
    el("div", { class: "title" },
      el("h1", {}, `Audit record #${r.sequence} `, mono(r.kind)),
      el("p", { class: "muted" },
        r.sequence > 1 ? link(`#/record/${r.sequence - 1}`, "← previous") : null,
        " ",
        link(`#/record/${r.sequence + 1}`, "next →"))),
    section("Record", ...recordParts(r)),
  );
}
