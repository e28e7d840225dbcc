/*
 * Kefu web chat widget. Plain JavaScript, no build step, no dependencies.
 * Embed: <script src="https://gateway/widget.js" data-kefu-token="…" data-kefu-lang="zh|en" defer></script>
 * Protocol: docs/gateway.md ("Widget WebSocket protocol").
 * Message text only ever reaches the page through textContent / text nodes, never innerHTML.
 */
(function () {
  "use strict";

  if (window.KefuWidget) {
    return; // embedded twice: the first copy owns the page
  }

  var MAX_CHARS = 4000;
  var BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 10000];
  var WELCOME_TIMEOUT_MS = 10000; // an open socket without a welcome is treated as dead
  var TYPING_TIMEOUT_MS = 60000; // a lost "typing off" must not leave dots forever
  var RETRY_UNAVAILABLE_MS = 3000; // after an "unavailable" error the queue is tried again
  // a message the server has not confirmed ("received") this long on an open socket is sent
  // again (the same client id: a repeat is harmless), then after twice as long, up to a minute
  var CONFIRM_TIMEOUT_MS = [15000, 30000, 60000];
  var VISITOR_KEY = "kefu.visitor";
  var PENDING_KEY = "kefu.pending";
  var OPEN_KEY = "kefu.open";

  var TEXTS = {
    zh: {
      title: "在线客服",
      launcher: "打开在线客服",
      close: "关闭",
      placeholder: "请输入消息…",
      send: "发送",
      connecting: "连接中…",
      sending: "发送中…",
      received: "已送达",
      failed: "未发送",
      tooLong: "消息太长，最多 4000 个字符，请缩短后再发送。",
      agent: "客服 ",
      typing: "客服正在输入",
      messages: "聊天记录"
    },
    en: {
      title: "Customer service",
      launcher: "Open customer service chat",
      close: "Close",
      placeholder: "Type a message…",
      send: "Send",
      connecting: "Connecting…",
      sending: "Sending…",
      received: "Delivered",
      failed: "Not sent",
      tooLong: "Message too long: at most 4000 characters. Please shorten it.",
      agent: "Agent ",
      typing: "Typing",
      messages: "Conversation"
    }
  };

  // ---- configuration from our own <script> tag -------------------------------------------

  function findScript() {
    var current = document.currentScript;
    if (current && current.src) {
      return current;
    }
    var all = document.getElementsByTagName("script");
    for (var i = all.length - 1; i >= 0; i--) {
      var src = all[i].getAttribute("src") || "";
      if (/widget\.js([?#].*)?$/.test(src)) {
        return all[i];
      }
    }
    return null;
  }

  var script = findScript(); // must run now: currentScript is null inside callbacks

  function attr(name) {
    var value = script ? script.getAttribute(name) : null;
    value = value == null ? "" : String(value).replace(/^\s+|\s+$/g, "");
    // An unreplaced template placeholder means "not set".
    return /^__KEFU_[A-Z_]+__$/.test(value) ? "" : value;
  }

  function pickLanguage() {
    var wanted = attr("data-kefu-lang").toLowerCase();
    if (wanted.indexOf("zh") === 0) return "zh";
    if (wanted.indexOf("en") === 0) return "en";
    var browser = String(navigator.language || "").toLowerCase();
    return browser.indexOf("zh") === 0 ? "zh" : "en";
  }

  var scriptUrl = new URL(script && script.src ? script.src : "widget.js", window.location.href);
  var basePath = scriptUrl.pathname.replace(/[^\/]*$/, ""); // the directory widget.js is served from
  var baseUrl = scriptUrl.origin + basePath;
  var wsUrl = (scriptUrl.protocol === "https:" ? "wss://" : "ws://") + scriptUrl.host + basePath + "ws";
  var token = attr("data-kefu-token") || null;
  var lang = pickLanguage();
  var t = TEXTS[lang];

  // ---- storage (localStorage may be blocked: fall back to memory) ------------------------

  var memory = {};

  function storeGet(store, key) {
    try {
      return window[store].getItem(key);
    } catch (e) {
      return Object.prototype.hasOwnProperty.call(memory, store + key) ? memory[store + key] : null;
    }
  }

  function storeSet(store, key, value) {
    try {
      window[store].setItem(key, value);
    } catch (e) {
      memory[store + key] = value;
    }
  }

  function uuid4() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === "function") {
      try {
        return c.randomUUID();
      } catch (e) { /* not a secure context: fall through */ }
    }
    var b = new Uint8Array(16);
    if (c && typeof c.getRandomValues === "function") {
      c.getRandomValues(b);
    } else {
      for (var i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = [];
    for (var j = 0; j < 16; j++) h.push((b[j] + 0x100).toString(16).slice(1));
    return h.slice(0, 4).join("") + "-" + h.slice(4, 6).join("") + "-" + h.slice(6, 8).join("") +
      "-" + h.slice(8, 10).join("") + "-" + h.slice(10).join("");
  }

  function visitorId() {
    var id = storeGet("localStorage", VISITOR_KEY);
    if (!id || !/^v-[0-9a-f-]{36}$/.test(id)) {
      id = "v-" + uuid4();
      storeSet("localStorage", VISITOR_KEY, id);
    }
    return id;
  }

  // The pending queue lives in localStorage so a reload (or another tab) resends it.
  function loadPending() {
    var list;
    try {
      list = JSON.parse(storeGet("localStorage", PENDING_KEY) || "[]");
    } catch (e) {
      list = [];
    }
    if (!Array.isArray(list)) return [];
    return list.filter(function (p) {
      return p && typeof p.client_id === "string" && typeof p.text === "string";
    });
  }

  function savePending(list) {
    storeSet("localStorage", PENDING_KEY, JSON.stringify(list));
  }

  function addPending(item) {
    var list = loadPending();
    list.push(item);
    savePending(list);
  }

  function dropPending(clientId) {
    savePending(loadPending().filter(function (p) {
      return p.client_id !== clientId;
    }));
  }

  var visitor = visitorId();

  // ---- DOM helpers ------------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function svg(pathData) {
    var ns = "http://www.w3.org/2000/svg";
    var root = document.createElementNS(ns, "svg");
    root.setAttribute("viewBox", "0 0 24 24");
    root.setAttribute("aria-hidden", "true");
    root.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", pathData);
    root.appendChild(path);
    return root;
  }

  var URL_RE = /\bhttps?:\/\/[^\s<>"'，。、；：！？（）【】《》]+/g;

  // Text with http(s) links made clickable, built from text nodes only.
  function fillText(node, text) {
    var last = 0;
    var match;
    URL_RE.lastIndex = 0;
    while ((match = URL_RE.exec(text)) !== null) {
      var url = match[0].replace(/[.,;:!?)\]}]+$/, "");
      if (match.index > last) node.appendChild(document.createTextNode(text.slice(last, match.index)));
      var link = el("a", "kefu-link", url);
      link.href = url;
      link.target = "_blank";
      link.rel = "noopener noreferrer nofollow";
      node.appendChild(link);
      last = match.index + url.length;
      URL_RE.lastIndex = last;
    }
    if (last < text.length) node.appendChild(document.createTextNode(text.slice(last)));
  }

  function formatTime(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    return isNaN(d.getTime()) ? "" : d.toLocaleString(lang === "zh" ? "zh-CN" : "en");
  }

  // ---- the widget's DOM ---------------------------------------------------------------------

  var root, launcher, badge, panel, banner, list, typingEl, form, input, sendBtn;

  function build() {
    root = el("div", "kefu-root");
    if (!document.querySelector("link[data-kefu-css]")) {
      // Hidden until the stylesheet arrives, so the page never shows an unstyled widget.
      root.style.visibility = "hidden";
      var reveal = function () {
        root.style.visibility = "";
      };
      var link = document.createElement("link");
      link.rel = "stylesheet";
      link.href = baseUrl + "widget.css";
      link.setAttribute("data-kefu-css", "");
      link.onload = reveal;
      link.onerror = reveal;
      setTimeout(reveal, 5000);
      (document.head || document.documentElement).appendChild(link);
    }
    root.setAttribute("lang", lang === "zh" ? "zh-CN" : "en");

    launcher = el("button", "kefu-launcher");
    launcher.type = "button";
    launcher.setAttribute("aria-label", t.launcher);
    launcher.title = t.title;
    launcher.appendChild(svg("M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 6a1.2 1.2 0 1 0 0 2.4A1.2 1.2 0 0 0 7 10zm5 0a1.2 1.2 0 1 0 0 2.4 1.2 1.2 0 0 0 0-2.4zm5 0a1.2 1.2 0 1 0 0 2.4 1.2 1.2 0 0 0 0-2.4z"));
    badge = el("span", "kefu-badge");
    badge.hidden = true;
    launcher.appendChild(badge);
    launcher.addEventListener("click", function () {
      if (panel.hidden) open(); else close();
    });

    panel = el("div", "kefu-panel");
    panel.hidden = true;
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", t.title);

    var header = el("div", "kefu-header");
    header.appendChild(el("span", "kefu-title", t.title));
    var closeBtn = el("button", "kefu-close");
    closeBtn.type = "button";
    closeBtn.setAttribute("aria-label", t.close);
    closeBtn.title = t.close;
    closeBtn.appendChild(svg("M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z"));
    closeBtn.addEventListener("click", function () {
      close();
    });
    header.appendChild(closeBtn);

    banner = el("div", "kefu-banner", t.connecting);
    banner.setAttribute("role", "status");

    list = el("div", "kefu-messages");
    list.setAttribute("role", "log");
    list.setAttribute("aria-live", "polite");
    list.setAttribute("aria-label", t.messages);

    typingEl = el("div", "kefu-typing");
    typingEl.setAttribute("data-kind", "typing");
    typingEl.setAttribute("aria-label", t.typing);
    typingEl.hidden = true;
    for (var i = 0; i < 3; i++) typingEl.appendChild(el("span", "kefu-dot"));
    list.appendChild(typingEl);

    form = el("form", "kefu-form");
    form.setAttribute("novalidate", "");
    input = el("textarea", "kefu-input");
    input.rows = 1;
    input.placeholder = t.placeholder;
    input.setAttribute("aria-label", t.placeholder);
    sendBtn = el("button", "kefu-send", t.send);
    sendBtn.type = "submit";
    form.appendChild(input);
    form.appendChild(sendBtn);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      submitInput();
    });
    input.addEventListener("keydown", function (ev) {
      // Enter sends, Shift+Enter breaks the line; Enter that confirms an IME candidate does neither.
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
        ev.preventDefault();
        submitInput();
      }
    });
    input.addEventListener("input", autoSize);
    panel.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape") close();
    });

    panel.appendChild(header);
    panel.appendChild(banner);
    panel.appendChild(list);
    panel.appendChild(form);
    root.appendChild(panel);
    root.appendChild(launcher);
    document.body.appendChild(root);
  }

  function autoSize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 120) + "px";
  }

  function scrollToBottom() {
    list.scrollTop = list.scrollHeight;
  }

  // ---- conversation state -------------------------------------------------------------------

  var ready = false; // the current socket has had its welcome
  var byId = {}; // entry id -> element
  var byClientId = {}; // client id -> own message element
  var lastOutId = null; // newest outgoing entry: the only one whose buttons are live
  var acked = {};
  var unread = 0;
  var systemSeq = 0;
  var typingTimer = null;

  function clearMessages() {
    while (list.firstChild && list.firstChild !== typingEl) list.removeChild(list.firstChild);
    while (typingEl.nextSibling) list.removeChild(typingEl.nextSibling);
    byId = {};
    byClientId = {};
    lastOutId = null;
  }

  function append(node) {
    list.insertBefore(node, typingEl);
    scrollToBottom();
  }

  function setState(node, state) {
    var stateEl = node.querySelector(".kefu-state");
    if (!stateEl) {
      stateEl = el("div", "kefu-state");
      node.appendChild(stateEl);
    }
    stateEl.setAttribute("data-state", state);
    stateEl.textContent = t[state];
  }

  function messageElement(id, direction, kind, text) {
    var node = el("div", "kefu-msg kefu-msg-" + (direction === "in" ? "in" : "out"));
    node.setAttribute("data-id", id);
    node.setAttribute("data-direction", direction);
    node.setAttribute("data-kind", kind);
    var bubble = el("div", "kefu-bubble");
    fillText(bubble, text);
    node.appendChild(bubble);
    return node;
  }

  function renderButtons(node, buttons) {
    var row = el("div", "kefu-buttons");
    buttons.forEach(function (b) {
      if (!b || typeof b.title !== "string") return;
      var button = el("button", "kefu-button", b.title);
      button.type = "button";
      var payload = typeof b.payload === "string" ? b.payload : "";
      button.setAttribute("data-payload", payload);
      button.addEventListener("click", function () {
        if (button.disabled) return;
        node.setAttribute("data-used", ""); // one press per entry: no double sends
        sendMessage(b.title, payload || null);
        refreshButtons();
      });
      row.appendChild(button);
    });
    if (row.firstChild) node.appendChild(row);
  }

  function refreshButtons() {
    var buttons = list.querySelectorAll(".kefu-button");
    for (var i = 0; i < buttons.length; i++) {
      var owner = buttons[i].closest(".kefu-msg");
      buttons[i].disabled = !owner || owner.getAttribute("data-id") !== lastOutId ||
        owner.hasAttribute("data-used");
    }
  }

  // Renders one entry of the protocol (history or live); returns nothing, ignores repeats.
  function addEntry(entry, live) {
    if (!entry || typeof entry.id !== "string") return;
    var text = typeof entry.text === "string" ? entry.text : "";
    var direction = entry.direction === "in" ? "in" : "out";
    var kind = typeof entry.kind === "string" ? entry.kind : (direction === "in" ? "customer" : "bot");
    if (byId[entry.id]) return;
    var clientId = typeof entry.client_id === "string" ? entry.client_id : null;

    if (direction === "in" && clientId && byClientId[clientId]) {
      markReceived(clientId, entry.id); // our own bubble, now stored
      return;
    }

    var node = messageElement(entry.id, direction, kind, text);
    var when = formatTime(entry.at);
    if (when) node.firstChild.title = when;
    if (kind === "agent_reply" && typeof entry.agent === "string" && entry.agent) {
      node.insertBefore(el("div", "kefu-label", t.agent + entry.agent), node.firstChild);
    }
    if (Array.isArray(entry.buttons) && entry.buttons.length) renderButtons(node, entry.buttons);
    if (direction === "in") {
      if (clientId) {
        node.setAttribute("data-client-id", clientId);
        byClientId[clientId] = node;
      }
      setState(node, "received");
    }
    byId[entry.id] = node;
    append(node);

    if (direction === "out") {
      lastOutId = entry.id;
      refreshButtons();
      ack(entry.id);
      if (live && panel.hidden) {
        unread += 1;
        showBadge();
      }
    }
  }

  function appendOwn(item) {
    var node = messageElement(item.client_id, "in", "customer", item.text);
    node.setAttribute("data-client-id", item.client_id);
    setState(node, "sending");
    byClientId[item.client_id] = node;
    append(node);
  }

  function markReceived(clientId, entryId) {
    dropPending(clientId);
    var node = byClientId[clientId];
    if (!node) return;
    if (entryId) {
      node.setAttribute("data-id", entryId);
      byId[entryId] = node;
    }
    setState(node, "received");
  }

  function systemLine(text, code) {
    systemSeq += 1;
    var node = el("div", "kefu-system", text);
    node.setAttribute("data-id", "sys-" + systemSeq);
    node.setAttribute("data-direction", "system");
    node.setAttribute("data-kind", "error");
    if (code) node.setAttribute("data-code", code);
    node.setAttribute("role", "alert");
    append(node);
  }

  function setTyping(on) {
    clearTimeout(typingTimer);
    typingEl.hidden = !on;
    if (on) {
      typingTimer = setTimeout(function () {
        setTyping(false);
      }, TYPING_TIMEOUT_MS);
      scrollToBottom();
    }
  }

  function showBadge() {
    badge.textContent = unread > 99 ? "99+" : String(unread);
    badge.hidden = unread === 0;
  }

  // ---- connection ----------------------------------------------------------------------------

  var ws = null;
  var attempt = 0;
  var reconnectTimer = null;
  var welcomeTimer = null;
  var retryTimer = null;

  function sendFrame(frame) {
    if (!ws || ws.readyState !== 1) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch (e) {
      return false;
    }
  }

  // Sends one queued message and makes sure it is confirmed: a frame lost on a live socket
  // would otherwise leave it "sending" for as long as the page stays open.
  function sendMessageFrame(item) {
    sendFrame(messageFrame(item));
    expectConfirmation();
  }

  var confirmTimer = null;
  var confirmRound = 0;

  function expectConfirmation() {
    if (confirmTimer) return;
    var delay = CONFIRM_TIMEOUT_MS[Math.min(confirmRound, CONFIRM_TIMEOUT_MS.length - 1)];
    confirmTimer = setTimeout(checkConfirmed, delay);
  }

  function checkConfirmed() {
    confirmTimer = null;
    var waiting = loadPending().some(function (item) {
      return stateOf(item.client_id) === "sending";
    });
    if (!waiting) {
      confirmRound = 0;
      return;
    }
    confirmRound += 1;
    if (ready) sendUnconfirmed();
    expectConfirmation();
  }

  function messageFrame(item) {
    var frame = { type: "message", client_id: item.client_id, text: item.text };
    if (item.payload) frame.payload = item.payload;
    return frame;
  }

  function ack(id) {
    if (acked[id]) return;
    if (sendFrame({ type: "ack", id: id })) acked[id] = true;
  }

  function updateBanner() {
    banner.hidden = ready;
    root.setAttribute("data-connected", ready ? "true" : "false");
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    var sock;
    try {
      sock = new WebSocket(wsUrl);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.onopen = function () {
      if (ws !== sock) return;
      sendFrame({ type: "hello", visitor: visitor, token: token, language: lang });
      clearTimeout(welcomeTimer);
      welcomeTimer = setTimeout(function () {
        if (ws === sock && !ready) sock.close();
      }, WELCOME_TIMEOUT_MS);
    };
    sock.onmessage = function (ev) {
      if (ws === sock) onFrame(ev.data);
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null;
      ready = false;
      clearTimeout(welcomeTimer);
      setTyping(false);
      updateBanner();
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    var delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    attempt += 1;
    reconnectTimer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (ws || !reconnectTimer) return;
    attempt = 0;
    connect();
  }

  function onFrame(data) {
    var frame;
    try {
      frame = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    switch (frame.type) {
      case "welcome":
        onWelcome(frame);
        break;
      case "received":
        if (typeof frame.client_id === "string") {
          markReceived(frame.client_id, typeof frame.id === "string" ? frame.id : null);
        }
        break;
      case "typing":
        setTyping(frame.on === true);
        break;
      case "message":
        setTyping(false);
        addEntry(frame, true);
        break;
      case "error":
        onError(frame);
        break;
      default:
        break;
    }
  }

  function onWelcome(frame) {
    ready = true;
    attempt = 0;
    clearTimeout(welcomeTimer);
    var history = Array.isArray(frame.history) ? frame.history : [];
    clearMessages();
    var stored = {};
    history.forEach(function (entry) {
      addEntry(entry, false);
      if (entry && typeof entry.client_id === "string") stored[entry.client_id] = true;
    });
    // Whatever the server has not stored yet is shown again as "sending" and resent once.
    var queue = loadPending().filter(function (p) {
      return !stored[p.client_id];
    });
    savePending(queue);
    queue.forEach(function (item) {
      appendOwn(item);
      sendMessageFrame(item);
    });
    refreshButtons();
    updateBanner();
    scrollToBottom();
  }

  function stateOf(clientId) {
    var node = byClientId[clientId];
    var stateEl = node && node.querySelector(".kefu-state");
    return stateEl ? stateEl.getAttribute("data-state") : null;
  }

  // Resends what is still unconfirmed; the client id makes a repeat harmless.
  function resendPending() {
    retryTimer = null;
    if (!ready) return; // the next welcome resends anyway
    sendUnconfirmed();
  }

  function sendUnconfirmed() {
    loadPending().forEach(function (item) {
      if (stateOf(item.client_id) === "sending") sendMessageFrame(item);
    });
  }

  function onError(frame) {
    var text = typeof frame.text === "string" && frame.text ? frame.text : String(frame.code || "error");
    var code = typeof frame.code === "string" ? frame.code : null;
    var clientId = typeof frame.client_id === "string" ? frame.client_id : null;
    if (clientId && byClientId[clientId]) {
      if (code === "unavailable") {
        // The service is down for a moment: keep the message queued and try again.
        if (!retryTimer) retryTimer = setTimeout(resendPending, RETRY_UNAVAILABLE_MS);
      } else if (stateOf(clientId) !== "received") {
        dropPending(clientId); // refused for good: a resend would be refused again
        setState(byClientId[clientId], "failed");
      }
      // A message that was stored and then refused an answer (rate_limited) stays "received".
    }
    systemLine(text, code);
  }

  // ---- sending -------------------------------------------------------------------------------

  // Queues and (when connected) sends one message; returns its client id, or null if refused.
  function sendMessage(text, payload) {
    text = String(text == null ? "" : text).replace(/^\s+|\s+$/g, "");
    if (!text) return null;
    if (Array.from(text).length > MAX_CHARS) {
      systemLine(t.tooLong, "too_long");
      return null;
    }
    var item = { client_id: "m-" + uuid4(), text: text };
    if (payload) item.payload = payload;
    addPending(item);
    appendOwn(item);
    if (ready) sendMessageFrame(item);
    return item.client_id;
  }

  function submitInput() {
    if (sendMessage(input.value) !== null) {
      input.value = "";
      autoSize();
    }
    input.focus();
  }

  // ---- open / close ----------------------------------------------------------------------------

  function open() {
    panel.hidden = false;
    root.classList.add("kefu-is-open");
    unread = 0;
    showBadge();
    storeSet("sessionStorage", OPEN_KEY, "1");
    scrollToBottom();
    try {
      input.focus({ preventScroll: true });
    } catch (e) {
      input.focus();
    }
  }

  function close() {
    panel.hidden = true;
    root.classList.remove("kefu-is-open");
    storeSet("sessionStorage", OPEN_KEY, "0");
    launcher.focus();
  }

  function start() {
    build();
    updateBanner();
    loadPending().forEach(appendOwn); // unsent messages show before any connection
    if (storeGet("sessionStorage", OPEN_KEY) === "1") open();
    window.addEventListener("online", reconnectNow);
    connect();
  }

  window.KefuWidget = {
    open: function () {
      if (panel) open();
    },
    close: function () {
      if (panel) close();
    },
    send: function (text) {
      return panel ? sendMessage(text) : null;
    }
  };

  if (document.body) {
    start();
  } else {
    document.addEventListener("DOMContentLoaded", start);
  }
})();
