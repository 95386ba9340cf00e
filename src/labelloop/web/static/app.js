// LabelLoop pages: small progressive enhancements (no inline scripts; see the CSP).
(function () {
  "use strict";
  // Count active review time while the page is visible.
  var started = Date.now(), active = 0, visibleSince = document.hidden ? null : Date.now();
  document.addEventListener("visibilitychange", function () {
    if (document.hidden && visibleSince !== null) { active += Date.now() - visibleSince; visibleSince = null; }
    else if (!document.hidden) { visibleSince = Date.now(); }
  });
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.closest || !form.closest(".review-item")) { return; }
    var seconds = (active + (visibleSince !== null ? Date.now() - visibleSince : 0)) / 1000;
    var input = form.querySelector("input[name=active_seconds]");
    if (!input) { input = document.createElement("input"); input.type = "hidden"; input.name = "active_seconds"; form.appendChild(input); }
    input.value = seconds.toFixed(1);
    active = 0; visibleSince = document.hidden ? null : Date.now(); started = Date.now();
  }, true);
  document.addEventListener("htmx:configRequest", function (ev) {
    var form = ev.detail.elt;
    if (form && form.closest && form.closest(".review-item")) {
      var seconds = (active + (visibleSince !== null ? Date.now() - visibleSince : 0)) / 1000;
      ev.detail.parameters.active_seconds = seconds.toFixed(1);
      active = 0; visibleSince = document.hidden ? null : Date.now();
    }
  });
  void started;
})();
