// Chatgate widget, for the customer's site. Embed with:
//   <script defer src="https://chat.example.com/widget.js" data-project="<pid>"></script>
// Optional attributes: data-external-auth-code="<code>" (signs the visitor in
// when the chat first loads) and data-kustomer-compat (also exposes the API as
// window.Kustomer). See docs/widget.md.
//
// On load it adds only a launcher button. The chat page is framed, and
// Chatgate hears from this visitor, only once the visitor opens the chat or
// the page calls window.Chatgate. The frame signs in with Chatgate's API on
// Chatgate's own origin and keeps the session token to itself: this page gets
// users and answers, never the token. Messages are accepted only from that
// frame and that origin; commands go only to that origin.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || (window.Chatgate && window.Chatgate.__widget === true)) { return; }

  var ORIGIN = new URL(script.src, window.location.href).origin;
  var code = script.getAttribute("data-external-auth-code");
  var project = script.getAttribute("data-project") || null;
  var compat = script.hasAttribute("data-kustomer-compat");
  var READY_GRACE_MS = 3000; // after the frame loads, how long its bridge may take to answer hello
  var CALL_TIMEOUT_MS = 30000;
  var EVENTS = ["message", "open", "close", "login", "logout"];
  var Z = "2147483000";

  var root = null;
  var launcher = null;
  var frame = null;
  var isOpen = false;
  var hideLauncher = false;
  // idle: no frame · loading: frame asked, bridge not heard · ready · refused: commands cannot work here
  var state = "idle";
  var refusal = null;
  var readyProject = project;
  var helloId = 0;
  var readyTimer = null;
  var queue = [];
  var pending = {};
  var nextId = 1;
  var handlers = {};
  EVENTS.forEach(function (name) { handlers[name] = []; });

  function failure(code, message) { return { code: code, message: message }; }

  function later(fn) { window.setTimeout(fn, 0); }

  // A callback gets (response, null) or (null, error); a throwing callback
  // does not break the widget (the exception is rethrown on its own).
  function deliver(callback, response, error) {
    if (typeof callback !== "function") { return; }
    later(function () { callback(error ? null : response, error || null); });
  }

  function emit(name, data) {
    handlers[name].slice().forEach(function (handler) {
      later(function () { handler(data); });
    });
  }

  // ---- DOM: launcher and frame, styled through CSSOM only -----------------

  var small = window.matchMedia ? window.matchMedia("(max-width: 480px)") : null;

  function setStyles(el, styles) {
    Object.keys(styles).forEach(function (name) { el.style.setProperty(name, styles[name]); });
  }

  function layout() {
    var narrow = !!(small && small.matches);
    if (launcher) {
      setStyles(launcher, {
        display: hideLauncher ? "none" : "block",
        right: narrow ? "16px" : "20px",
        bottom: narrow ? "16px" : "20px"
      });
    }
    if (frame) {
      setStyles(frame, narrow ? {
        top: "0", left: "0", right: "auto", bottom: "auto", width: "100%", height: "calc(100% - 88px)",
        "max-height": "none", "border-radius": "0"
      } : {
        top: "auto", left: "auto", right: "20px", bottom: "88px", width: "370px", height: "560px",
        "max-height": "calc(100% - 108px)", "border-radius": "12px"
      });
      frame.style.setProperty("display", isOpen ? "block" : "none");
    }
  }

  function whenBody(fn) {
    if (document.body) { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }

  function mount() {
    if (!root) {
      root = document.createElement("div");
      root.id = "chatgate-widget";
      (document.body || document.documentElement).appendChild(root);
    }
    return root;
  }

  function updateLauncher() {
    if (!launcher) { return; }
    launcher.setAttribute("aria-label", isOpen ? "Close chat" : "Open chat");
    launcher.setAttribute("aria-expanded", isOpen ? "true" : "false");
    if (frame) { launcher.setAttribute("aria-controls", frame.id); }
  }

  function addLauncher() {
    if (launcher) { return; }
    launcher = document.createElement("button");
    launcher.id = "chatgate-bubble";
    launcher.type = "button";
    launcher.textContent = "Chat";
    setStyles(launcher, {
      position: "fixed", "z-index": Z, width: "56px", height: "56px", margin: "0", padding: "0",
      "border-radius": "50%", border: "0", background: "#1d4ed8", color: "#fff", cursor: "pointer",
      font: "600 14px/1 system-ui, -apple-system, 'Segoe UI', sans-serif",
      "box-shadow": "0 4px 14px rgba(0, 0, 0, .25)"
    });
    launcher.addEventListener("click", function () { if (isOpen) { closePanel(); } else { openPanel(); } });
    mount().appendChild(launcher);
    updateLauncher();
    layout();
  }

  function frameUrl() {
    var path = project ? "/p/" + encodeURIComponent(project) + "/" : "/";
    // The code rides in the fragment: never sent to a server, never in a Referer.
    return ORIGIN + path + "?embed=1" + (code ? "#externalAuthCode=" + encodeURIComponent(code) : "");
  }

  function ensureFrame() {
    if (frame) { return; }
    state = "loading";
    frame = document.createElement("iframe");
    frame.id = "chatgate-frame";
    frame.title = "Chat";
    setStyles(frame, {
      position: "fixed", "z-index": Z, border: "0", margin: "0", padding: "0", background: "#fff",
      "box-shadow": "0 8px 30px rgba(0, 0, 0, .2)", display: "none"
    });
    frame.addEventListener("load", onFrameLoad);
    frame.src = frameUrl();
    whenBody(function () {
      var container = mount();
      container.insertBefore(frame, launcher && launcher.parentNode === container ? launcher : null);
      updateLauncher();
      layout();
    });
  }

  function openPanel() {
    ensureFrame();
    if (isOpen) { return; }
    isOpen = true;
    updateLauncher();
    layout();
    emit("open", {});
  }

  function closePanel() {
    if (!isOpen) { return; }
    isOpen = false;
    updateLauncher();
    layout();
    emit("close", {});
  }

  // ---- talking to the frame ----------------------------------------------

  function post(message) {
    var target = frame && frame.contentWindow;
    if (!target) { return false; }
    target.postMessage(message, ORIGIN);
    return true;
  }

  function onFrameLoad() {
    // A document loaded in the frame: introduce ourselves to its bridge.
    if (state === "ready") { state = "loading"; }
    if (state !== "loading") { return; }
    helloId = nextId++;
    post({ chatgate: "hello", id: helloId });
    window.clearTimeout(readyTimer);
    readyTimer = window.setTimeout(noBridge, READY_GRACE_MS);
  }

  function noBridge() {
    // The frame loaded but no bridge answered: the browser refused to frame the
    // chat here (frame-ancestors), or the chat page could not be served.
    var refused = failure("origin_not_allowed", "The chat did not start on this page. Add this site's origin (" +
      window.location.origin + ") to the project's allowed_origins setting, and check the project id.");
    var unreachable = failure("network", "Chatgate (" + ORIGIN + ") could not be reached.");
    if (!window.fetch) { refuse(refused); return; }
    window.fetch(ORIGIN + "/healthz", { mode: "no-cors", cache: "no-store", credentials: "omit" })
      .then(function () { refuse(refused); }, function () { refuse(unreachable); });
  }

  function refuse(error) {
    if (state === "ready") { return; }
    state = "refused";
    refusal = error;
    window.clearTimeout(readyTimer);
    var waiting = queue;
    queue = [];
    waiting.forEach(function (entry) { finish(entry, null, error); });
  }

  function ready(projectId) {
    state = "ready";
    refusal = null;
    window.clearTimeout(readyTimer);
    if (typeof projectId === "string") { readyProject = projectId; }
    var waiting = queue;
    queue = [];
    waiting.forEach(function (entry) {
      if (entry.method === null) { finish(entry, { project: readyProject }, null); } else { transmit(entry); }
    });
  }

  function finish(entry, response, error) {
    if (entry.done) { return; }
    entry.done = true;
    window.clearTimeout(entry.timer);
    delete pending[entry.id];
    deliver(entry.callback, response, error);
  }

  function transmit(entry) {
    pending[entry.id] = entry;
    if (!post({ chatgate: "call", id: entry.id, method: entry.method, args: entry.args })) {
      finish(entry, null, failure("network", "The chat frame is gone from this page."));
    }
  }

  // method null: wait for the bridge only (start's callback).
  function call(method, args, callback) {
    var entry = { id: nextId++, method: method, args: args, callback: callback, done: false, timer: null };
    entry.timer = window.setTimeout(function () {
      queue = queue.filter(function (other) { return other !== entry; });
      finish(entry, null, failure("timeout", "Chatgate did not answer within " + CALL_TIMEOUT_MS / 1000 + " seconds."));
    }, CALL_TIMEOUT_MS);
    ensureFrame();
    if (state === "ready") {
      if (method === null) { finish(entry, { project: readyProject }, null); } else { transmit(entry); }
    } else if (state === "refused") {
      finish(entry, null, refusal);
    } else {
      queue.push(entry);
    }
  }

  window.addEventListener("message", function (event) {
    if (!frame || event.source !== frame.contentWindow || event.origin !== ORIGIN) { return; }
    var data = event.data;
    if (!data || typeof data !== "object") { return; }
    if (data.chatgate === "ready" && data.id === helloId) {
      if (data.allowed === true) {
        ready(data.project);
      } else {
        refuse(data.error && typeof data.error.code === "string" ? data.error :
          failure("origin_not_allowed", "This site may not use the chat's commands."));
      }
    } else if (data.chatgate === "reply" && Object.prototype.hasOwnProperty.call(pending, data.id)) {
      var entry = pending[data.id];
      if (data.error) { finish(entry, null, data.error); } else { finish(entry, data.response, null); }
    } else if (data.chatgate === "event" && ["login", "logout", "message"].indexOf(data.name) !== -1) {
      emit(data.name, data.data || {});
    }
  });

  // ---- the public API --------------------------------------------------------

  function invalid(callback, message) {
    deliver(callback, null, failure("validation_failed", message));
  }

  function isObject(value) { return !!value && typeof value === "object"; }

  function nonEmptyString(value) { return typeof value === "string" && value.length > 0; }

  var api = {
    start: function (options, callback) {
      if (typeof options === "function") { callback = options; options = {}; }
      options = options || {};
      if (!isObject(options)) { invalid(callback, "start takes an options object."); return; }
      if (options.project !== undefined && options.project !== null) {
        if (!nonEmptyString(options.project)) { invalid(callback, "options.project must be a project id."); return; }
        if (frame && options.project !== project) {
          invalid(callback, "The chat is already loaded for another project; call start({project}) first.");
          return;
        }
        project = readyProject = options.project;
      }
      var hide = options.hideLauncher !== undefined ? options.hideLauncher : options.hideChatIcon;
      if (hide !== undefined) {
        hideLauncher = !!hide;
        layout();
      }
      call(null, null, callback);
      if (options.open) { openPanel(); }
    },
    login: function (options, callback) {
      if (!isObject(options) || !nonEmptyString(options.jwtToken)) {
        invalid(callback, "login takes {jwtToken: \"<token signed by your backend>\"}.");
        return;
      }
      call("login", { jwtToken: options.jwtToken }, callback);
    },
    loginWithCustomToken: function (token, callback) {
      if (!nonEmptyString(token)) { invalid(callback, "loginWithCustomToken takes the signed token."); return; }
      call("loginWithCustomToken", { token: token }, callback);
    },
    isLoggedIn: function (options, callback) {
      var args = {};
      if (isObject(options) && nonEmptyString(options.email)) { args.email = options.email; }
      if (isObject(options) && nonEmptyString(options.externalId)) { args.externalId = options.externalId; }
      if (!args.email && !args.externalId) {
        invalid(callback, "isLoggedIn takes {email} or {externalId}.");
        return;
      }
      call("isLoggedIn", args, callback);
    },
    logout: function (callback) { call("logout", {}, callback); },
    open: function (callback) { openPanel(); deliver(callback, { open: true }, null); },
    close: function (callback) { closePanel(); deliver(callback, { open: false }, null); },
    isOpen: function () { return isOpen; },
    on: function (name, handler) {
      if (!Object.prototype.hasOwnProperty.call(handlers, name) || typeof handler !== "function") {
        throw new TypeError("Chatgate.on(event, handler): event is one of " + EVENTS.join(", "));
      }
      handlers[name].push(handler);
    },
    off: function (name, handler) {
      if (Object.prototype.hasOwnProperty.call(handlers, name)) {
        handlers[name] = handlers[name].filter(function (other) { return other !== handler; });
      }
    }
  };
  Object.defineProperty(api, "__widget", { value: true });
  window.Chatgate = api;

  if (compat) {
    // Kustomer's listener names for the events Chatgate has.
    var LISTENERS = { onOpen: "open", onClose: "close", onLogout: "logout" };
    var kustomer = {};
    Object.keys(api).forEach(function (name) { kustomer[name] = api[name]; });
    kustomer.addListener = function (name, handler) {
      if (!LISTENERS[name]) { throw new TypeError("Kustomer.addListener: Chatgate offers " + Object.keys(LISTENERS).join(", ")); }
      api.on(LISTENERS[name], handler);
    };
    kustomer.removeListener = function (name, handler) {
      if (LISTENERS[name]) { api.off(LISTENERS[name], handler); }
    };
    window.Kustomer = kustomer;
  }

  if (small) {
    if (small.addEventListener) { small.addEventListener("change", layout); } else { small.addListener(layout); }
  }

  function announce() {
    addLauncher();
    window.dispatchEvent(new Event("chatgateLoaded"));
    if (compat) { window.dispatchEvent(new Event("kustomerLoaded")); }
  }
  // After the document is parsed, so listeners added by later scripts hear it.
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", announce); } else { later(announce); }
})();
