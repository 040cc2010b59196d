/* My Work without reloads: the server's change events (GET /app/work/events, a text/event-stream)
   trigger "oc-changed", on which htmx re-fetches the list (#work-list's hx-get). A change heard
   while the user is filling in a form of the list (a call result, comments) waits until the
   focus leaves the list, so nothing being typed is replaced. */
(function () {
  "use strict";
  var first = document.getElementById("work-list");
  if (!first || !window.EventSource) { return; }
  var pending = false;
  function editing() {
    var list = document.getElementById("work-list");
    var el = document.activeElement;
    return !!(list && el && list.contains(el) && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName));
  }
  function refresh() {
    if (editing()) { pending = true; return; }
    pending = false;
    document.body.dispatchEvent(new CustomEvent("oc-changed"));
  }
  document.addEventListener("focusout", function () {
    if (pending) { setTimeout(refresh, 0); }
  });
  var source = new EventSource("/app/work/events?after=" + encodeURIComponent(first.dataset.replay || ""));
  source.addEventListener("changed", refresh);
  window.addEventListener("pagehide", function () { source.close(); });
})();
