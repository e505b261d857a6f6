// Inbox: the project's conversations, kept up to date by the live socket, and
// one conversation with its history, a reply box and close / reopen.

import { api, displayName, errorBox, field, h, randomId, statusArea, when } from "./admin-core.js";

const SHOW = [
  ["open", "Open"],
  ["closed", "Closed"],
  ["", "All"],
];

// Names of the project's end users, fetched once each (conversations carry only the user's id).
const names = new Map();
function nameOf(pid, userId) {
  const key = `${pid}:${userId}`;
  if (!names.has(key)) {
    const pending = api("GET", `/v1/projects/${encodeURIComponent(pid)}/users/${encodeURIComponent(userId)}`)
      .then((user) => displayName(user))
      .catch(() => {
        names.delete(key);
        return "Unknown user";
      });
    names.set(key, pending);
  }
  return names.get(key);
}

function userName(pid, userId, into) {
  into.textContent = "…";
  return nameOf(pid, userId).then((name) => {
    into.textContent = name;
    return name;
  });
}

function liveIndicator(ctx) {
  const el = h("p", { class: "live-state", role: "status" });
  const texts = {
    connecting: "Connecting to live updates…",
    live: "Live: new conversations and messages appear here as they come.",
    waiting: "Live updates lost.",
    stopped: "Live updates stopped.",
  };
  const stop = ctx.live.watch((state, detail) => {
    el.className = `live-state ${state}`;
    el.textContent = `${texts[state] || state}${detail ? ` ${detail}` : ""}`;
  });
  ctx.view.onCleanup(stop);
  return el;
}

export function renderInbox(ctx) {
  const { body, view, pid } = ctx;
  const show = field({ label: "Show", kind: "select", name: "status", options: SHOW, value: "open" });
  const list = h("ul", { class: "conversations", id: "conversation-list", "aria-live": "polite" });
  const empty = h("p", { class: "muted", hidden: true }, "No conversations here yet. New ones appear as soon as someone writes.");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const problem = h("div", {});
  const rows = new Map(); // conversation id → {li, conversation}
  let cursor = null;

  function matches(conversation) {
    return !show.control.value || conversation.status === show.control.value;
  }

  function row(conversation, fresh) {
    const who = h("span", { class: "who" });
    userName(pid, conversation.userId, who);
    const li = h(
      "li",
      { class: fresh ? "conversation fresh" : "conversation", "data-id": conversation.id },
      h("a", { href: ctx.link("inbox", conversation.id) }, conversation.title || "Untitled conversation"),
      h("span", { class: "meta" }, who, " · ", h("span", { class: `badge ${conversation.status}` }, conversation.status), " · updated ", when(conversation.updatedAt)),
      fresh ? h("span", { class: "badge new" }, "New") : null,
    );
    return li;
  }

  function put(conversation, { fresh, top } = {}) {
    const existing = rows.get(conversation.id);
    if (!matches(conversation)) {
      if (existing) {
        existing.li.remove();
        rows.delete(conversation.id);
      }
      refreshEmpty();
      return;
    }
    const li = row(conversation, fresh || (existing && existing.li.classList.contains("fresh")));
    if (existing) existing.li.replaceWith(li);
    if (!existing || top) list.prepend(li);
    rows.set(conversation.id, { li, conversation });
    refreshEmpty();
  }

  function refreshEmpty() {
    empty.hidden = rows.size > 0;
  }

  async function load(reset) {
    if (reset) {
      cursor = null;
      rows.clear();
      list.replaceChildren();
    }
    try {
      const page = await api("GET", `/v1/projects/${encodeURIComponent(pid)}/conversations`, undefined, {
        query: { status: show.control.value, cursor, limit: 50 },
      });
      if (!view.alive) return;
      problem.replaceChildren();
      for (const conversation of page.conversations || []) {
        if (rows.has(conversation.id)) continue;
        const li = row(conversation, false);
        list.append(li);
        rows.set(conversation.id, { li, conversation });
      }
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
      refreshEmpty();
    } catch (err) {
      if (!view.alive) return;
      problem.replaceChildren(errorBox(err));
    }
  }

  async function fetchOne(cid) {
    try {
      const conversation = await api("GET", `/v1/projects/${encodeURIComponent(pid)}/conversations/${encodeURIComponent(cid)}`);
      if (view.alive) put(conversation, { fresh: true, top: true });
    } catch (err) {
      /* gone, or not ours any more: nothing to show */
    }
  }

  const unsubscribe = ctx.live.subscribe((event) => {
    if (event.type === "conversation.created" || event.type === "conversation.updated" || event.type === "conversation.merged") {
      put(event.conversation, { fresh: event.type === "conversation.created", top: event.type === "conversation.created" });
    } else if (event.type === "message.created") {
      const known = rows.get(event.conversationId);
      if (known) {
        const mine = event.message.sender && event.message.sender.type === "agent";
        put({ ...known.conversation, updatedAt: event.message.createdAt }, { fresh: !mine, top: true });
      } else if (show.control.value !== "closed") {
        fetchOne(event.conversationId);
      }
    } else if (event.type === "resync") {
      load(true);
    }
  });
  view.onCleanup(unsubscribe);

  show.control.addEventListener("change", () => load(true));
  more.addEventListener("click", () => load(false));

  body.replaceChildren(
    h(
      "section",
      {},
      h("h2", { id: "inbox-heading" }, "Inbox"),
      liveIndicator(ctx),
      h("div", { class: "filters" }, show.wrap),
      problem,
      list,
      empty,
      h("div", { class: "pager" }, more),
    ),
  );
  load(true);
}

