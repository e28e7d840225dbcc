/* Kefu desk: the one script every page loads (CSP script-src 'self'; plain JS, no build step).
 *
 * Every word it shows comes from the server, in the page's language, as data-text-* attributes
 * of #kefu-live (base.html); it never writes HTML from data (textContent only).
 *
 * 1. CSRF: every htmx request carries the session's token (<meta name="csrf-token">) as
 *    X-CSRF-Token.
 * 2. Countdowns: every [data-deadline] (ISO time) shows the time left, "2h 05m", or overdue,
 *    "-12m" (class "overdue"), updated every second; with data-paused it shows "paused".
 *    The server's text inside is the fallback without JavaScript.
 * 3. Shortcuts: an element with data-shortcut="<key>" is used when that key is pressed and
 *    no field has the focus: a field is focused, a form focuses its first field or, having
 *    none, is submitted, anything else is clicked. data-shortcut-label names it in the help
 *    that "?" opens (else its aria-label, title or text).
 * 4. Live updates: one EventSource per page on #kefu-live's data-stream (GET /events). Each
 *    event becomes DOM events on <body>, detail = the event's JSON:
 *      kefu:event                  every event
 *      kefu:ticket | kefu:message | kefu:notification | kefu:presence   by source
 *      kefu:ticket-<id>            anything about ticket <id>
 *    so a part of a page refreshes itself with, e.g.,
 *      hx-get="/…" hx-trigger="kefu:ticket from:body, kefu:message from:body delay:300ms"
 *      hx-get="/tickets/42/…" hx-trigger="kefu:ticket-42 from:body delay:300ms"
 *    (allowEval is off, so event filters [..] do not work: use the per-ticket event names).
 *    Events the server marks "toast", and changes by others to the ticket on screen, show a
 *    toast. Events are dropped when their "key" was seen (a stream cut mid-batch resends).
 * 5. Collision hint: on a ticket page (a direct child of <main> with data-ticket-id) the
 *    stream also reports who else has the ticket open; the text goes into [data-presence]
 *    (created at the top of the ticket when the page has none).
 */
