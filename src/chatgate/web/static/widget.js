// Chatgate widget. Embed with:
// <script defer data-external-auth-code="<code>" src="https://chat.example.com/widget.js" data-project="<pid>"></script>
// It adds a chat bubble and a panel that loads the chat page signed in. The
// code travels in the iframe's #fragment, which is never sent to a server or
// in a Referer header.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) { return; }
  var origin = new URL(script.src, window.location.href).origin;
  var code = script.getAttribute("data-external-auth-code");
  var project = script.getAttribute("data-project");
  var path = project ? "/p/" + encodeURIComponent(project) + "/" : "/";
  var src = origin + path + "?embed=1" + (code ? "#externalAuthCode=" + encodeURIComponent(code) : "");

  var root = document.createElement("div");
  root.id = "chatgate-widget";
  root.setAttribute("style", "position:fixed;right:20px;bottom:20px;z-index:2147483000;font:14px system-ui,sans-serif");

  var panel = document.createElement("iframe");
  panel.id = "chatgate-frame";
  panel.title = "Chat";
  panel.src = src;
  panel.setAttribute("style", "display:none;width:360px;height:520px;max-height:calc(100vh - 100px);border:0;" +
    "border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.2);margin-bottom:12px;background:#fff");

  var bubble = document.createElement("button");
  bubble.id = "chatgate-bubble";
  bubble.type = "button";
  bubble.setAttribute("aria-label", "Open chat");
  bubble.textContent = "Chat";
  bubble.setAttribute("style", "display:block;margin-left:auto;width:56px;height:56px;border-radius:50%;border:0;" +
    "background:#2f6fed;color:#fff;font-weight:600;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)");
  bubble.addEventListener("click", function () {
    var open = panel.style.display !== "none";
    panel.style.display = open ? "none" : "block";
    bubble.setAttribute("aria-label", open ? "Open chat" : "Close chat");
  });

  root.appendChild(panel);
  root.appendChild(bubble);
  (document.body || document.documentElement).appendChild(root);
})();
