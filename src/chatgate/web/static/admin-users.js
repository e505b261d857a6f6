// Users: seats, search and filters with paging; one user's page with their
// identity, metadata, active sessions, conversations and "Sign out everywhere".

import { CursorPages, api, confirmAction, displayName, errorBox, field, h, statusArea, table, when } from "./admin-core.js";

const CREATED_VIA = [
  ["", "Any way"],
  ["anonymous", "Anonymous visitor"],
  ["external_auth_code", "External auth code (link or widget)"],
  ["custom_token", "Custom token"],
  ["customer_login", "Customer login"],
  ["email", "Email sign-up"],
  ["admin", "Created by staff"],
];

const PAGE_SIZES = [
  ["10", "10"],
  ["25", "25"],
  ["50", "50"],
  ["100", "100"],
];

function viaText(value) {
  const found = CREATED_VIA.find(([key]) => key === value);
  return found ? found[1] : value;
}

export function renderUsers(ctx) {
  const { body, view, pid } = ctx;
  const seatsArea = h("p", { class: "seats", id: "seats" }, "Seats: …");
  const listArea = h("div", { "aria-live": "polite" });
  const pager = h("div", { class: "pager" });
  const search = field({ label: "Search", kind: "search", name: "q", hint: "Part of an email, a name or an external id." });
  const via = field({ label: "Created via", kind: "select", name: "created_via", options: CREATED_VIA, value: "" });
  const size = field({ label: "Per page", kind: "select", name: "limit", options: PAGE_SIZES, value: "50" });
  const apply = h("button", { type: "submit" }, "Apply");
  const form = h("form", { class: "filters", role: "search", "aria-label": "Find users" }, search.wrap, via.wrap, size.wrap, h("div", { class: "actions" }, apply));

  // Cursors of the pages before this one: Previous pops, Next pushes.
  const pages = new CursorPages(() => load());
  let typing = null;

  async function load() {
    const query = {
      q: search.control.value.trim(),
      created_via: via.control.value,
      limit: size.control.value,
      cursor: pages.cursor,
    };
    listArea.setAttribute("aria-busy", "true");
    try {
      const page = await api("GET", `/v1/projects/${encodeURIComponent(pid)}/users`, undefined, { query });
      if (!view.alive) return;
      const seats = page.seats || {};
      seatsArea.textContent =
        seats.limit === null || seats.limit === undefined
          ? `Seats: ${seats.used} used, no limit.`
          : `Seats: ${seats.used} used of ${seats.limit}.`;
      const users = page.users || [];
      listArea.replaceChildren(
        users.length
          ? table("End users", [
              ["Name", (u) => h("a", { href: ctx.link("users", u._id) }, displayName(u))],
              ["Email", (u) => u.email || h("span", { class: "muted" }, "none")],
              ["External ID", (u) => u.externalId || h("span", { class: "muted" }, "none")],
              ["Created via", (u) => viaText(u.createdVia)],
              ["Created", (u) => when(u.createdAt)],
              ["Last seen", (u) => when(u.lastSeenAt)],
            ], users)
          : h("p", {}, pages.first ? "No user matches." : "No more users."),
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

  function restart() {
    pages.restart();
    load();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    window.clearTimeout(typing);
    restart();
  });
  search.control.addEventListener("input", () => {
    window.clearTimeout(typing);
    typing = window.setTimeout(restart, 400);
  });
  via.control.addEventListener("change", restart);
  size.control.addEventListener("change", restart);
  view.onCleanup(() => window.clearTimeout(typing));

  body.replaceChildren(
    h(
      "section",
      {},
      h("h2", { id: "users-heading" }, "Users"),
      h("p", { class: "muted" }, "The end users of this project, oldest first, anonymous visitors included. Identified users take a seat; visitors do not."),
      seatsArea,
      form,
      listArea,
      pager,
    ),
  );
  load();
}

function valueText(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function definitions(pairs) {
  return h(
    "dl",
    { class: "pairs" },
    pairs.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value === null || value === undefined || value === "" ? h("span", { class: "muted" }, "none") : value)]),
  );
}

