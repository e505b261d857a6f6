// Widget bridge: runs inside the chat page when widget.js frames it on a
// customer's site, and answers that page's window.Chatgate calls.
//
// Commands are taken only from window.parent, and only when the parent's
// origin is exactly one of the project's allowed_origins (data-allowed-origins
// on <body>); answers and events go to that exact origin. The bridge signs in
// with Chatgate's API from this origin, keeps the session where chat.js keeps
// it (session-store.js) and tells chat.js with the window
// event "chatgate:session". The host page gets users and answers, never the
// session token.
(function () {
  "use strict";
  if (window.parent === window) { return; } // not framed: nobody to bridge to

  var body = document.body;
  var projectId = body.getAttribute("data-project");
  var allowed = (body.getAttribute("data-allowed-origins") || "").split(/\s+/).filter(Boolean);
  var api = "/v1/projects/" + encodeURIComponent(projectId);
  var MAX_EARLY_EVENTS = 20;

  var host = null; // the parent's origin, once it said hello from an allowed origin
  var early = []; // events from before that
  var announcedUserId = null; // who the host was last told is signed in
  var work = Promise.resolve(); // commands run one after another

  var loadSession = window.ChatgateSessionStore.load;
  var saveSession = window.ChatgateSessionStore.save;
  function sessionChanged() { window.dispatchEvent(new CustomEvent("chatgate:session")); }

  function send(origin, message) {
    try { window.parent.postMessage(message, origin); } catch (e) { /* an opaque ("null") origin cannot be answered */ }
  }

  // ---- events for the host ----------------------------------------------------

  function tell(name, data) {
    var message = { chatgate: "event", name: name, data: data };
    if (host) { send(host, message); } else if (early.length < MAX_EARLY_EVENTS) { early.push(message); }
  }

  function describe(user) {
    return { user: user, email: user.email || null, externalId: user.externalId || null };
  }

  function signedIn(user) {
    if (user && user._id === announcedUserId) { return; }
    if (!user && announcedUserId === null) { return; }
    announcedUserId = user ? user._id : null;
    if (user) { tell("login", describe(user)); } else { tell("logout", {}); }
  }

  // chat.js says when it signs in or out, and hands over every live message.
  window.addEventListener("chatgate:state", function (event) {
    var detail = event.detail || {};
    signedIn(detail.signedIn && detail.user ? detail.user : null);
  });
  window.addEventListener("chatgate:message", function (event) {
    var detail = event.detail || {};
    if (!detail.mine && detail.message) {
      tell("message", { conversationId: detail.conversationId, message: detail.message });
    }
  });

  // ---- the API ------------------------------------------------------------------

  function request(method, path, token, payload) {
    var headers = { "Content-Type": "application/json" };
    if (token) { headers.Authorization = token; }
    return fetch(path, { method: method, headers: headers, body: payload ? JSON.stringify(payload) : undefined })
      .then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (data) {
          return { ok: res.ok, status: res.status, data: data || {} };
        });
      }, function () { return { ok: false, status: 0, data: {} }; });
  }

  function apiError(res) {
    if (res.status === 0) { return { code: "network", message: "Chatgate could not be reached." }; }
    var error = res.data.error;
    if (error && typeof error.code === "string") {
      var out = { code: error.code, message: String(error.message || "") };
      ["reason", "fields", "retryAfter"].forEach(function (name) { if (error[name] !== undefined) { out[name] = error[name]; } });
      return out;
    }
    return { code: "internal_error", message: "Chatgate answered with status " + res.status + "." };
  }

  function invalid(message) { return { error: { code: "validation_failed", message: message } }; }

  // Every login passes a kept anonymous visitor's session, so its conversations
  // move to the identified user.
  function withVisitor(previous, payload) {
    if (previous && previous.user && previous.user.anonymous && typeof previous.token === "string") {
      payload.anonymous_token = previous.token.replace(/^JWT /, "");
    }
    return payload;
  }

  function keep(previous, res) {
    var session = { token: res.data.token, user: res.data.user };
    saveSession(session);
    if (previous && previous.token && previous.token !== session.token && previous.user &&
        !previous.user.anonymous && previous.user._id !== session.user._id) {
      request("POST", "/v1/auth/logout", previous.token); // another person's session on this browser ends
    }
    sessionChanged();
    signedIn(session.user);
    var response = describe(session.user);
    if (typeof res.data.merged_conversations === "number") {
      response.merged_conversations = res.data.merged_conversations;
    }
    return { response: response };
  }

  var commands = {
    login: function (args) {
      if (typeof args.jwtToken !== "string" || !args.jwtToken) { return Promise.resolve(invalid("jwtToken is required.")); }
      var previous = loadSession();
      var payload = withVisitor(previous, { jwtToken: args.jwtToken });
      return request("POST", api + "/auth/customer/login", null, payload).then(function (res) {
        return res.ok ? keep(previous, res) : { error: apiError(res) };
      });
    },

    loginWithCustomToken: function (args) {
      if (typeof args.token !== "string" || !args.token) { return Promise.resolve(invalid("The token is required.")); }
      var previous = loadSession();
      var token = args.token.replace(/^\s*(JWT|Bearer)\s+/i, "");
      var payload = withVisitor(previous, {});
      return request("POST", "/v1/auth/signinWithCustomToken", "JWT " + token, payload).then(function (res) {
        if (!res.ok) { return { error: apiError(res) }; }
        // The token names its project in aud: make sure it is this chat's.
        return request("GET", api + "/auth/me", res.data.token).then(function (me) {
          if (me.ok) { return keep(previous, res); }
          if (me.status === 401) { request("POST", "/v1/auth/logout", res.data.token); }
          return { error: me.status === 401 ?
            { code: "invalid_token", message: "The token signs in to another project than this chat's." } :
            apiError(me) };
        });
      });
    },

    isLoggedIn: function (args) {
      var query = [];
      if (typeof args.email === "string" && args.email) { query.push("email=" + encodeURIComponent(args.email)); }
      if (typeof args.externalId === "string" && args.externalId) {
        query.push("externalId=" + encodeURIComponent(args.externalId));
      }
      if (!query.length) { return Promise.resolve(invalid("Give an email or an externalId.")); }
      var session = loadSession();
      if (!session || typeof session.token !== "string") { return Promise.resolve({ response: { isLoggedIn: false } }); }
      return request("GET", api + "/auth/me?" + query.join("&"), session.token).then(function (res) {
        if (res.ok) { return { response: { isLoggedIn: res.data.loggedIn === true } }; }
        if (res.status === 401) { return { response: { isLoggedIn: false } }; } // the kept session has ended
        return { error: apiError(res) };
      });
    },

    logout: function () {
      var session = loadSession();
      var ending = session && typeof session.token === "string" ?
        request("POST", "/v1/auth/logout", session.token) : Promise.resolve({ ok: true, status: 200, data: {} });
      return ending.then(function (res) {
        // Forgotten here whatever the server said: this browser is signed out.
        saveSession(null);
        sessionChanged();
        signedIn(null);
        return res.ok || res.status === 401 ? { response: { success: true } } : { error: apiError(res) };
      });
    }
  };

  function refusal(origin) {
    var message = allowed.length ?
      "This chat takes commands only from the sites in its project's allowed_origins; add " + origin + " to it." :
      "This chat's project lists no allowed_origins, so no site may send it commands; add " + origin + " to it.";
    return { code: "origin_not_allowed", message: message };
  }

  window.addEventListener("message", function (event) {
    if (event.source !== window.parent) { return; }
    var data = event.data;
    if (!data || typeof data !== "object" || typeof data.id !== "number") { return; }
    var origin = event.origin;
    var trusted = allowed.indexOf(origin) !== -1;

    if (data.chatgate === "hello") {
      if (!trusted) {
        send(origin, { chatgate: "ready", id: data.id, allowed: false, error: refusal(origin) });
        return;
      }
      host = origin;
      send(origin, { chatgate: "ready", id: data.id, allowed: true, project: projectId });
      var queued = early;
      early = [];
      queued.forEach(function (message) { send(origin, message); });
      return;
    }
    if (data.chatgate !== "call") { return; }
    if (!trusted) {
      send(origin, { chatgate: "reply", id: data.id, response: null, error: refusal(origin) });
      return;
    }
    var command = Object.prototype.hasOwnProperty.call(commands, data.method) ? commands[data.method] : null;
    var args = data.args && typeof data.args === "object" ? data.args : {};
    work = work.then(function () {
      return command ? command(args) : invalid("Unknown command.");
    }).catch(function () {
      return { error: { code: "internal_error", message: "The chat could not do this." } };
    }).then(function (result) {
      send(origin, { chatgate: "reply", id: data.id, response: result.error ? null : result.response,
                     error: result.error || null });
    });
  });
})();
