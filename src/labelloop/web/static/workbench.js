// LabelLoop workbench: hotkeys, span selection, image zoom and pan, active time, and the
// label schema's checks before submitting (the server checks again and decides).
(function () {
  "use strict";
  var root = document.getElementById("workbench");
  if (!root) { return; }
  var schema = JSON.parse(document.getElementById("wb-schema").textContent);
  var keys = JSON.parse(document.getElementById("wb-keys").textContent);
  var form = document.getElementById("wb-form");
  var task = schema.task_type;
  var labels = (schema.labels || []).map(function (l) { return typeof l === "string" ? { name: l } : l; });
  var attributes = schema.attributes || [];
  var rules = schema.rules || [];
  var reserved = keys.reserved || [];
  var IDLE_MS = 30000;

  function scopeOf(a) { return a.scope || (task === "spans" ? "region" : "annotation"); }
  function q(s) { return "'" + s + "'"; }
  function missing(v) { return v === undefined || v === null || v === "" || (Array.isArray(v) && v.length === 0); }

  // -- active time: seconds while the page is visible and the annotator was active in the last 30 s
  var activeMs = 0, lastInput = Date.now(), lastTick = Date.now();
  function tick() {
    var now = Date.now();
    if (document.visibilityState === "visible" && now - lastInput < IDLE_MS) { activeMs += now - lastTick; }
    lastTick = now;
  }
  ["mousemove", "mousedown", "keydown", "wheel", "scroll", "touchstart", "input"].forEach(function (ev) {
    document.addEventListener(ev, function () { tick(); lastInput = Date.now(); }, { passive: true, capture: true });
  });
  document.addEventListener("visibilitychange", tick);
  window.setInterval(tick, 1000);
  function activeSeconds() { tick(); return activeMs / 1000; }
  window.labelloopWorkbench = { activeSeconds: activeSeconds };

  // -- spans -------------------------------------------------------------------------------
  var textEl = document.getElementById("wb-text");
  var exactText = null;
  var textData = document.getElementById("wb-item-text");
  if (textEl && textData) {
    exactText = JSON.parse(textData.textContent);
    if (typeof exactText === "string" && textEl.textContent !== exactText) { textEl.textContent = exactText; }
  }
  var spansInput = document.getElementById("wb-spans");
  var spans = [];
  if (spansInput && spansInput.value) {
    try { var parsed = JSON.parse(spansInput.value); if (Array.isArray(parsed)) { spans = parsed; } } catch (e) { spans = []; }
  }
  var regionAttrs = attributes.filter(function (a) { return scopeOf(a) === "region"; });

  function offsetIn(container, node, offset) {
    var r = document.createRange();
    r.selectNodeContents(container);
    r.setEnd(node, offset);
    return r.toString().length;
  }

  function selectedSpan() {
    if (!textEl) { return null; }
    var sel = window.getSelection();
    if (!sel || sel.rangeCount === 0 || sel.isCollapsed) { return null; }
    var range = sel.getRangeAt(0);
    if (!textEl.contains(range.startContainer) || !textEl.contains(range.endContainer)) { return null; }
    var text = textEl.textContent;
    var start = offsetIn(textEl, range.startContainer, range.startOffset);
    var end = offsetIn(textEl, range.endContainer, range.endOffset);
    while (start < end && /\s/.test(text.charAt(start))) { start++; }
    while (end > start && /\s/.test(text.charAt(end - 1))) { end--; }
    if (end <= start) { return null; }
    return { start: start, end: end, text: text.slice(start, end) };
  }

  function addSpan(label) {
    var s = selectedSpan();
    if (!s) { showErrors([{ field: "value", message: "select some text first, then choose its label" }]); return; }
    s.label = label;
    spans.push(s);
    spans.sort(function (a, b) { return a.start - b.start || a.end - b.end; });
    window.getSelection().removeAllRanges();
    renderSpans();
    liveCheck();
  }

  function renderSpans() {
    if (!spansInput) { return; }
    spansInput.value = spans.length ? JSON.stringify(spans) : "";
    var list = document.getElementById("wb-span-list");
    list.textContent = "";
    spans.forEach(function (s, i) {
      var li = document.createElement("li");
      li.className = "wb-span";
      var tag = document.createElement("span");
      tag.className = "badge";
      tag.textContent = s.label;
      var quote = document.createElement("q");
      quote.textContent = s.text;
      var where = document.createElement("span");
      where.className = "muted";
      where.textContent = " " + s.start + "–" + s.end + " ";
      li.appendChild(tag); li.appendChild(document.createTextNode(" ")); li.appendChild(quote); li.appendChild(where);
      regionAttrs.forEach(function (a) {
        var current = (s.attributes || {})[a.name];
        var input;
        if (a.type === "choice" || a.type === "bool") {
          input = document.createElement("select");
          var opts = a.type === "bool" ? [["", "–"], ["true", "yes"], ["false", "no"]] : [["", "–"]].concat(a.values.map(function (v) { return [v, v]; }));
          opts.forEach(function (o) { var op = document.createElement("option"); op.value = o[0]; op.textContent = o[1]; input.appendChild(op); });
          input.value = current === undefined ? "" : String(current);
        } else {
          input = document.createElement("input");
          input.type = a.type === "number" ? "number" : "text";
          input.value = current === undefined ? "" : String(current);
        }
        input.setAttribute("aria-label", a.name + " of span " + (i + 1));
        input.addEventListener("change", function () {
          s.attributes = s.attributes || {};
          var v = input.value;
          if (v === "") { delete s.attributes[a.name]; }
          else if (a.type === "bool") { s.attributes[a.name] = v === "true"; }
          else if (a.type === "number") { s.attributes[a.name] = Number(v); }
          else { s.attributes[a.name] = v; }
          if (Object.keys(s.attributes).length === 0) { delete s.attributes; }
          spansInput.value = JSON.stringify(spans);
        });
        var lab = document.createElement("label");
        lab.className = "wb-region-attr";
        lab.textContent = a.name + (a.required ? " (required) " : " ");
        lab.appendChild(input);
        li.appendChild(lab);
      });
      var rm = document.createElement("button");
      rm.type = "button"; rm.className = "secondary wb-span-remove"; rm.textContent = "remove";
      rm.setAttribute("aria-label", "remove span " + (i + 1));
      rm.addEventListener("click", function () { spans.splice(i, 1); renderSpans(); liveCheck(); });
      li.appendChild(rm);
      list.appendChild(li);
    });
    document.getElementById("wb-no-spans").hidden = spans.length > 0;
    if (window.CSS && CSS.highlights && textEl && textEl.firstChild) {
      var node = textEl.firstChild, ranges = [];
      spans.forEach(function (s) {
        if (s.end <= node.length) { var r = document.createRange(); r.setStart(node, s.start); r.setEnd(node, s.end); ranges.push(r); }
      });
      CSS.highlights.set("wb-span", new Highlight(...ranges));
    }
  }
  document.querySelectorAll(".wb-span-label").forEach(function (b) {
    b.addEventListener("mousedown", function (ev) { ev.preventDefault(); }); // keep the selection
    b.addEventListener("click", function () { addSpan(b.getAttribute("data-label")); });
  });
  if (spansInput) { renderSpans(); }

  // -- reading the form like the server does ----------------------------------------------
  function currentValue() {
    if (task === "spans") { return spans; }
    if (task === "multi") {
      return Array.prototype.map.call(form.querySelectorAll("input[name=value]:checked"), function (i) { return i.value; });
    }
    var el = form.querySelector("input[name=value]:checked") || form.querySelector("input[name=value]:not([type=radio]), textarea[name=value]");
    if (!el) { return null; }
    var v = el.value;
    if (task === "ordinal" && schema.scale) { return v === "" ? null : Number(v); }
    if (task !== "text" && v.trim() === "") { return null; }
    return v;
  }
  function currentAttributes() {
    var out = {};
    attributes.forEach(function (a) {
      if (scopeOf(a) !== "annotation") { return; }
      var el = form.querySelector("[name='attr." + a.name + "']");
      if (el && el.value !== "") { out[a.name] = el.value; }
    });
    return out;
  }
  function labelsIn(value) {
    if (task === "single" || (task === "ordinal" && !schema.scale)) { return typeof value === "string" ? [value] : []; }
    if (task === "multi") { return value || []; }
    if (task === "spans") { return (value || []).map(function (s) { return s.label; }); }
    return [];
  }

  // -- the schema's checks (the same rules and messages as labelloop.projects.validation)
  function check() {
    var out = [];
    var value = currentValue();
    var attrs = currentAttributes();
    var names = labels.map(function (l) { return l.name; });
    if (task === "text") {
      if (value !== null && schema.max_length && value.length > schema.max_length) {
        out.push({ field: "value", message: value.length + " characters; at most " + schema.max_length });
      }
    } else if (task === "multi") {
      var n = value.length, min = schema.min_labels || 0;
      if (n < min) { out.push({ field: "value", message: n + " label(s) chosen; at least " + min + " required" }); }
      if (schema.max_labels && n > schema.max_labels) { out.push({ field: "value", message: n + " labels chosen; at most " + schema.max_labels + " allowed" }); }
    } else if (task === "spans") {
      var text = textEl ? textEl.textContent : "";
      value.forEach(function (s, i) {
        if (names.indexOf(s.label) < 0) { out.push({ field: "value[" + i + "].label", message: "unknown label " + q(s.label) }); }
        if (!(s.end > s.start)) { out.push({ field: "value[" + i + "].end", message: "end " + s.end + " must be greater than start " + s.start }); }
        else if (s.end > text.length) { out.push({ field: "value[" + i + "].end", message: "end " + s.end + " is past the end of the text (" + text.length + " characters)" }); }
        regionAttrs.forEach(function (a) {
          if (a.required && missing((s.attributes || {})[a.name])) {
            out.push({ field: "value[" + i + "].attributes." + a.name, message: "attribute " + q(a.name) + " is required" });
          }
        });
      });
      if (!schema.allow_overlap) {
        var order = value.map(function (s, i) { return [s.start, s.end, i]; }).sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
        for (var k = 1, lastEnd = order.length ? order[0][1] : 0, lastI = order.length ? order[0][2] : 0; k < order.length; k++) {
          if (order[k][0] < lastEnd) { out.push({ field: "value[" + order[k][2] + "]", message: "overlaps value[" + lastI + "]; this schema forbids overlapping spans" }); }
          if (order[k][1] > lastEnd) { lastEnd = order[k][1]; lastI = order[k][2]; }
        }
      }
    } else if (value === null) {
      out.push({ field: "value", message: task === "ordinal" ? "choose a value on the scale" : "choose a label" });
    } else if (task === "ordinal" && schema.scale) {
      if (!(value >= schema.scale.min && value <= schema.scale.max)) {
        out.push({ field: "value", message: value + " is outside the scale " + schema.scale.min + ".." + schema.scale.max });
      }
    }
    attributes.forEach(function (a) {
      if (scopeOf(a) !== "annotation") { return; }
      var v = attrs[a.name];
      if (a.required && missing(v)) { out.push({ field: "attributes." + a.name, message: "attribute " + q(a.name) + " is required" }); }
      else if (!missing(v) && a.type === "number" && !isFinite(Number(v))) { out.push({ field: "attributes." + a.name, message: "expected a number, got " + q(v) }); }
    });
    var present = labelsIn(value);
    var seconds = activeSeconds();
    rules.forEach(function (rule, i) {
      var w = rule.when || {};
      var sev = rule.severity || ((rule.flag && !(rule.require_attributes || rule.forbid_labels)) ? "warning" : "error");
      if (sev !== "error") { return; }
      if (w.label !== undefined && present.indexOf(w.label) < 0) { return; }
      if (w.active_seconds_below !== undefined && !(seconds < w.active_seconds_below)) { return; }
      if (w.active_seconds_above !== undefined && !(seconds > w.active_seconds_above)) { return; }
      var because = w.label !== undefined ? "when the label is " + q(w.label) : "by a project rule";
      (rule.require_attributes || []).forEach(function (name) {
        var def = attributes.filter(function (a) { return a.name === name; })[0];
        if (def && scopeOf(def) === "region" && task === "spans") {
          value.forEach(function (s, j) {
            if (w.label !== undefined && s.label !== w.label) { return; }
            if (missing((s.attributes || {})[name])) {
              out.push({ field: "value[" + j + "].attributes." + name, message: (rule.message || "attribute " + q(name) + " is required " + because) + " (rules[" + i + "])" });
            }
          });
        } else if (missing(attrs[name])) {
          out.push({ field: "attributes." + name, message: (rule.message || "attribute " + q(name) + " is required " + because) + " (rules[" + i + "])" });
        }
      });
      if (task === "multi") {
        (rule.forbid_labels || []).forEach(function (bad) {
          var j = value.indexOf(bad);
          if (j >= 0) { out.push({ field: "value[" + j + "]", message: (rule.message || q(bad) + " may not be chosen together with " + q(w.label)) + " (rules[" + i + "])" }); }
        });
      }
    });
    var flag = document.getElementById("wb-uncertain");
    if (flag && flag.checked && document.getElementById("wb-uncertain-reason").value.trim() === "") {
      out.push({ field: "uncertain_reason", message: "a reason is required" });
    }
    return out;
  }

  var shown = false;
  function showErrors(errors) {
    var box = document.getElementById("wb-client-errors");
    form.querySelectorAll("[data-field]").forEach(function (el) { el.classList.remove("wb-invalid"); });
    if (!errors.length) { box.hidden = true; box.textContent = ""; return; }
    box.textContent = "";
    var p = document.createElement("p"); p.textContent = "Not submitted yet:"; box.appendChild(p);
    var ul = document.createElement("ul");
    errors.forEach(function (e) {
      var li = document.createElement("li");
      var code = document.createElement("code"); code.textContent = e.field;
      li.appendChild(code); li.appendChild(document.createTextNode(": " + e.message));
      ul.appendChild(li);
      var base = e.field.indexOf("value") === 0 ? "value" : e.field;
      var el = form.querySelector("[data-field='" + base + "']");
      if (el) { el.classList.add("wb-invalid"); }
    });
    box.appendChild(ul);
    box.hidden = false;
    shown = true;
  }
  function liveCheck() { if (shown) { showErrors(check()); } }
  form.addEventListener("change", liveCheck);
  form.addEventListener("input", liveCheck);

  form.addEventListener("submit", function (ev) {
    var errors = check();
    if (errors.length) { ev.preventDefault(); showErrors(errors); return; }
    if (spansInput) { spansInput.value = spans.length ? JSON.stringify(spans) : ""; }
    document.getElementById("wb-active").value = activeSeconds().toFixed(1);
  });

  // -- image zoom and pan ------------------------------------------------------------------
  var frame = document.getElementById("wb-image"), img = document.getElementById("wb-img");
  if (frame && img) {
    var scale = 1, tx = 0, ty = 0, drag = null;
    var level = document.getElementById("wb-zoom-level");
    var apply = function () {
      img.style.transform = "translate(" + tx + "px," + ty + "px) scale(" + scale + ")";
      level.textContent = Math.round(scale * 100) + "%";
    };
    var zoomAt = function (factor, cx, cy) {
      var next = Math.min(16, Math.max(0.25, scale * factor));
      factor = next / scale;
      tx = cx - (cx - tx) * factor; ty = cy - (cy - ty) * factor; scale = next;
      apply();
    };
    frame.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var box = frame.getBoundingClientRect();
      zoomAt(ev.deltaY < 0 ? 1.2 : 1 / 1.2, ev.clientX - box.left, ev.clientY - box.top);
    }, { passive: false });
    frame.addEventListener("pointerdown", function (ev) {
      drag = { x: ev.clientX - tx, y: ev.clientY - ty }; frame.setPointerCapture(ev.pointerId); frame.classList.add("dragging");
    });
    frame.addEventListener("pointermove", function (ev) {
      if (!drag) { return; }
      tx = ev.clientX - drag.x; ty = ev.clientY - drag.y; apply();
    });
    var stop = function () { drag = null; frame.classList.remove("dragging"); };
    frame.addEventListener("pointerup", stop);
    frame.addEventListener("pointercancel", stop);
    document.querySelectorAll("[data-zoom]").forEach(function (b) {
      b.addEventListener("click", function () {
        var what = b.getAttribute("data-zoom"), box = frame.getBoundingClientRect();
        if (what === "reset") { scale = 1; tx = 0; ty = 0; apply(); return; }
        zoomAt(what === "in" ? 1.25 : 0.8, box.width / 2, box.height / 2);
      });
    });
    frame.addEventListener("keydown", function (ev) {
      if (ev.key === "+" || ev.key === "=") { ev.preventDefault(); zoomAt(1.25, frame.clientWidth / 2, frame.clientHeight / 2); }
      else if (ev.key === "-") { ev.preventDefault(); zoomAt(0.8, frame.clientWidth / 2, frame.clientHeight / 2); }
      else if (ev.key === "0") { ev.preventDefault(); scale = 1; tx = 0; ty = 0; apply(); }
      else if (ev.key.indexOf("Arrow") === 0) {
        ev.preventDefault(); ev.stopPropagation();
        var step = 40;
        if (ev.key === "ArrowLeft") { tx += step; } else if (ev.key === "ArrowRight") { tx -= step; }
        else if (ev.key === "ArrowUp") { ty += step; } else { ty -= step; }
        apply();
      }
    });
  }

  // -- hotkeys -------------------------------------------------------------------------------
  var skip = document.getElementById("wb-skip"), guide = document.getElementById("wb-guide");
  function chooseByKey(key) {
    var els = form.querySelectorAll("[data-hotkey]");
    for (var i = 0; i < els.length; i++) {
      var hk = els[i].getAttribute("data-hotkey");
      if (!hk || hk.toLowerCase() !== key.toLowerCase()) { continue; }
      var el = els[i];
      if (el.classList.contains("wb-span-label")) { addSpan(el.getAttribute("data-label")); }
      else if (el.type === "checkbox") { el.checked = !el.checked; el.dispatchEvent(new Event("change", { bubbles: true })); }
      else { el.checked = true; el.dispatchEvent(new Event("change", { bubbles: true })); }
      return true;
    }
    return false;
  }
  document.addEventListener("keydown", function (ev) {
    var t = ev.target, tag = t && t.tagName;
    var typing = tag === "INPUT" && !/^(radio|checkbox|button|submit)$/.test(t.type) || tag === "TEXTAREA" || tag === "SELECT";
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      if (skip && skip.contains(t)) { return; }
      ev.preventDefault(); form.requestSubmit(); return;
    }
    if (typing) {
      if (ev.key === "Escape") { t.blur(); }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    if (ev.key === "Enter") {
      if (tag === "BUTTON" || tag === "SUMMARY" || tag === "A") { return; }
      ev.preventDefault(); form.requestSubmit(); return;
    }
    if (chooseByKey(ev.key)) { ev.preventDefault(); return; }
    var k = ev.key.toLowerCase();
    if (k === "s" && reserved.indexOf("s") >= 0 && skip) {
      ev.preventDefault(); skip.open = true; document.getElementById("wb-skip-reason").focus();
    } else if (k === "f" && reserved.indexOf("f") >= 0) {
      ev.preventDefault();
      var box = document.getElementById("wb-uncertain");
      box.checked = !box.checked;
      if (box.checked) { document.getElementById("wb-uncertain-reason").focus(); }
      liveCheck();
    } else if (k === "g" && reserved.indexOf("g") >= 0 && guide) {
      ev.preventDefault(); guide.open = !guide.open;
    }
  });
  var reason = document.getElementById("wb-uncertain-reason");
  if (reason) {
    reason.addEventListener("input", function () {
      if (reason.value.trim() !== "") { document.getElementById("wb-uncertain").checked = true; }
    });
  }
})();
