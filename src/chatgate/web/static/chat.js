// Chat page: signs the visitor in from an externalAuthCode (link or widget),
// keeps the session, and shows who is signed in. The code is exchanged by
// POST and removed from the address bar before anything else happens.
(function () {
  "use strict";
  var body = document.body;
  var projectId = body.getAttribute("data-project");
  var storageKey = "chatgate:" + projectId + ":session";
  var api = "/v1/projects/" + encodeURIComponent(projectId);

  var MESSAGES = {
    seat_limit_reached: ["No free seat", "This chat has reached its limit of users. Ask the people who sent you the link to free a seat."],
    invalid_token: ["This sign-in link does not work", "It may have expired or been changed. Open the link again from where you got it."],
    user_not_found: ["Unknown user", "The link names a user this chat does not know."],
    auth_method_disabled: ["Sign-in is turned off", "Signing in with a link is turned off for this chat."],
    project_not_found: ["Unknown chat", "This chat does not exist."],
    identity_conflict: ["Account conflict", "This email already belongs to another user of this chat."],
    rate_limited: ["Too many attempts", "Wait a moment and try again."]
  };

  function $(id) { return document.getElementById(id); }

  function takeCode() {
    var url = new URL(window.location.href);
    var code = url.searchParams.get("externalAuthCode");
    var hash = new URLSearchParams(url.hash.replace(/^#/, ""));
    if (!code) { code = hash.get("externalAuthCode"); }
    if (url.searchParams.has("externalAuthCode") || hash.has("externalAuthCode")) {
      url.searchParams.delete("externalAuthCode");
      hash.delete("externalAuthCode");
      var rest = hash.toString();
      url.hash = rest ? "#" + rest : "";
      window.history.replaceState(null, "", url.pathname + url.search + url.hash);
    }
    return code;
  }

  function loadSession() {
    try { return JSON.parse(window.localStorage.getItem(storageKey) || "null"); } catch (e) { return null; }
  }
  function saveSession(session) {
    try {
      if (session) { window.localStorage.setItem(storageKey, JSON.stringify(session)); }
      else { window.localStorage.removeItem(storageKey); }
    } catch (e) { /* storage may be blocked; the page still works for this load */ }
  }

  // The page tells the widget bridge (bridge.js) whenever it signs in or out.
  function announce(user) {
    window.dispatchEvent(new CustomEvent("chatgate:state", { detail: { signedIn: !!user, user: user || null } }));
  }

  function show(state) {
    ["loading", "signed-in", "signed-out", "error"].forEach(function (name) {
      $(name).hidden = name !== state;
    });
    if (state === "signed-out") { announce(null); }
  }

  function showUser(user) {
    var name = user.fullName || user.email || user.externalId || (user.anonymous ? "Guest" : user._id);
    $("user-name").textContent = name;
    $("user-detail").textContent = user.anonymous ? "Anonymous visitor" :
      [user.email, user.externalId ? "id " + user.externalId : ""].filter(Boolean).join(" · ");
    $("avatar").textContent = (name || "?").charAt(0).toUpperCase();
    body.setAttribute("data-user-id", user._id);
    show("signed-in");
    announce(user);
  }

  function showError(code, message) {
    var text = MESSAGES[code] || ["Sign-in failed", message || "Something went wrong."];
    $("error-title").textContent = text[0];
    $("error-text").textContent = text[1];
    $("error-detail").textContent = message || "";
    $("error").setAttribute("data-code", code || "unknown");
    show("error");
  }

  function request(method, path, token, payload) {
    var headers = { "Content-Type": "application/json" };
    if (token) { headers.Authorization = token; }
    return fetch(path, { method: method, headers: headers, body: payload ? JSON.stringify(payload) : undefined })
      .then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (data) {
          return { ok: res.ok, status: res.status, data: data };
        });
      });
  }

  function exchange(code) {
    var previous = loadSession();
    var payload = { externalAuthCode: code };
    if (previous && previous.user && previous.user.anonymous) {
      payload.anonymous_token = previous.token.replace(/^JWT /, "");
    }
    return request("POST", api + "/auth/external-code", null, payload).then(function (res) {
      if (!res.ok) {
        var error = (res.data && res.data.error) || {};
        showError(error.code, error.message);
        return;
      }
      saveSession({ token: res.data.token, user: res.data.user });
      showUser(res.data.user);
    });
  }

  function resume() {
    var session = loadSession();
    if (!session) { show("signed-out"); return Promise.resolve(); }
    return request("GET", api + "/auth/me", session.token).then(function (res) {
      if (res.ok && res.data.loggedIn) {
        saveSession({ token: session.token, user: res.data.user });
        showUser(res.data.user);
      } else {
        saveSession(null);
        show("signed-out");
      }
    });
  }

  $("sign-out").addEventListener("click", function () {
    var session = loadSession();
    saveSession(null);
    show("signed-out");
    if (session) { request("POST", "/v1/auth/logout", session.token); }
  });

  // The bridge changed the stored session (a login or logout from the host page).
  window.addEventListener("chatgate:session", function () { resume(); });

  var code = takeCode();
  (code ? exchange(code) : resume()).catch(function () {
    showError("network", "Chatgate could not be reached. Check your connection and reload.");
  });
})();
