// Audit log, token tester and members.

import { CursorPages, api, confirmAction, displayName, errorBox, field, h, hiddenText, showFieldErrors, statusArea, table, when } from "./admin-core.js";

// -- audit ------------------------------------------------------------------------

const KNOWN_ACTIONS = [
  "project:created",
  "project:settings:changed",
  "project:member:added",
  "project.member_removed",
  "project:signing_key:generated",
  "project:signing_key:read",
  "project:api_key:created",
  "project:api_key:revoked",
  "project:api_key:rejected",
  "project:webhook:created",
  "project:webhook:deleted",
  "project:webhook:delivery_resent",
  "end_user:created",
  "end_user:signin:succeeded",
  "end_user:signin:failed",
  "end_user:token:rejected",
  "end_user:seat_limit:reached",
  "end_user:visitor:merged",
  "identity.claimed",
  "session:ended",
  "user.signed_out_everywhere",
];

function detailsText(details) {
  const entries = Object.entries(details || {});
  if (!entries.length) return h("span", { class: "muted" }, "none");
  return entries.map(([key, value]) => `${key}: ${typeof value === "object" ? JSON.stringify(value) : String(value)}`).join("; ");
}

export function renderAudit(ctx) {
  const { body, view, pid } = ctx;
  const seen = new Set(KNOWN_ACTIONS);
  const datalist = h("datalist", { id: "audit-actions" });
  const action = field({
    label: "Action",
    kind: "text",
    name: "action",
    hint: "Only events with exactly this action, e.g. end_user:token:rejected. Empty: every event.",
    attrs: { list: "audit-actions", autocomplete: "off", spellcheck: "false" },
  });
  const apply = h("button", { type: "submit" }, "Filter");
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter the audit log" }, action.wrap, h("div", { class: "actions" }, apply), datalist);
  const listArea = h("div", { "aria-live": "polite" });
  const pager = h("div", { class: "pager" });
  const pages = new CursorPages(() => load());

  function fillActions() {
    datalist.replaceChildren(...Array.from(seen).sort().map((a) => h("option", { value: a })));
  }

  async function load() {
    listArea.setAttribute("aria-busy", "true");
    try {
      const page = await api("GET", `/v1/projects/${encodeURIComponent(pid)}/audit`, undefined, {
        query: { action: action.control.value.trim(), cursor: pages.cursor, limit: 50 },
      });
      if (!view.alive) return;
      const events = page.events || [];
      events.forEach((e) => seen.add(e.action));
      fillActions();
      listArea.replaceChildren(
        events.length
          ? table("Audit events, newest first", [
              ["When", (e) => when(e.at)],
              ["Action", (e) => h("code", {}, e.action)],
              ["Actor", (e) => (e.actorType ? `${e.actorType} ${e.actorId || ""}`.trim() : h("span", { class: "muted" }, "unknown"))],
              ["Subject", (e) => e.subjectId || h("span", { class: "muted" }, "none")],
              ["Address", (e) => e.ip || h("span", { class: "muted" }, "unknown")],
              ["Reason", (e) => e.reason || h("span", { class: "muted" }, "none")],
              ["Details", (e) => detailsText(e.details)],
            ], events)
          : h("p", {}, "No events match."),
      );
      pager.replaceChildren(...pages.controls(page.next_cursor));
    } catch (err) {
      if (!view.alive) return;
      listArea.replaceChildren(errorBox(err));
      pager.replaceChildren();
    } finally {
      listArea.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    pages.restart();
    load();
  });
  fillActions();
  body.replaceChildren(
    h(
      "section",
      {},
      h("h2", { id: "audit-heading" }, "Audit"),
      h("p", { class: "muted" }, "What happened in this project, newest first: sign-ins and their failures with the reason, users created, secrets and keys, settings changed. It never holds a token, a password or a secret. Only owners may read it."),
      form,
      listArea,
      pager,
    ),
  );
  load();
}

// -- token tester -------------------------------------------------------------------

const TEST_METHODS = [
  ["external_code", "External auth code", "TypingMind-style code from a link or the widget (payload user.id, id or email)."],
  ["custom_token", "Custom token", "Tiledesk-style token (claims _id, sub = userexternal, aud naming this project)."],
  ["customer_login", "Customer login", "Kustomer-style token (claims externalId and/or email, and a fresh iat)."],
];

