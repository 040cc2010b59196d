/* My Work without reloads: the server's change events (GET /app/work/events, a text/event-stream)
   trigger "oc-changed", on which htmx re-fetches the list (#work-list's hx-get). */
(function () {
  "use strict";
  var list = document.getElementById("work-list");
  if (!list || !window.EventSource) { return; }
  var source = new EventSource("/app/work/events?after=" + encodeURIComponent(list.dataset.replay || ""));
  source.addEventListener("changed", function () {
    document.body.dispatchEvent(new CustomEvent("oc-changed"));
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