(function () {
  "use strict";

  var live = document.getElementById("kefu-live");
  var data = live ? live.dataset : {};

  function text(name, values) {
    var key = "text" + name.replace(/(^|-)([a-z])/g, function (_, __, c) {
      return c.toUpperCase();
    });
    var template = data[key] || "";
    return template.replace(/\{(\w+)\}/g, function (whole, field) {
      return values && values[field] !== undefined ? String(values[field]) : whole;
    });
  }

  function fire(name, detail) {
    document.body.dispatchEvent(new CustomEvent(name, { detail: detail }));
  }

  /* 1. CSRF ------------------------------------------------------------------------------- */
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) {
      event.detail.headers["X-CSRF-Token"] = meta.content;
    }
  });

  /* 2. Countdowns ------------------------------------------------------------------------- */
  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function span(seconds) {
    var left = Math.abs(seconds);
    var d = Math.floor(left / 86400), h = Math.floor((left % 86400) / 3600);
    var m = Math.floor((left % 3600) / 60), s = left % 60;
    var out;
    if (d >= 1) { out = text("days", { d: d, h: pad(h) }); }
    else if (h >= 1) { out = text("hours", { h: h, m: pad(m) }); }
    else if (m >= 1) { out = text("minutes", { m: m }); }
    else { out = text("seconds", { s: s }); }
    return (seconds < 0 ? "-" : "") + out;
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var label, left = null;
      if (el.hasAttribute("data-paused")) {
        label = text("paused");
      } else {
        var at = Date.parse(el.getAttribute("data-deadline"));
        if (isNaN(at)) { return; }
        left = Math.floor((at - now) / 1000);
        label = span(left);
      }
      if (el.textContent !== label) { el.textContent = label; }
      el.classList.toggle("paused", left === null);
      el.classList.toggle("overdue", left !== null && left < 0);
      el.classList.toggle("due-soon", left !== null && left >= 0 && left < 1800);
    });
  }

  /* 3. Shortcuts -------------------------------------------------------------------------- */
  var help = null;

  function typing(el) {
    if (!el) { return false; }
    var tag = el.tagName;
    return el.isContentEditable || tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
  }

  function shown(el) {
    return !el.closest("[hidden]") && el.getClientRects().length > 0;
  }

  function shortcuts() {
    return Array.prototype.filter.call(document.querySelectorAll("[data-shortcut]"), shown);
  }

  function labelOf(el) {
    var label = el.getAttribute("data-shortcut-label") || el.getAttribute("aria-label") ||
      el.getAttribute("title");
    if (!label && el.tagName === "FORM") {
      var button = el.querySelector("button, [type=submit]");
      label = button ? (button.textContent || button.value) : "";
    }
    return (label || el.textContent || "").replace(/\s+/g, " ").trim().slice(0, 60);
  }

  function use(el) {
    if (el.tagName === "FORM") {
      var field = el.querySelector(
        "textarea, select, input:not([type=hidden]):not([type=submit]):not([type=button])");
      if (field) { field.focus(); return; }
      if (el.requestSubmit) { el.requestSubmit(); } else { el.submit(); }
      return;
    }
    if (typing(el)) { el.focus(); return; }
    el.click();
  }

  function closeHelp() {
    if (help) { help.remove(); help = null; }
  }

  function openHelp() {
    help = document.createElement("div");
    help.className = "shortcut-help";
    help.setAttribute("role", "dialog");
    help.setAttribute("aria-modal", "true");
    var title = document.createElement("h2");
    title.textContent = text("shortcuts");
    help.appendChild(title);
    var list = document.createElement("dl");
    shortcuts().forEach(function (el) {
      var key = document.createElement("dt");
      var kbd = document.createElement("kbd");
      kbd.textContent = el.getAttribute("data-shortcut");
      key.appendChild(kbd);
      var what = document.createElement("dd");
      what.textContent = labelOf(el);
      list.appendChild(key);
      list.appendChild(what);
    });
    help.appendChild(list);
    var hint = document.createElement("p");
    hint.className = "hint";
    hint.textContent = text("shortcuts-hint");
    help.appendChild(hint);
    var close = document.createElement("button");
    close.type = "button";
    close.textContent = text("close");
    close.addEventListener("click", closeHelp);
    help.appendChild(close);
    document.body.appendChild(help);
    close.focus();
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.key === "Escape") { closeHelp(); return; }
    if (typing(document.activeElement)) { return; }
    if (event.key === "?") {
      event.preventDefault();
      if (help) { closeHelp(); } else { openHelp(); }
      return;
    }
    var found = shortcuts().filter(function (el) {
      return el.getAttribute("data-shortcut") === event.key;
    });
    if (found.length) {
      event.preventDefault();
      closeHelp();
      use(found[0]);
    }
  });

  /* 4. Live updates ----------------------------------------------------------------------- */
  var me = data.agentId || "";
  var ticketRoot = document.querySelector("main > [data-ticket-id]");
  var ticketId = ticketRoot ? ticketRoot.getAttribute("data-ticket-id") : "";
  var seen = [], seenSet = new Set();
  var source = null, cursor = "", retryIn = 2000, retryTimer = null;

  function remember(key) {
    if (seenSet.has(key)) { return false; }
    seenSet.add(key);
    seen.push(key);
    if (seen.length > 1000) { seenSet.delete(seen.shift()); }
    return true;
  }

  function state(on) {
    var dot = document.getElementById("kefu-live-state");
    if (!dot) { return; }
    dot.classList.toggle("on", on);
    dot.classList.toggle("off", !on);
    dot.title = text(on ? "online" : "offline");
  }

  function toast(message, href, kind) {
    var box = document.getElementById("kefu-toasts");
    if (!box || !message) { return; }
    var item = document.createElement("div");
    item.className = "toast" + (kind ? " toast-" + kind.replace(/[^a-z_-]/g, "") : "");
    var body = document.createElement(href ? "a" : "span");
    body.textContent = message;
    if (href) { body.href = href; }
    item.appendChild(body);
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", text("close"));
    close.textContent = "×";
    close.addEventListener("click", function () { item.remove(); });
    item.appendChild(close);
    box.appendChild(item);
    while (box.children.length > 5) { box.firstElementChild.remove(); }
    setTimeout(function () { item.remove(); }, kind === "sla_breach" ? 30000 : 8000);
  }

  function onEvent(event) {
    if (event.lastEventId) { cursor = event.lastEventId; }
    var item;
    try { item = JSON.parse(event.data); } catch (e) { return; }
    if (!item.key || !remember(item.key)) { return; }
    fire("kefu:event", item);
    fire("kefu:" + item.source, item);
    if (item.ticket_id) { fire("kefu:ticket-" + item.ticket_id, item); }
    var here = ticketId && String(item.ticket_id) === ticketId;
    var byOther = !item.actor_id || String(item.actor_id) !== me;
    if (item.toast || (here && byOther && item.source === "ticket")) {
      toast(item.text, item.ticket_id && !here ? "/tickets/" + item.ticket_id : null, item.kind);
    }
  }

  var presenceText = "";

  function showPresence() {
    var hint = document.querySelector("[data-presence]");
    if (!hint && ticketRoot && presenceText) {
      hint = document.createElement("p");
      hint.className = "collision-hint";
      hint.setAttribute("data-presence", "");
      hint.setAttribute("role", "status");
      ticketRoot.insertBefore(hint, ticketRoot.firstChild);
    }
    if (hint) {
      hint.textContent = presenceText;
      hint.hidden = !presenceText;
    }
  }

  function onPresence(event) {
    var item;
    try { item = JSON.parse(event.data); } catch (e) { return; }
    presenceText = item.text || "";
    showPresence();
    fire("kefu:presence", item);
  }

  function connect() {
    retryTimer = null;
    var query = [];
    if (ticketId) { query.push("ticket=" + encodeURIComponent(ticketId)); }
    if (cursor) { query.push("cursor=" + encodeURIComponent(cursor)); }
    source = new EventSource(data.stream + (query.length ? "?" + query.join("&") : ""));
    ["ticket", "message", "notification"].forEach(function (name) {
      source.addEventListener(name, onEvent);
    });
    source.addEventListener("presence", onPresence);
    source.addEventListener("ready", function (event) {
      if (event.lastEventId) { cursor = event.lastEventId; }
      retryIn = 2000;
      state(true);
    });
    source.addEventListener("resync", function () {
      toast(text("reload"), null, "resync");
      setTimeout(function () { window.location.reload(); }, 1500);
    });
    source.onerror = function () {
      state(false);
      if (source.readyState === EventSource.CLOSED && !retryTimer) {
        // refused (signed out, a proxy error): the browser gives up; try again, slower each time
        retryTimer = setTimeout(connect, retryIn);
        retryIn = Math.min(retryIn * 2, 60000);
      }
    };
  }

  function disconnect() {
    if (source) { source.close(); source = null; }
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
  }

  /* refused actions: the server's typed error, in the agent's language, as a toast ----------- */
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr, message = null;
    try { message = JSON.parse(xhr.responseText).error.message; } catch (e) { message = null; }
    toast(message || text("failed"), null, "error");
  });
  document.addEventListener("htmx:sendError", function () { toast(text("failed"), null, "error"); });

  /* start ------------------------------------------------------------------------------- */
  tick();
  setInterval(tick, 1000);
  document.addEventListener("htmx:afterSwap", tick);
  document.addEventListener("htmx:afterSettle", showPresence);  // a swap may replace the hint
  if (data.stream && window.EventSource) {
    connect();
    window.addEventListener("pagehide", disconnect);  // the collision hint clears at once
    window.addEventListener("pageshow", function (event) {
      if (event.persisted && !source) { connect(); }
    });
  }
})();
