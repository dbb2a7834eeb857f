// Patrol web GUI: helpers shared by every page (window.Patrol).
// Plain JavaScript, no build step, no external code.
"use strict";

(function () {
  const P = {};
  window.Patrol = P;

  const TOKEN_KEY = "patrol-token";

  function storage() {
    try {
      return window.sessionStorage;
    } catch (e) {
      return null; // storage disabled: nothing is remembered
    }
  }

  P.getStored = function (key) {
    const s = storage();
    return (s && s.getItem(key)) || "";
  };

  P.setStored = function (key, value) {
    const s = storage();
    if (!s) return;
    if (value) s.setItem(key, value);
    else s.removeItem(key);
  };

  // el creates an element with attributes (class, text, and any other
  // attribute) and children.
  P.el = function (tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c !== null && c !== undefined) e.append(c);
    }
    return e;
  };

  // setText changes an element's text only when it differs, so that
  // unchanged cells cost no layout.
  P.setText = function (e, text) {
    text = text === undefined || text === null || text === "" ? "-" : String(text);
    if (e.textContent !== text) e.textContent = text;
  };

  // parseTime reads a timestamp in the daemon's json-timestamp layout
  // (RFC1123Z by default, RFC3339 often); NaN when the browser cannot.
  P.parseTime = function (s) {
    if (!s) return NaN;
    return Date.parse(s);
  };

  // duration formats milliseconds as "3d 4h", "2h 5m", "5m 12s" or "12s".
  P.duration = function (ms) {
    if (!isFinite(ms) || ms < 0) return "-";
    let s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400);
    s -= d * 86400;
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const m = Math.floor(s / 60);
    s -= m * 60;
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + s + "s";
    return s + "s";
  };

  // uptime is the time since started, or "-".
  P.uptime = function (started, now) {
    const t = P.parseTime(started);
    if (isNaN(t)) return "-";
    return P.duration((now || Date.now()) - t);
  };

  // conn shows the live connection's state in the header.
  P.conn = function (text, kind) {
    const c = document.getElementById("conn");
    if (!c) return;
    P.setText(c, text);
    c.className = "conn " + (kind || "");
  };

  // message shows the result of an action in the page's message area.
  P.message = function (text, kind) {
    const m = document.getElementById("message");
    if (!m) return;
    m.textContent = text || "";
    m.className = "message " + (kind || "");
    if (kind === "error") m.setAttribute("role", "alert");
    else m.setAttribute("role", "status");
  };

  // request sends one API request with the stored token and returns
  // {status, ok, json, text, errors}. A 401 opens the token box.
  P.request = async function (method, url, body, opts) {
    const headers = {};
    const token = P.getStored(TOKEN_KEY);
    if (token) headers["Authorization"] = "Bearer " + token;
    let payload;
    if (body !== undefined) {
      if (typeof body === "string") {
        payload = body;
        headers["Content-Type"] = "application/json";
      } else {
        payload = JSON.stringify(body);
        headers["Content-Type"] = "application/json";
      }
    }
    const out = { status: 0, ok: false, json: null, text: "", errors: [] };
    let res;
    try {
      res = await fetch(url, {
        method, headers, body: payload, credentials: "same-origin", cache: "no-store",
        signal: opts && opts.signal,
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      out.errors = ["Patrol did not answer (" + err.message + ")"];
      return out;
    }
    out.status = res.status;
    out.ok = res.ok;
    out.text = await res.text();
    if ((res.headers.get("Content-Type") || "").startsWith("application/json")) {
      try {
        out.json = JSON.parse(out.text);
      } catch (err) {
        out.json = null;
      }
    }
    if (!res.ok) {
      out.errors = (out.json && out.json.errors) || ["HTTP " + res.status + " " + out.text.slice(0, 200)];
      if (res.status === 401) P.showToken(true);
    }
    return out;
  };

  // tick updates every ticking time on the page (.tick[data-since]: an
  // uptime) without a request.
  P.tick = function () {
    if (document.hidden) return;
    const now = Date.now();
    for (const e of document.querySelectorAll(".tick[data-since]")) {
      const t = P.uptime(e.dataset.since, now);
      if (t !== "-" && e.textContent !== t) e.textContent = t;
    }
  };

  // focusKey names the focused element so that it can be found again in
  // a part of the page that was replaced.
  function focusKey() {
    const a = document.activeElement;
    if (!a || a === document.body) return null;
    if (a.id) return "#" + CSS.escape(a.id);
    const label = a.getAttribute("aria-label");
    if (label) return a.tagName.toLowerCase() + '[aria-label="' + CSS.escape(label) + '"]';
    return null;
  }

  function keys(el) {
    return Array.from(el.querySelectorAll("[data-key]"), (r) => r.dataset.key);
  }

  // swap brings the page's live part (#live) up to date with html, the
  // same part freshly rendered by the server (?fragment=live): each part
  // (an element with an id at its top level) whose data-sig changed is
  // replaced; in a part whose rows (data-key) are the same and in the same
  // order, only the rows whose data-sig changed are. The server renders
  // everything: this only picks what to replace.
  P.swap = function (html) {
    const live = document.getElementById("live");
    if (!live) return;
    const doc = new DOMParser().parseFromString(html, "text/html");
    const focus = focusKey();
    const seen = new Set();
    for (const n of Array.from(doc.body.children)) {
      if (!n.id) continue;
      seen.add(n.id);
      const old = document.getElementById(n.id);
      if (!old) {
        live.append(document.adoptNode(n));
        continue;
      }
      const sameRows = old.dataset.sig === n.dataset.sig && keys(old).join("\n") === keys(n).join("\n");
      if (!sameRows) {
        old.replaceWith(document.adoptNode(n));
        continue;
      }
      const rows = new Map(Array.from(old.querySelectorAll("[data-key]"), (r) => [r.dataset.key, r]));
      for (const r of Array.from(n.querySelectorAll("[data-key]"))) {
        const o = rows.get(r.dataset.key);
        if (o && o.dataset.sig !== r.dataset.sig) o.replaceWith(document.adoptNode(r));
      }
    }
    for (const c of Array.from(live.children)) {
      if (c.id && !seen.has(c.id)) c.remove();
    }
    if (focus && (!document.activeElement || document.activeElement === document.body)) {
      const f = document.querySelector(focus);
      if (f) f.focus();
    }
    P.tick();
  };

  // refresher returns a throttled function that refetches the page's live
  // part and swaps it in.
  P.refresher = function (gap) {
    return P.throttle(async function () {
      const u = new URL(window.location.href);
      u.searchParams.delete("flash");
      u.searchParams.set("fragment", "live");
      const r = await P.request("GET", u.pathname + u.search);
      if (r.ok) {
        P.swap(r.text);
        document.body.dataset.rendered = String(Date.now());
      } else {
        P.conn(r.errors.join("; "), "bad");
      }
    }, gap);
  };

  // submit sends a GUI form (POST /gui/toggle) as the page would without
  // JavaScript, with the stored token, and shows the answer; it returns
  // the answer ({ok, changed, text}). It reads the form at once, before
  // its first await.
  P.submit = async function (form, submitter) {
    const body = new URLSearchParams(new FormData(form, submitter));
    const headers = { Accept: "application/json", "Content-Type": "application/x-www-form-urlencoded" };
    const token = P.getStored(TOKEN_KEY);
    if (token) headers["Authorization"] = "Bearer " + token;
    let out = { ok: false, text: "" };
    try {
      const res = await fetch(form.getAttribute("action"), { method: "POST", body, headers, credentials: "same-origin", cache: "no-store" });
      const ctype = res.headers.get("Content-Type") || "";
      if (ctype.startsWith("application/json")) {
        out = await res.json();
      } else {
        out.text = res.status === 403 ? "This page is stale (Patrol restarted?): reload it." : "HTTP " + res.status;
      }
    } catch (err) {
      out.text = "Patrol did not answer (" + err.message + ")";
    }
    if (out.token) P.showToken(true);
    P.message(out.text, out.ok ? "ok" : "error");
    return out;
  };

  // Throttle runs fn at most once per gap milliseconds and never twice at
  // once; calls in between are coalesced into one later run.
  P.throttle = function (fn, gap) {
    let timer = null, running = false, again = false, last = 0;
    async function run() {
      timer = null;
      if (running) {
        again = true;
        return;
      }
      running = true;
      last = Date.now();
      try {
        await fn();
      } finally {
        running = false;
        if (again) {
          again = false;
          schedule();
        }
      }
    }
    function schedule() {
      if (running) {
        again = true;
        return;
      }
      if (timer !== null) return;
      timer = setTimeout(run, Math.max(0, last + gap - Date.now()));
    }
    return schedule;
  };

  // events follows GET /api/events (query: "?id=..." etc.): onEvent gets
  // each event, onOpen each (re)connection, after which the page reloads
  // what it shows since events may have been missed. EventSource retries
  // by itself; a stream that failed for good is reopened after 2 s.
  P.events = function (query, onEvent, onOpen) {
    let es = null;
    function connect() {
      let url = "/api/events" + (query || "");
      const token = P.getStored(TOKEN_KEY);
      if (token) url += (url.indexOf("?") < 0 ? "?" : "&") + "access_token=" + encodeURIComponent(token);
      es = new EventSource(url);
      es.onopen = function () {
        P.conn("live", "ok");
        onOpen();
      };
      es.onmessage = function (m) {
        let ev;
        try {
          ev = JSON.parse(m.data);
        } catch (err) {
          return;
        }
        onEvent(ev);
      };
      es.onerror = function () {
        P.conn("reconnecting…", "bad");
        if (es.readyState === EventSource.CLOSED) {
          setTimeout(connect, 2000);
        }
      };
    }
    P.conn("connecting…", "");
    connect();
    window.addEventListener("pagehide", function () {
      if (es) es.close();
    });
  };

  // The token box: shown on a 401 or from the footer's button.
  P.showToken = function (focus) {
    const box = document.getElementById("token-box");
    if (!box) return;
    box.hidden = false;
    if (focus) document.getElementById("token-input").focus();
  };

  document.addEventListener("DOMContentLoaded", function () {
    const form = document.getElementById("token-form");
    if (!form) return;
    const input = document.getElementById("token-input");
    input.value = P.getStored(TOKEN_KEY);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      P.setStored(TOKEN_KEY, input.value.trim());
      document.getElementById("token-box").hidden = true;
      P.message("Token saved for this tab; try the action again.", "ok");
    });
    document.getElementById("token-forget").addEventListener("click", function () {
      input.value = "";
      P.setStored(TOKEN_KEY, "");
    });
    document.getElementById("token-show").addEventListener("click", function () {
      P.showToken(true);
    });
  });
})();
