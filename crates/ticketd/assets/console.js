// The staff console's one script. Everything works without it (plain links and forms); this
// only adds live updates (one Server-Sent Events stream per page), partial swaps of queue rows
// fetched with ordinary GETs, and single-key shortcuts. No framework, no inline script (CSP).
"use strict";
(function () {
  var body = document.body;

  // ---- Shortcuts -----------------------------------------------------------------------
  function typing(target) {
    if (!target) return false;
    var tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }
  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("table.queue tbody tr[data-number]"));
  }
  function current() {
    return document.querySelector("table.queue tbody tr.current");
  }
  function move(step) {
    var list = rows();
    if (!list.length) return;
    var at = list.indexOf(current());
    var next = list[Math.max(0, Math.min(list.length - 1, at < 0 ? 0 : at + step))];
    list.forEach(function (r) { r.classList.remove("current"); r.removeAttribute("aria-selected"); });
    next.classList.add("current");
    next.setAttribute("aria-selected", "true");
    var link = next.querySelector("a.open");
    if (link) link.focus();
  }
  function openAction(name) {
    var details = document.getElementById("action-" + name);
    if (!details) return false;
    details.open = true;
    var field = details.querySelector("textarea, input:not([type=hidden]), select");
    if (field) field.focus();
    return true;
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var dialog = document.getElementById("shortcuts");
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "Enter": {
        var row = current();
        if (!row || typing(document.activeElement)) return;
        var link = row.querySelector("a.open");
        if (link) window.location.href = link.href;
        break;
      }
      case "r": if (!openAction("replies")) return; break;
      case "n": if (!openAction("notes")) return; break;
      case "a": {
        var form = document.getElementById("assign-me");
        if (!form) return;
        form.submit();
        break;
      }
      case "/": {
        var search = document.getElementById("filter-text");
        if (!search) return;
        search.focus();
        break;
      }
      case "?": if (dialog && dialog.showModal) dialog.showModal(); break;
      default: return;
    }
    event.preventDefault();
  });
  var close = document.getElementById("shortcuts-close");
  if (close) close.addEventListener("click", function () { document.getElementById("shortcuts").close(); });

  // ---- Bulk selection: "select all" -----------------------------------------------------
  var all = document.getElementById("select-all");
  if (all) all.addEventListener("change", function () {
    document.querySelectorAll("input[name=ticket]").forEach(function (box) { box.checked = all.checked; });
  });

  // ---- Live updates --------------------------------------------------------------------
  var live = body.getAttribute("data-live");
  if (!live || !window.EventSource) return;
  var source = new EventSource(live);
  var queueRows = body.getAttribute("data-rows");
  var ticket = body.getAttribute("data-ticket");
  var pending = {};
  var timer = null;

  function fetchText(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } }).then(function (r) {
      if (!r.ok) throw new Error(r.status);
      return r.text();
    });
  }
  function replaceBody() {
    var tbody = document.querySelector("table.queue tbody");
    if (!tbody) return;
    var url = queueRows + (queueRows.indexOf("?") < 0 ? "?" : "&") + "fragment=rows";
    fetchText(url).then(function (html) {
      var holder = document.createElement("table");
      holder.innerHTML = html;
      var fresh = holder.querySelector("tbody");
      if (fresh) tbody.replaceWith(fresh);
    }).catch(function () {});
  }
  function refreshRow(row, number) {
    var base = queueRows.split("?");
    var url = base[0] + "/rows/" + number + (base[1] ? "?" + base[1] : "");
    fetchText(url).then(function (html) {
      if (!html.trim()) { row.remove(); return; }
      var holder = document.createElement("tbody");
      holder.innerHTML = html;
      var fresh = holder.querySelector("tr");
      if (fresh) { fresh.classList.add("changed"); row.replaceWith(fresh); }
    }).catch(function () {});
  }
  function flush() {
    timer = null;
    var numbers = Object.keys(pending);
    pending = {};
    var missing = false;
    numbers.forEach(function (number) {
      var row = document.querySelector("table.queue tbody tr[data-number='" + number + "']");
      if (row) refreshRow(row, number); else missing = true;
    });
    // A ticket not on the page may belong here now (a new one): the page's rows again.
    if (missing) replaceBody();
    fetch("/console/counts", { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (counts) {
      Object.keys(counts).forEach(function (queue) {
        var badge = document.querySelector("[data-count='" + queue + "']");
        if (badge) badge.textContent = counts[queue];
      });
    }).catch(function () {});
  }
  source.addEventListener("changed", function (event) {
    var numbers = JSON.parse(event.data).tickets || [];
    if (queueRows) {
      numbers.forEach(function (n) { pending[n] = true; });
      if (!timer) timer = setTimeout(flush, 150);
    }
    if (ticket && numbers.indexOf(Number(ticket)) >= 0) {
      // Never swap forms under an agent's hands: say it changed, keep every draft.
      var note = document.getElementById("live-change");
      if (note) note.hidden = false;
    }
  });
  source.addEventListener("presence", function (event) {
    var data = JSON.parse(event.data);
    var here = document.getElementById("presence");
    if (!here || String(data.ticket) !== ticket) return;
    here.textContent = data.text;
  });
  window.addEventListener("beforeunload", function () { source.close(); });
})();