const WOULD = {
  sign_in: "Sign in the existing user",
  create: "Create a new user and sign them in",
  refuse: "Refuse the sign-in",
};

export function renderTester(ctx) {
  const { body, view, pid } = ctx;
  const token = field({
    label: "Token",
    kind: "textarea",
    name: "token",
    hint: "A token your backend signed for this project (three base64url parts separated by dots).",
    attrs: { spellcheck: "false", autocomplete: "off", class: "mono", rows: 5 },
  });
  // A list, not radio buttons: "Custom token" as a label would also answer to "Token".
  const method = field({
    label: "Method",
    kind: "select",
    name: "method",
    options: TEST_METHODS.map(([value, label]) => [value, label]),
    value: "external_code",
    hint: TEST_METHODS[0][2],
  });
  const methodHint = method.wrap.querySelector(".hint");
  method.control.addEventListener("change", () => {
    methodHint.textContent = (TEST_METHODS.find(([v]) => v === method.control.value) || TEST_METHODS[0])[2];
  });
  const check = h("button", { type: "submit", class: "primary" }, "Check");
  const status = statusArea();
  const result = h("div", { id: "token-result", "aria-live": "polite" });
  const form = h("form", { class: "card", novalidate: true }, token.wrap, method.wrap, h("div", { class: "actions" }, check), status);

  function show(answer) {
    const accepted = !!answer.accepted;
    const blocks = [
      h("h3", { class: accepted ? "verdict good" : "verdict bad" }, accepted ? "Accepted" : "Refused"),
      h("p", { class: "verdict-message" }, answer.message || ""),
    ];
    const pairs = [];
    pairs.push(["Method", TEST_METHODS.find(([v]) => v === answer.method)?.[1] || answer.method]);
    if (answer.reason) pairs.push(["Reason", h("code", { class: "reason" }, answer.reason)]);
    if (answer.would) pairs.push(["What would happen", WOULD[answer.would] || answer.would]);
    if (answer.identity) {
      const parts = Object.entries(answer.identity)
        .filter(([, v]) => v !== null && v !== undefined)
        .map(([k, v]) => `${k} ${v}`);
      pairs.push(["Identifies", parts.length ? parts.join(", ") : "nobody"]);
    }
    if (answer.user) pairs.push(["Existing user", h("a", { href: ctx.link("users", answer.user._id) }, displayName(answer.user))]);
    blocks.push(h("dl", { class: "pairs" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
    if (answer.claims) {
      blocks.push(
        h("h4", {}, "Decoded claims"),
        h("dl", { class: "pairs claims" }, Object.entries(answer.claims).map(([k, v]) => [h("dt", {}, k), h("dd", {}, h("code", {}, JSON.stringify(v)))])),
      );
    } else {
      blocks.push(h("p", { class: "muted" }, "The token could not be decoded."));
    }
    blocks.push(h("p", { class: "muted" }, "Nothing was signed in, created or used up by this check."));
    result.replaceChildren(h("div", { class: accepted ? "card result good" : "card result bad" }, ...blocks));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    check.disabled = true;
    status.info("Checking…");
    try {
      const answer = await api("POST", `/v1/projects/${encodeURIComponent(pid)}/token-check`, {
        token: token.control.value.trim(),
        method: method.control.value,
      });
      if (!view.alive) return;
      showFieldErrors({}, { token });
      status.clear();
      show(answer);
    } catch (err) {
      if (!view.alive) return;
      if (err.code === "validation_failed") showFieldErrors(err.fields, { token, method });
      status.error(err);
      result.replaceChildren();
    } finally {
      check.disabled = false;
    }
  });

  body.replaceChildren(
    h(
      "section",
      {},
      h("h2", { id: "tester-heading" }, "Token tester"),
      h("p", { class: "muted" }, "Paste a token your backend made and see whether this project would accept it, why not, and what a real sign-in would do. The check signs nobody in and uses nothing up: a token with a jti stays usable."),
      form,
      result,
    ),
  );
}

// -- members -------------------------------------------------------------------------

const MEMBER_ROLES = [
  ["admin", "Admin"],
  ["owner", "Owner"],
];

function lastOwnerText(err) {
  return err.code === "last_owner" ? "A project needs at least one owner: make someone else owner first." : null;
}

export function renderMembers(ctx) {
  const { body, view, pid } = ctx;
  const base = `/v1/projects/${encodeURIComponent(pid)}/members`;
  const listArea = h("div", {}, h("p", { class: "muted" }, "Loading the members…"));
  const listStatus = statusArea();
  const status = statusArea();
  const email = field({ label: "Email", kind: "email", name: "email", hint: "The email of an existing staff account: they sign up on this panel first." });
  const role = field({ label: "Role", kind: "select", name: "role", options: MEMBER_ROLES, value: "admin", hint: "Admins manage settings, keys and users and answer conversations; owners also manage members and read the audit log." });
  const invite = h("button", { type: "submit", class: "primary" }, "Invite");
  const form = h("form", { class: "card", novalidate: true }, h("h3", {}, "Add a member"), email.wrap, role.wrap, h("div", { class: "actions" }, invite), status);

  function fail(target, err) {
    const special = lastOwnerText(err);
    if (special) target.show("bad", special);
    else target.error(err);
  }

  async function setRole(member, newRole) {
    try {
      await api("POST", base, { email: member.email, role: newRole });
      if (!view.alive) return;
      listStatus.ok(`${member.email} is now ${newRole}.`);
      await load();
    } catch (err) {
      if (!view.alive) return;
      fail(listStatus, err);
    }
  }

  async function remove(member) {
    const self = ctx.me && member.staff_id === ctx.me._id;
    const ok = await confirmAction({
      title: self ? "Leave this project?" : `Remove ${member.email}?`,
      text: self
        ? "You lose access to this project at once."
        : "They lose access to this project at once. Their staff account stays; you can add them again.",
      confirm: self ? "Yes, leave" : "Yes, remove",
    });
    if (!ok) return;
    try {
      await api("DELETE", `${base}/${encodeURIComponent(member.staff_id)}`);
      if (!view.alive) return;
      if (self) {
        ctx.go("#/projects");
        return;
      }
      listStatus.ok(`${member.email} was removed.`);
      await load();
    } catch (err) {
      if (!view.alive) return;
      fail(listStatus, err);
    }
  }

  async function load() {
    try {
      const answer = await api("GET", base);
      if (!view.alive) return;
      const members = answer.members || [];
      listArea.replaceChildren(
        table("Members of this project", [
          ["Name", (m) => `${m.firstname || ""} ${m.lastname || ""}`.trim() || h("span", { class: "muted" }, "none")],
          ["Email", (m) => m.email],
          ["Role", (m) => h("span", { class: `badge ${m.role}` }, m.role)],
          ["Added", (m) => when(m.added_at)],
          [
            "Actions",
            (m) =>
              h(
                "div",
                { class: "row-actions" },
                h(
                  "button",
                  { type: "button", onclick: () => setRole(m, m.role === "owner" ? "admin" : "owner") },
                  m.role === "owner" ? "Make admin" : "Make owner",
                  hiddenText(` ${m.email}`),
                ),
                h("button", { type: "button", class: "danger", onclick: () => remove(m) }, "Remove", hiddenText(` ${m.email}`)),
              ),
          ],
        ], members),
      );
    } catch (err) {
      if (!view.alive) return;
      listArea.replaceChildren(errorBox(err));
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    invite.disabled = true;
    try {
      const answer = await api("POST", base, { email: email.control.value.trim(), role: role.control.value });
      if (!view.alive) return;
      showFieldErrors({}, { email, role });
      status.ok(`${email.control.value.trim()} is now ${answer.role} of this project.`);
      email.control.value = "";
      await load();
    } catch (err) {
      if (!view.alive) return;
      if (err.code === "validation_failed") showFieldErrors(err.fields, { email, role });
      fail(status, err);
    } finally {
      invite.disabled = false;
    }
  });

  body.replaceChildren(
    h(
      "section",
      {},
      h("h2", { id: "members-heading" }, "Members"),
      h("p", { class: "muted" }, "Staff who manage this project. Only owners may add, change or remove members, and a project always keeps at least one owner."),
      listStatus,
      listArea,
      form,
    ),
  );
  load();
}