export async function renderUser(ctx) {
  const { body, view, pid, arg } = ctx;
  const base = `/v1/projects/${encodeURIComponent(pid)}/users/${encodeURIComponent(arg)}`;
  const back = h("p", {}, h("a", { href: ctx.link("users") }, "All users"));
  body.replaceChildren(back, h("h2", {}, "User"), h("p", { class: "muted" }, "Loading…"));
  let user;
  try {
    user = await api("GET", base);
  } catch (err) {
    if (!view.alive) return;
    body.replaceChildren(back, h("h2", {}, "User"), errorBox(err));
    return;
  }
  if (!view.alive) return;
  const sessionsArea = h("div", {}, h("p", { class: "muted" }, "Loading sessions…"));
  const conversationsArea = h("div", {}, h("p", { class: "muted" }, "Loading conversations…"));
  const status = statusArea();
  const signOut = h("button", { type: "button", class: "danger" }, "Sign out everywhere");

  async function loadSessions() {
    try {
      const answer = await api("GET", `${base}/sessions`);
      if (!view.alive) return;
      const sessions = answer.sessions || [];
      sessionsArea.replaceChildren(
        sessions.length
          ? table("Active sessions", [
              ["Session", (s) => h("code", {}, s.id)],
              ["Method", (s) => s.method || h("span", { class: "muted" }, "unknown")],
              ["Started", (s) => when(s.created_at)],
              ["Expires", (s) => when(s.expires_at)],
            ], sessions)
          : h("p", { id: "no-sessions" }, "No active sessions."),
      );
    } catch (err) {
      if (!view.alive) return;
      sessionsArea.replaceChildren(errorBox(err));
    }
  }

  async function loadConversations() {
    try {
      const answer = await api("GET", `/v1/projects/${encodeURIComponent(pid)}/conversations`, undefined, {
        query: { user_id: user._id, limit: 50 },
      });
      if (!view.alive) return;
      const conversations = answer.conversations || [];
      conversationsArea.replaceChildren(
        conversations.length
          ? h(
              "ul",
              { class: "plain-list" },
              conversations.map((c) =>
                h(
                  "li",
                  {},
                  h("a", { href: ctx.link("inbox", c.id) }, c.title || "Untitled conversation"),
                  h("span", { class: "muted" }, ` ${c.status} · updated `, when(c.updatedAt)),
                ),
              ),
            )
          : h("p", {}, "No conversations."),
      );
    } catch (err) {
      if (!view.alive) return;
      conversationsArea.replaceChildren(errorBox(err));
    }
  }

  signOut.addEventListener("click", async () => {
    const ok = await confirmAction({
      title: `Sign ${displayName(user)} out everywhere?`,
      text: "Every session of this user ends at once, on every device; open chats are disconnected. They can sign in again.",
      confirm: "Yes, sign out everywhere",
    });
    if (!ok) return;
    try {
      const answer = await api("POST", `${base}/logout`);
      if (!view.alive) return;
      const n = answer.revoked;
      status.ok(`Signed out everywhere: ${n} session${n === 1 ? "" : "s"} ended.`);
      await loadSessions();
    } catch (err) {
      if (!view.alive) return;
      status.error(err);
    }
  });

  const metadata = Object.entries(user.metadata || {});
  body.replaceChildren(
    back,
    h(
      "section",
      {},
      h("h2", { id: "user-heading" }, displayName(user)),
      definitions([
        ["ID", h("code", {}, user._id)],
        ["External ID", user.externalId],
        ["Email", user.email ? `${user.email} (${user.emailverified ? "verified" : "unverified"})` : null],
        ["First name", user.firstname],
        ["Last name", user.lastname],
        ["Anonymous", user.anonymous ? "yes" : "no"],
        ["Created via", viaText(user.createdVia)],
        ["Created", when(user.createdAt)],
        ["Last seen", when(user.lastSeenAt)],
      ]),
      h("h3", {}, "Metadata"),
      metadata.length ? definitions(metadata.map(([key, value]) => [key, valueText(value)])) : h("p", {}, "No metadata."),
      h("h3", {}, "Active sessions"),
      sessionsArea,
      h("div", { class: "actions" }, signOut),
      status,
      h("h3", {}, "Conversations"),
      conversationsArea,
    ),
  );
  loadSessions();
  loadConversations();
}
