// Feedback pages: "select all" for the drafts to send (no inline scripts; see the CSP).
(function () {
  "use strict";
  var all = document.getElementById("fb-all");
  if (!all) { return; }
  var row = all.closest(".fb-select-all");
  if (row) { row.hidden = false; }
  var boxes = function () { return all.form.querySelectorAll("input[name=ids]"); };
  all.addEventListener("change", function () {
    boxes().forEach(function (box) { box.checked = all.checked; });
  });
  all.form.addEventListener("change", function (ev) {
    if (ev.target === all) { return; }
    var list = Array.prototype.slice.call(boxes());
    all.checked = list.length > 0 && list.every(function (box) { return box.checked; });
  });
})();
