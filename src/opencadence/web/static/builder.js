// The cadence builder's small helpers (no build step). Without JavaScript every field shows
// and everything still works; with it the step form shows only the fields of the chosen type,
// a definition file picked from disk fills the import box, and the merge-field picker inserts
// at the cursor.
(function () {
  "use strict";
  function toggle(select) {
    var form = select.form;
    form.querySelectorAll(".only").forEach(function (box) {
      var on = box.getAttribute("data-types").split(" ").indexOf(select.value) >= 0;
      box.hidden = !on;
      box.querySelectorAll("input, select, textarea").forEach(function (el) { el.disabled = !on; });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("select[data-toggles]").forEach(function (select) {
      toggle(select);
      select.addEventListener("change", function () { toggle(select); });
    });
    document.querySelectorAll("input[type=file][data-fills]").forEach(function (input) {
      input.addEventListener("change", function () {
        var file = input.files && input.files[0];
        if (!file) { return; }
        file.text().then(function (text) { document.getElementById(input.getAttribute("data-fills")).value = text; });
      });
    });
    var last = null;
    document.querySelectorAll("[data-merge-target]").forEach(function (el) {
      el.addEventListener("focus", function () { last = el; });
    });
    document.querySelectorAll("button[data-insert-from]").forEach(function (button) {
      button.addEventListener("click", function () {
        var picked = document.getElementById(button.getAttribute("data-insert-from")).value;
        var el = last || document.querySelector("[data-merge-target]");
        if (!el || !picked) { return; }
        var start = el.selectionStart == null ? el.value.length : el.selectionStart;
        var end = el.selectionEnd == null ? start : el.selectionEnd;
        el.value = el.value.slice(0, start) + picked + el.value.slice(end);
        el.focus();
        el.setSelectionRange(start + picked.length, start + picked.length);
      });
    });
  });
})();
