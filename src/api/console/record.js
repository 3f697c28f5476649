// One audit record, readably: who, when, its place in the chain, and for a decision the input
// snapshot, the request, each policy stage's trace, and a replay against the recorded policies.

import {
  actionButton, api, clientLink, decisionLink, el, facts, flatTable, hash, mono, problemBox,
  rawJson, scalar, table, when,
} from "./core.js";

/** Fetches record `sequence` and renders it into `slot`; a 403 (no `audit:read`) stays local. */
export async function recordSection(slot, sequence) {
  slot.replaceChildren(el("p", { class: "muted", text: `Loading audit record #${sequence}…` }));
  let record;
  try {
    record = await api(`/v1/audit/records/${encodeURIComponent(sequence)}`);
  } catch (e) {
    slot.replaceChildren(
      el("p", { class: "muted", text: "The audit record (input snapshot and policy trace) could not be read:" }),
      problemBox(e),
    );
    return;
  }
  slot.replaceChildren(...recordParts(record, true));
}

/** The record's parts; `embedded` (under its decision) leaves out what the decision shows. */
export function recordParts(r, embedded = false) {
  const p = r.payload || {};
  const parts = [
    facts([
      ["Kind", mono(r.kind)],
      ["Subject", r.subject],
      ["Client", clientLink(r.client_id)],
      ["Actor", r.actor],
      ["Recorded", when(r.recorded_at)],
      embedded ? null : ["Sequence", `#${r.sequence}`],
      ["Previous hash", hash(r.prev_hash)],
      embedded ? null : ["Hash", hash(r.hash)],
      p.decision_id && !embedded ? ["Decision", decisionLink(p.decision_id, p.decision_id)] : null,
    ].filter(Boolean)),
  ];
  const replaySlot = el("div", { class: "replay" });
  if (p.result) {
    parts.push(
      el("div", { class: "actions" },
        actionButton("Replay with the recorded policies", async () => replay(r.sequence, replaySlot), replaySlot)),
      replaySlot,
    );
  }
  if (p.request) parts.push(el("h3", { text: "Request" }), flatTable(p.request));
  if (p.client) parts.push(el("h3", { text: "Client snapshot (what the policies read)" }), flatTable(p.client));
  if (p.result && Array.isArray(p.result.trace)) {
    parts.push(el("h3", { text: "Policy trace" }), ...p.result.trace.map(stage));
  }
  if (!p.request && !p.client && !p.result) parts.push(el("h3", { text: "Payload" }), flatTable(p));
  parts.push(rawJson("Raw record JSON", r));
  return parts;
}

async function replay(sequence, slot) {
  const res = await api(`/v1/audit/records/${encodeURIComponent(sequence)}/replay`, { method: "POST" });
  if (res.identical) {
    slot.replaceChildren(
      el("div", { class: "note ok", id: "replay-result" },
        el("strong", { text: "Identical. " }),
        `Replaying record #${res.sequence} with the policy versions it names gives the recorded decision.`),
    );
    return;
  }
  const differences = Array.isArray(res.differences) ? res.differences : [];
  slot.replaceChildren(
    el("div", { class: "note bad", id: "replay-result" },
      el("strong", { text: "Different. " }),
      `The replay of record #${res.sequence} differs in ${differences.length} place(s).`),
    table(
      [
        ["Path", (d) => mono(d.path)],
        ["Recorded", (d) => scalar(d.original)],
        ["Replayed", (d) => scalar(d.replayed)],
      ],
      differences,
    ),
    rawJson("Raw replay JSON", res),
  );
}

/** One policy stage: what it did (effects), what it printed, what it cost, how it failed. */
function stage(s) {
  const error = s.error
    ? el("div", { class: "problem" }, el("strong", { text: "Stage failed" }), el("pre", { text: typeof s.error === "string" ? s.error : JSON.stringify(s.error, null, 2) }))
    : null;
  return el(
    "div",
    { class: `stage${s.error ? " failed" : ""}` },
    el("div", { class: "stage-head" },
      el("strong", { text: s.policy }),
      el("span", { class: "chip", text: `v${s.version}` }),
      el("span", { class: "muted", text: `${s.duration_us ?? "?"} µs · ${s.operations ?? "?"} operations` }),
      s.sha256 ? hash(s.sha256) : null),
    error,
    table(
      [
        ["Effect", (e) => mono(e.kind)],
        ["Code", (e) => el("code", { text: e.code })],
        ["Message", (e) => e.message],
        ["Detail", (e) => effectDetail(e)],
      ],
      s.effects || [],
      "No effect.",
    ),
    s.logs && s.logs.length ? el("pre", { class: "logs", text: s.logs.join("\n") }) : null,
  );
}

/** The parameters of an effect other than the common ones: amount, percent, days, score… */
function effectDetail(e) {
  const skip = new Set(["kind", "code", "message", "policy", "policy_version"]);
  const rest = Object.entries(e).filter(([k]) => !skip.has(k));
  if (!rest.length) return "";
  return rest
    .map(([k, v]) => {
      if (k === "factors" && Array.isArray(v)) return `factors: ${v.map((f) => `${f.code} ${f.points > 0 ? "+" : ""}${f.points}`).join(", ")}`;
      return `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`;
    })
    .join(" · ");
}
