// Where the chat page and the widget bridge keep this project's session in
// this browser: localStorage ("chatgate:<pid>:session" = {token, user}).
// Browsers that keep third-party frames away from storage (the widget's frame
// on a customer's site in some privacy modes) throw on localStorage; then the
// session lives in memory for this page load only, shared by both scripts.
window.ChatgateSessionStore = (function () {
  "use strict";
  var key = "chatgate:" + document.body.getAttribute("data-project") + ":session";
  var inMemory = null;
  var usable = true;
  try { window.localStorage.getItem(key); } catch (e) { usable = false; }

  return {
    load: function () {
      if (!usable) { return inMemory; }
      try { return JSON.parse(window.localStorage.getItem(key) || "null"); } catch (e) { return null; }
    },
    save: function (session) {
      inMemory = session || null;
      if (!usable) { return; }
      try {
        if (session) { window.localStorage.setItem(key, JSON.stringify(session)); }
        else { window.localStorage.removeItem(key); }
      } catch (e) { usable = false; } // full or blocked: memory from now on
    }
  };
})();
