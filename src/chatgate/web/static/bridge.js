// Widget bridge: runs inside the chat iframe and answers the host page's
// window.Chatgate calls by postMessage. (Filled in by the widget work.)
(function () { "use strict"; })();
