// LabelLoop case page: keyboard-first ruling (number keys pick a label, R writes the
// rationale, Ctrl+Enter rules, N skips to the next case, ? shows the keys). The server
// checks the ruling and decides; this only saves keystrokes.
(function () {
  "use strict";
  var root = document.getElementById("case");
  if (!root) { return; }
  var form = document.getElementById("rule-form");
  var rationale = document.getElementById("rationale");
  var counter = document.getElementById("rationale-count");
  var help = document.getElementById("key-help");
  var next = document.getElementById("next-case");

  function toggleHelp(show) {
    if (!help) { return; }
    help.hidden = show === undefined ? !help.hidden : !show;
  }
  var helpButton = document.getElementById("show-keys");
  if (helpButton) { helpButton.addEventListener("click", function () { toggleHelp(); }); }

  function count() {
    if (!rationale || !counter) { return; }
    var min = parseInt(rationale.getAttribute("data-min") || "0", 10);
    var n = rationale.value.trim().length;
    counter.textContent = n + " of at least " + min + " characters";
    counter.classList.toggle("short", n < min);
  }
  if (rationale) { rationale.addEventListener("input", count); count(); }

  // after a refusal, the first field named in the messages has the focus
  if (form && document.getElementById("case-errors")) {
    var bad = form.querySelector("textarea.invalid, .invalid input, .invalid textarea");
    if (bad) { bad.focus(); }
  }

  function pick(key) {
    if (!form) { return false; }
    var el = form.querySelector("input[data-key='" + key + "']");
    if (!el) { return false; }
    el.checked = el.type === "checkbox" ? !el.checked : true;
    el.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  document.addEventListener("keydown", function (ev) {
    var t = ev.target, tag = t && t.tagName;
    var typing = tag === "INPUT" && !/^(radio|checkbox|button|submit)$/.test(t.type) || tag === "TEXTAREA" || tag === "SELECT";
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      if (form) { ev.preventDefault(); form.requestSubmit(); }
      return;
    }
    if (ev.key === "Escape") {
      if (help && !help.hidden) { toggleHelp(false); ev.preventDefault(); return; }
      if (typing) { t.blur(); }
      return;
    }
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    if (/^[1-9]$/.test(ev.key)) {
      if (pick(ev.key)) { ev.preventDefault(); }
      return;
    }
    var k = ev.key.toLowerCase();
    if (k === "r" && rationale) {
      ev.preventDefault(); rationale.focus();
    } else if (k === "n" && next) {
      ev.preventDefault(); window.location.assign(next.href);
    } else if (ev.key === "?") {
      ev.preventDefault(); toggleHelp();
    }
  });
})();
