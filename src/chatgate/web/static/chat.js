// The chat page (a link, /p/<pid>/, or the widget's iframe). Everything it
// does goes through the public /v1 API and the project's WebSocket:
// - sign-in: an externalAuthCode (query or #fragment) is exchanged by POST and
//   removed from the address bar first; otherwise the stored session resumes;
//   a visitor without either starts as a guest on their first message (when
//   the project allows anonymous visitors), and a later sign-in merges it;
// - conversations: the list, the most recent one opened with its last page of
//   history, older pages on scroll;
// - sending is optimistic: a message shows at once, carries a client_id, and
//   is retried with the same client_id until the server answers (never twice);
// - live: one socket, resumed with after_seq after a drop, with backoff.
(function () {
  "use strict";
  const body = document.body;
  const projectId = body.getAttribute("data-project");
  const guestsAllowed = body.getAttribute("data-anonymous") === "1";
  const api = "/v1/projects/" + encodeURIComponent(projectId);
  const PAGE = 50;

  const ERRORS = {
    seat_limit_reached: ["No free seat", "This chat has reached its limit of users. Ask the people who sent you the link to free a seat."],
    invalid_token: ["This sign-in link does not work", "It may have expired or been changed. Open the link again from where you got it."],
    user_not_found: ["Unknown user", "The link names a user this chat does not know."],
    auth_method_disabled: ["Sign-in is turned off", "This way of signing in is turned off for this chat."],
    project_not_found: ["Unknown chat", "This chat does not exist."],
    identity_conflict: ["Account conflict", "This email already belongs to another user of this chat."],
    rate_limited: ["Too many attempts", "Wait a moment and try again."],
    session_revoked: ["You were signed out", "Your session ended: you signed out on another device, or an administrator signed you out. Open your sign-in link again to continue."],
    session_expired: ["Your session has expired", "Open your sign-in link again to continue."],
    network: ["Chatgate could not be reached", "Check your connection and reload the page."]
  };
  const REVOKED = {
    logout: "You signed out, here or on another device.",
    merged: "This guest chat now belongs to your signed-in account.",
    identity_claimed: "Your account's email was claimed by a verified sign-in."
  };

  const $ = (id) => document.getElementById(id);
  const els = {
    list: $("conversation-list"), log: $("messages"), messages: $("message-list"), older: $("load-older"),
    empty: $("empty-thread"), title: $("thread-title"), form: $("composer"), input: $("message-input"),
    connection: $("connection"), nav: $("conversations"), toggle: $("toggle-conversations")
  };

  // What the page knows. Conversations and messages are keyed by id so that a
  // REST page and a live event that overlap never show anything twice.
  let session = null;            // {token, user} or null (a guest who has not written yet)
  let conversations = new Map(); // id -> conversation
  let current = null;            // id of the open conversation, or null for a new one
  let hasOlder = false;
  let loadingOlder = false;
  const pending = new Map();     // client_id -> {text, conversationId, element}

  // ---- storage and requests ------------------------------------------------

  const store = window.ChatgateSessionStore;
  const loadSession = store.load;
  function saveSession(value) {
    session = value;
    store.save(value);
  }

  class ApiError extends Error {
    constructor(status, error) {
      super((error && error.message) || "HTTP " + status);
      this.status = status;
      this.code = (error && error.code) || (status === 0 ? "network" : "unknown");
      this.retryAfter = error && error.retryAfter;
    }
  }

  async function request(method, path, payload, token) {
    const headers = {};
    if (payload !== undefined) { headers["Content-Type"] = "application/json"; }
    const auth = token === undefined ? (session && session.token) : token;
    if (auth) { headers.Authorization = auth; }
    let res;
    try {
      res = await fetch(path, { method: method, headers: headers, body: payload === undefined ? undefined : JSON.stringify(payload) });
    } catch (e) {
      throw new ApiError(0, null);
    }
    const data = await res.json().catch(() => ({}));
    if (!res.ok) { throw new ApiError(res.status, data && data.error); }
    return data;
  }

  function newClientId() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    const bytes = window.crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ---- what is on screen ---------------------------------------------------

  // The widget bridge (bridge.js) hears when the page signs in or out, and of
  // every message that arrives live.
  function announce(user) {
    window.dispatchEvent(new CustomEvent("chatgate:state", { detail: { signedIn: !!user, user: user || null } }));
  }

  function show(state) {
    ["loading", "signed-in", "signed-out", "error"].forEach((name) => { $(name).hidden = name !== state; });
    $("who").hidden = state !== "signed-in";
  }

  // In the widget's frame the visitor never saw a link: the site signs them in.
  const EMBEDDED_ERRORS = {
    invalid_token: ["The chat could not sign you in", "Reload the page. If this keeps happening, tell the site's team."],
    user_not_found: ["The chat could not sign you in", "This site's account is not known to the chat. Tell the site's team."]
  };

  function showError(code, detail) {
    const embedded = body.classList.contains("embed") && EMBEDDED_ERRORS[code];
    const text = embedded || ERRORS[code] || ["Something went wrong", detail || "Reload the page to try again."];
    $("error-title").textContent = text[0];
    $("error-text").textContent = text[1];
    $("error-detail").textContent = detail || "";
    $("error").setAttribute("data-code", code || "unknown");
    document.title = text[0];
    show("error");
  }

  function displayName(user) {
    if (!user) { return "Guest"; }
    return user.fullName || [user.firstname, user.lastname].filter(Boolean).join(" ") || user.email ||
      user.externalId || (user.anonymous ? "Guest" : user._id);
  }

  function showUser(user) {
    const name = displayName(user);
    $("user-name").textContent = name;
    $("user-detail").textContent = !user || user.anonymous ? "" :
      [user.email, user.externalId ? "id " + user.externalId : ""].filter(Boolean).join(" · ");
    $("avatar").textContent = (name || "?").charAt(0).toUpperCase();
    $("sign-out").hidden = !user;
    if (user) { body.setAttribute("data-user-id", user._id); } else { body.removeAttribute("data-user-id"); }
    show("signed-in");
  }

  function setConnection(state, text) {
    els.connection.setAttribute("data-state", state);
    els.connection.textContent = text;
  }

  function timeOf(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function conversationLabel(c) {
    if (c.title) { return c.title; }
    const d = new Date(c.createdAt);
    return "Conversation of " + (isNaN(d) ? "" : d.toLocaleDateString([], { month: "short", day: "numeric" }) + ", " + timeOf(c.createdAt));
  }

  function renderConversations() {
    const sorted = Array.from(conversations.values()).sort((a, b) => (b.updatedAt > a.updatedAt ? 1 : b.updatedAt < a.updatedAt ? -1 : 0));
    els.list.replaceChildren(...sorted.map((c) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "conversation";
      button.setAttribute("data-id", c.id);
      if (c.id === current) { button.setAttribute("aria-current", "true"); }
      const label = document.createElement("span");
      label.textContent = conversationLabel(c);
      button.appendChild(label);
      if (c.status === "closed") {
        const status = document.createElement("span");
        status.className = "badge";
        status.textContent = "closed";
        button.appendChild(status);
      }
      button.addEventListener("click", () => { openConversation(c.id); collapseList(); });
      item.appendChild(button);
      return item;
    }));
    els.toggle.textContent = "Conversations (" + conversations.size + ")";
    const open = current && conversations.get(current);
    els.title.textContent = open ? conversationLabel(open) + (open.status === "closed" ? " (closed)" : "") : "New conversation";
  }

  // In a user's own chat every "user" message is theirs (a guest's messages
  // included, once merged); the others come from the project's side.
  function senderLabel(message) {
    const type = (message.sender || {}).type;
    return { user: "You", agent: "Agent", bot: "Bot", system: "Notice" }[type] || "";
  }

  function isMine(message) {
    return (message.sender || {}).type === "user";
  }

  function messageElement(message, state) {
    const item = document.createElement("li");
    item.className = "message from-" + ((message.sender || {}).type || "other");
    item.setAttribute("data-state", state);
    if (message.id) { item.setAttribute("data-id", message.id); }
    if (message.clientId) { item.setAttribute("data-client-id", message.clientId); }
    const meta = document.createElement("div");
    meta.className = "meta";
    const who = document.createElement("span");
    who.className = "sender";
    who.textContent = senderLabel(message);
    const when = document.createElement("span");
    when.className = "status";
    meta.append(who, when);
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = message.text;
    item.append(meta, text);
    setMessageState(item, state, message.createdAt);
    return item;
  }

  function setMessageState(item, state, createdAt, why) {
    item.setAttribute("data-state", state);
    const label = item.querySelector(".status");
    label.textContent = state === "sending" ? "Sending…" : state === "failed" ? "Not sent: " + (why || "try again") : timeOf(createdAt);
  }

  function nearBottom() {
    return els.log.scrollHeight - els.log.scrollTop - els.log.clientHeight < 80;
  }
  function scrollToBottom() { els.log.scrollTop = els.log.scrollHeight; }

  // Put a message from the server on screen once: replace its optimistic copy
  // (same client_id) or an earlier copy (same id); otherwise insert it in order.
  function placeMessage(message) {
    if (message.conversationId !== current) { return; }
    const follow = nearBottom();
    const existing = els.messages.querySelector('[data-id="' + CSS.escape(message.id) + '"]') ||
      (message.clientId ? els.messages.querySelector('[data-client-id="' + CSS.escape(message.clientId) + '"]') : null);
    const element = messageElement(message, "sent");
    if (existing) {
      existing.replaceWith(element);
    } else {
      const later = Array.from(els.messages.querySelectorAll("[data-id]")).find((el) => el.getAttribute("data-id") > message.id);
      const firstPending = els.messages.querySelector('[data-state="sending"], [data-state="failed"]');
      els.messages.insertBefore(element, later || firstPending || null);
    }
    els.empty.hidden = true;
    if (follow) { scrollToBottom(); }
  }

  // ---- conversations and history --------------------------------------------

  async function loadConversations() {
    const data = await request("GET", api + "/conversations?limit=100");
    conversations = new Map(data.conversations.map((c) => [c.id, c]));
  }

  async function openConversation(id) {
    current = id;
    hasOlder = false;
    els.messages.replaceChildren();
    els.older.hidden = true;
    els.empty.hidden = id !== null;
    renderConversations();
    if (id === null) { return; }
    const data = await request("GET", api + "/conversations/" + id + "/messages?latest=true&limit=" + PAGE);
    if (current !== id) { return; }
    data.messages.forEach(placeMessage);
    pending.forEach((p, clientId) => { if (p.conversationId === id && !p.element.isConnected) { els.messages.appendChild(p.element); } });
    hasOlder = data.has_more;
    els.older.hidden = !hasOlder;
    els.empty.hidden = data.messages.length > 0;
    scrollToBottom();
  }

  async function loadOlder() {
    const first = els.messages.querySelector("[data-id]");
    if (!hasOlder || loadingOlder || !first || current === null) { return; }
    loadingOlder = true;
    const id = current;
    const height = els.log.scrollHeight;
    try {
      const data = await request("GET", api + "/conversations/" + id + "/messages?before=" + first.getAttribute("data-id") + "&limit=" + PAGE);
      if (current !== id) { return; }
      const before = els.messages.firstChild;
      data.messages.forEach((m) => { els.messages.insertBefore(messageElement(m, "sent"), before); });
      hasOlder = data.has_more;
      els.older.hidden = !hasOlder;
      els.log.scrollTop += els.log.scrollHeight - height; // keep the reader where they were
    } finally {
      loadingOlder = false;
    }
  }

  // ---- sending ---------------------------------------------------------------

  async function ensureSession() {
    if (session) { return; }
    const data = await request("POST", "/v1/auth/signinAnonymously", { id_project: projectId }, null);
    saveSession({ token: data.token, user: data.user });
    showUser(data.user);
    announce(data.user);
    connect();
  }

  async function ensureConversation() {
    if (current !== null) { return current; }
    const created = await request("POST", api + "/conversations", {});
    conversations.set(created.id, created);
    current = created.id;
    renderConversations();
    return created.id;
  }

  function send(text) {
    const clientId = newClientId();
    const element = messageElement({ text: text, clientId: clientId, sender: { type: "user" } }, "sending");
    pending.set(clientId, { text: text, conversationId: current, element: element });
    els.messages.appendChild(element);
    els.empty.hidden = true;
    scrollToBottom();
    deliver(clientId, 0);
  }

  // Retry with the same client_id until the server answers: a resend of a
  // message that did arrive is answered with the stored one, never a copy.
  async function deliver(clientId, attempt) {
    const item = pending.get(clientId);
    if (!item) { return; }
    try {
      await ensureSession();
      if (item.conversationId === null) { item.conversationId = await ensureConversation(); }
      const message = await request("POST", api + "/conversations/" + item.conversationId + "/messages", { text: item.text, client_id: clientId });
      pending.delete(clientId);
      setMessageState(item.element, "sent", message.createdAt);
      item.element.setAttribute("data-id", message.id);
      touchConversation(message);
    } catch (error) {
      const retryable = error.status === 0 || error.status >= 500 || error.status === 429;
      if (error.status === 401) { sessionEnded("session_revoked"); return; }
      if (!retryable) { setMessageState(item.element, "failed", null, error.message); pending.delete(clientId); return; }
      setMessageState(item.element, "sending");
      const wait = error.retryAfter ? error.retryAfter * 1000 : Math.min(15000, 500 * Math.pow(2, attempt));
      window.setTimeout(() => deliver(clientId, attempt + 1), wait);
    }
  }

  function touchConversation(message) {
    const c = conversations.get(message.conversationId);
    if (c && message.createdAt > c.updatedAt) {
      conversations.set(c.id, Object.assign({}, c, { updatedAt: message.createdAt }));
      renderConversations();
    }
  }

  // ---- live ------------------------------------------------------------------

  let socket = null;
  let lastSeq = null;
  let retries = 0;
  let reconnectTimer = null;

  function connect() {
    disconnect();
    if (!session) { return; }
    const token = session.token;
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const url = scheme + window.location.host + api + "/ws" + (lastSeq !== null ? "?after_seq=" + lastSeq : "");
    const ws = new WebSocket(url);
    socket = ws;
    setConnection("connecting", retries ? "Reconnecting…" : "Connecting…");
    ws.addEventListener("open", () => { ws.send(JSON.stringify({ type: "auth", token: token })); });
    ws.addEventListener("message", (frame) => {
      if (ws !== socket) { return; }
      let event;
      try { event = JSON.parse(frame.data); } catch (e) { return; }
      if (event.type === "session.revoked" && replaced(token)) { return; }
      handle(event);
    });
    ws.addEventListener("close", (closed) => {
      if (ws !== socket) { return; }
      socket = null;
      if (closed.code === 4001 || closed.code === 4002 || closed.code === 4401) {
        if (!replaced(token)) { sessionEnded(closed.code === 4002 ? "session_expired" : "session_revoked"); }
        return;
      }
      if (closed.code === 4404) { showError("project_not_found"); return; }
      setConnection("offline", "Reconnecting…");
      const wait = Math.min(15000, 500 * Math.pow(2, retries)) * (0.75 + Math.random() / 2);
      retries += 1;
      reconnectTimer = window.setTimeout(connect, wait);
    });
  }

  // A guest's session ends when the guest signs in (merged): by then the
  // bridge has stored the new session, and this socket's end is no news.
  function replaced(token) {
    const stored = loadSession();
    return !!stored && stored.token !== token;
  }

  function disconnect() {
    window.clearTimeout(reconnectTimer);
    if (socket) { const ws = socket; socket = null; ws.close(1000); }
  }

  function handle(event) {
    if (typeof event.seq === "number") { lastSeq = Math.max(lastSeq || 0, event.seq); }
    switch (event.type) {
      case "ready":
        retries = 0;
        setConnection("live", "Connected");
        break;
      case "resync":
        refresh();
        break;
      case "conversation.created":
      case "conversation.updated":
      case "conversation.merged":
        conversations.set(event.conversation.id, event.conversation);
        renderConversations();
        break;
      case "message.created":
        placeMessage(event.message);
        touchConversation(event.message);
        if (!conversations.has(event.conversationId)) { refresh(); }
        window.dispatchEvent(new CustomEvent("chatgate:message", {
          detail: { conversationId: event.conversationId, message: event.message, mine: isMine(event.message) }
        }));
        break;
      case "session.revoked":
        sessionEnded("session_revoked", event.reason);
        break;
      default:
        break; // new event types may come: ignore them
    }
  }

  // After a resync or a sign-in: the list again, and the open conversation's last page.
  async function refresh() {
    await loadConversations();
    const keep = current !== null && conversations.has(current) ? current : mostRecent();
    await openConversation(keep);
  }

  function mostRecent() {
    let best = null;
    conversations.forEach((c) => { if (!best || c.updatedAt > best.updatedAt) { best = c; } });
    return best ? best.id : null;
  }

  function sessionEnded(code, reason) {
    disconnect();
    saveSession(null);
    announce(null);
    showError(code, REVOKED[reason] || "");
  }

  // ---- sign-in -----------------------------------------------------------------

  function takeCode() {
    const url = new URL(window.location.href);
    const hash = new URLSearchParams(url.hash.replace(/^#/, ""));
    const code = url.searchParams.get("externalAuthCode") || hash.get("externalAuthCode");
    if (url.searchParams.has("externalAuthCode") || hash.has("externalAuthCode")) {
      url.searchParams.delete("externalAuthCode");
      hash.delete("externalAuthCode");
      const rest = hash.toString();
      window.history.replaceState(null, "", url.pathname + url.search + (rest ? "#" + rest : ""));
    }
    return code;
  }

  async function exchange(code) {
    const previous = loadSession();
    const payload = { externalAuthCode: code };
    if (previous && previous.user && previous.user.anonymous) {
      payload.anonymous_token = previous.token.replace(/^JWT /, "");
    }
    let data;
    try {
      data = await request("POST", api + "/auth/external-code", payload, null);
    } catch (error) {
      showError(error.code, error.message);
      return;
    }
    await start({ token: data.token, user: data.user });
    // The session this browser had (another code, another person) is no longer used: end it
    // rather than leave it alive. A guest's was ended by the sign-in itself (merged).
    if (previous && previous.user && !previous.user.anonymous && previous.token !== data.token) {
      request("POST", "/v1/auth/logout", undefined, previous.token).catch(() => {});
    }
  }

  async function start(value) {
    saveSession(value);
    showUser(value.user);
    announce(value.user);
    await refresh();
    connect();
  }

  async function resume() {
    disconnect();
    const stored = loadSession();
    if (!stored) { guestOrSignedOut(); return; }
    try {
      const data = await request("GET", api + "/auth/me", undefined, stored.token);
      if (!data.loggedIn) { throw new ApiError(401, null); }
      await start({ token: stored.token, user: data.user });
    } catch (error) {
      if (error.status === 401) {
        saveSession(null);
        if (stored.user && !stored.user.anonymous) { signedOut("Your previous session has ended."); return; }
        guestOrSignedOut();
        return;
      }
      throw error;
    }
  }

  // No session: a guest may start writing (the session comes with the first
  // message), or the page says how to sign in.
  function guestOrSignedOut() {
    session = null;
    conversations = new Map();
    current = null;
    announce(null);
    if (guestsAllowed) {
      showUser(null);
      openConversation(null);
      setConnection("offline", "");
    } else {
      signedOut("");
    }
  }

  // ---- controls ----------------------------------------------------------------

  els.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = els.input.value.trim();
    if (!text) { els.input.focus(); return; }
    els.input.value = "";
    send(text);
    els.input.focus();
  });
  els.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      els.form.requestSubmit();
    }
  });
  els.older.addEventListener("click", () => { loadOlder(); });
  els.log.addEventListener("scroll", () => { if (els.log.scrollTop < 40) { loadOlder(); } });
  $("new-conversation").addEventListener("click", () => { openConversation(null); collapseList(); els.input.focus(); });
  els.toggle.addEventListener("click", () => {
    const open = !els.nav.classList.contains("open");
    els.nav.classList.toggle("open", open);
    els.toggle.setAttribute("aria-expanded", String(open));
  });
  function collapseList() {
    els.nav.classList.remove("open");
    els.toggle.setAttribute("aria-expanded", "false");
  }

  function signedOut(why) {
    $("signed-out-why").textContent = why;
    $("start-as-guest").hidden = !guestsAllowed;
    show("signed-out");
  }

  $("sign-out").addEventListener("click", () => {
    const token = session && session.token;
    disconnect();
    saveSession(null);
    pending.clear();
    announce(null);
    signedOut("You signed out.");
    if (token) { request("POST", "/v1/auth/logout", undefined, token).catch(() => {}); }
  });
  $("start-as-guest").addEventListener("click", () => { guestOrSignedOut(); els.input.focus(); });

  // The widget bridge changed the stored session (a login or logout from the host page).
  window.addEventListener("chatgate:session", () => {
    resume().catch(() => showError("network"));
  });

  const code = takeCode();
  (code ? exchange(code) : resume()).catch((error) => {
    showError(error && error.code && ERRORS[error.code] ? error.code : "network", error && error.message);
  });
})();