function senderText(ctx, message, ownerName) {
  const sender = message.sender || {};
  // The kind of sender comes first, from the message, so that no name a user chose can pass for an agent.
  if (sender.type === "agent") return ctx.me && sender.id === ctx.me._id ? "Agent: you" : "Agent";
  if (sender.type === "bot") return "Bot";
  if (sender.type === "system") return "System";
  return `Customer: ${ownerName || "end user"}`;
}

export async function renderConversation(ctx) {
  const { body, view, pid, arg: cid } = ctx;
  const base = `/v1/projects/${encodeURIComponent(pid)}/conversations/${encodeURIComponent(cid)}`;
  const back = h("p", {}, h("a", { href: ctx.link("inbox") }, "All conversations"));
  body.replaceChildren(back, h("h2", {}, "Conversation"), h("p", { class: "muted" }, "Loading…"));
  let conversation;
  try {
    conversation = await api("GET", base);
  } catch (err) {
    if (!view.alive) return;
    body.replaceChildren(back, h("h2", {}, "Conversation"), errorBox(err));
    return;
  }
  if (!view.alive) return;

  let ownerName = "";
  const owner = h("a", { href: ctx.link("users", conversation.userId) }, "…");
  const named = userName(pid, conversation.userId, owner).then((name) => {
    ownerName = name;
  });

  const statusBadge = h("span", { class: "badge" });
  const toggle = h("button", { type: "button" });
  const status = statusArea();
  // The list inside a log region: new messages are read out as they arrive.
  const log = h("ol", { class: "messages" });
  const logRegion = h("div", { role: "log", "aria-label": "Messages" }, log);
  const older = h("button", { type: "button", hidden: true }, "Load older messages");
  const noMessages = h("p", { class: "muted", hidden: true }, "No messages yet.");
  const shown = new Map(); // message id → li
  let oldest = null;

  function showStatus() {
    statusBadge.className = `badge ${conversation.status}`;
    statusBadge.textContent = conversation.status === "open" ? "Open" : "Closed";
    toggle.textContent = conversation.status === "open" ? "Close conversation" : "Reopen";
  }

  function item(message) {
    const sender = message.sender || {};
    return h(
      "li",
      { class: `message from-${sender.type || "user"}`, "data-id": message.id },
      h("div", { class: "message-head" }, h("strong", {}, senderText(ctx, message, ownerName)), " ", when(message.createdAt)),
      h("p", { class: "message-text" }, message.text),
    );
  }

  function add(message, where) {
    if (shown.has(message.id)) return;
    const li = item(message);
    shown.set(message.id, li);
    if (where === "start") log.prepend(li);
    else log.append(li);
    noMessages.hidden = true;
  }

  async function loadLatest() {
    try {
      const page = await api("GET", `${base}/messages`, undefined, { query: { latest: "true", limit: 50 } });
      if (!view.alive) return;
      const messages = page.messages || [];
      messages.forEach((m) => add(m, "end"));
      if (messages.length) oldest = oldest && oldest < messages[0].id ? oldest : messages[0].id;
      older.hidden = !page.has_more;
      noMessages.hidden = shown.size > 0;
    } catch (err) {
      if (!view.alive) return;
      status.error(err);
    }
  }

  older.addEventListener("click", async () => {
    if (!oldest) return;
    try {
      const page = await api("GET", `${base}/messages`, undefined, { query: { before: oldest, limit: 50 } });
      if (!view.alive) return;
      const messages = page.messages || [];
      messages.slice().reverse().forEach((m) => add(m, "start"));
      if (messages.length) oldest = messages[0].id;
      older.hidden = !page.has_more;
    } catch (err) {
      if (!view.alive) return;
      status.error(err);
    }
  });

  toggle.addEventListener("click", async () => {
    // No confirmation: closing is undone by Reopen (and by the user writing again).
    const closing = conversation.status === "open";
    try {
      conversation = await api("PATCH", base, { status: closing ? "closed" : "open" });
      if (!view.alive) return;
      showStatus();
      status.ok(closing ? "The conversation is closed." : "The conversation is open again.");
      toggle.focus();
    } catch (err) {
      if (!view.alive) return;
      status.error(err);
    }
  });

  // -- reply --------------------------------------------------------------------------
  const reply = field({ label: "Reply", kind: "textarea", name: "reply", hint: "Sent as an agent of this project. Ctrl+Enter sends." });
  reply.control.setAttribute("maxlength", "10000");
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const replyStatus = statusArea();
  const form = h("form", { class: "reply", novalidate: true }, reply.wrap, h("div", { class: "actions" }, send), replyStatus);
  // One client_id per message being sent: a retry after a failure cannot post it twice.
  let pending = null;
  reply.control.addEventListener("input", () => {
    pending = null;
  });
  reply.control.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = reply.control.value.trim();
    if (!text) {
      reply.setError("Write a message first.");
      reply.control.focus();
      return;
    }
    reply.setError("");
    if (!pending) pending = randomId();
    send.disabled = true;
    replyStatus.info("Sending…");
    try {
      const message = await api("POST", `${base}/messages`, { text, client_id: pending });
      if (!view.alive) return;
      add(message, "end");
      pending = null;
      reply.control.value = "";
      replyStatus.ok("Sent.");
      reply.control.focus();
    } catch (err) {
      if (!view.alive) return;
      if (err.code === "validation_failed" && err.fields.text) reply.setError(err.fields.text);
      replyStatus.error(err);
    } finally {
      send.disabled = false;
    }
  });

  const unsubscribe = ctx.live.subscribe((event) => {
    if (event.conversationId !== cid) {
      if (event.type === "resync") loadLatest();
      return;
    }
    if (event.type === "message.created") add(event.message, "end");
    else if (event.type === "conversation.updated" || event.type === "conversation.merged") {
      conversation = event.conversation;
      showStatus();
      if (event.type === "conversation.merged") {
        owner.setAttribute("href", ctx.link("users", conversation.userId));
        userName(pid, conversation.userId, owner).then((name) => {
          ownerName = name;
        });
      }
    }
  });
  view.onCleanup(unsubscribe);

  showStatus();
  body.replaceChildren(
    back,
    h(
      "section",
      {},
      h("h2", { id: "conversation-heading" }, conversation.title || "Untitled conversation"),
      h("p", { class: "meta" }, "With ", owner, " · ", statusBadge, " · started ", when(conversation.createdAt)),
      h("div", { class: "actions" }, toggle),
      status,
      liveIndicator(ctx),
      older,
      logRegion,
      noMessages,
      form,
    ),
  );
  await named;
  await loadLatest();
}
