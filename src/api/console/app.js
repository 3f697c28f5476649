// The console's entry: the hash router, the header, and the token screen.

import { claims, el, flash, problemBox, scopes, setToken, signOut, token, when, whenUnauthorized } from "./core.js";
import { decisionList, decisionView, reviewQueue } from "./decisions.js";
import { auditView, recordView } from "./audit.js";
import { clientList, clientView } from "./clients.js";
import { policyList, policyView } from "./policies.js";

/** Route name → view; each view gets its container, the path's arguments and the query. */
const ROUTES = {
  token: tokenView,
  decisions: decisionList,
  decision: decisionView,
  reviews: reviewQueue,
  audit: auditView,
  record: recordView,
  clients: clientList,
  client: clientView,
  policies: policyList,
  policy: policyView,
};

/** Why the user was sent to the token screen, shown there until another token is used. */
let refused = null;

whenUnauthorized((problem) => {
  refused = problem;
  signOut();
  if (!location.hash.startsWith("#/token")) location.hash = "#/token";
  else render();
});

window.addEventListener("hashchange", render);
window.addEventListener("unhandledrejection", (e) => flash(e.reason));
window.addEventListener("error", (e) => flash(e.error || e.message));
render();

function parse() {
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, ...args] = path.split("/").map(decodeURIComponent);
  return { name: name || "decisions", args, params: new URLSearchParams(search || "") };
}

function render() {
  const route = parse();
  const view = ROUTES[route.name] && token() ? route.name : "token";
  flash(null);
  header(view);
  const container = el("div", { class: `view view-${view}` });
  document.getElementById("view").replaceChildren(container);
  Promise.resolve(ROUTES[view](container, route.args, route.params)).catch((e) => {
    container.append(problemBox(e));
  });
}

function header(view) {
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.route === view || (view === "decision" && a.dataset.route === "decisions") || (view === "policy" && a.dataset.route === "policies"));
  }
  const who = document.getElementById("who");
  const current = token();
  if (!current) {
    who.replaceChildren(el("span", { class: "muted", text: "Not signed in" }));
    return;
  }
  let sub = "?";
  try {
    sub = String(claims(current).sub ?? "?");
  } catch {
    // A token we cannot read is still sent; the server is the judge of it.
  }
  who.replaceChildren(
    el("a", { href: "#/token", title: scopes(current).join(" ") || "no scopes", text: sub }),
    el("button", { type: "button", class: "link", text: "Sign out", onclick: leave }),
  );
}

function leave() {
  signOut();
  location.hash = "#/token";
  render();
}

/** Paste a JWT; its subject, scopes and expiry are shown decoded before it is used. */
function tokenView(container) {
  const current = token();
  if (refused) container.append(problemBox(refused));
  if (current) {
    container.append(claimsCard(current));
  }
  const input = el("textarea", {
    id: "token-input",
    rows: 5,
    spellcheck: "false",
    autocomplete: "off",
    placeholder: "eyJhbGciOi…",
    "aria-label": "Bearer token (JWT)",
  });
  const preview = el("div", { class: "preview" });
  input.addEventListener("input", () => {
    preview.replaceChildren();
    if (input.value.trim()) {
      try {
        preview.append(claimsTable(input.value.trim()));
      } catch (e) {
        preview.append(el("p", { class: "warn", text: `Not a readable JWT: ${e.message}` }));
      }
    }
  });
  const form = el(
    "form",
    { id: "token-form", class: "card narrow" },
    el("h2", { text: current ? "Use another token" : "Sign in with a bearer token" }),
    el("p", {
      class: "muted",
      text: "Paste a JWT issued for you (e.g. `encours token --sub you --scope \"decisions:read clients:read audit:read reviews:write\"`). It is kept in this tab only and sent with each call; closing the tab forgets it.",
    }),
    input,
    preview,
    el("div", { class: "actions" }, el("button", { type: "submit", id: "token-submit", text: "Use this token" })),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const value = input.value.trim().replace(/^Bearer\s+/i, "");
    try {
      claims(value);
    } catch (err) {
      preview.replaceChildren(el("p", { class: "warn", text: `Not a readable JWT: ${err.message}` }));
      return;
    }
    setToken(value);
    refused = null;
    location.hash = "#/decisions";
  });
  container.append(form);
}

function claimsCard(jwt) {
  return el(
    "section",
    { class: "card narrow" },
    el("h2", { text: "Signed in" }),
    (() => {
      try {
        return claimsTable(jwt);
      } catch (e) {
        return el("p", { class: "warn", text: `The stored token is not readable: ${e.message}` });
      }
    })(),
    el("div", { class: "actions" }, el("button", { type: "button", class: "secondary", text: "Sign out", onclick: leave })),
  );
}

function claimsTable(jwt) {
  const c = claims(jwt);
  const exp = typeof c.exp === "number" ? new Date(c.exp * 1000) : null;
  const expired = exp && exp.getTime() < Date.now();
  const list = scopes(jwt);
  return el(
    "dl",
    { class: "facts" },
    el("div", {}, el("dt", { text: "Subject" }), el("dd", { id: "token-sub", text: c.sub ?? "—" })),
    el(
      "div",
      {},
      el("dt", { text: "Scopes" }),
      el("dd", { id: "token-scopes" }, list.length ? list.map((s) => el("span", { class: "chip", text: s })) : "none"),
    ),
    el(
      "div",
      {},
      el("dt", { text: "Expires" }),
      el("dd", { class: expired ? "warn" : "" }, exp ? `${when(exp.toISOString())}${expired ? " — expired" : ""}` : "—"),
    ),
    c.iss ? el("div", {}, el("dt", { text: "Issuer" }), el("dd", { text: c.iss })) : null,
  );
}
