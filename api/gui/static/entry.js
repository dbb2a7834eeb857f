// Patrol web GUI: one app's or service's page. The server renders it in
// full; this script keeps it live (the page's live part refetched,
// throttled, on the entry's events, pings included), sends the action form
// with fetch (it works without this script too), and runs the log viewer
// through /api/logs, following it live, with a search that highlights.
"use strict";

(function () {
  const P = window.Patrol;
  const root = document.getElementById("entry");
  if (!root) return;
  const group = root.dataset.group;
  const id = root.dataset.id;
  const protectedEntry = root.dataset.secret === "true";
  const SECRET_KEY = "patrol-secret:" + group + "/" + id;
  const MAX_LINES = 5000;

  const secretInput = document.getElementById("secret");
  if (secretInput) {
    secretInput.value = P.getStored(SECRET_KEY);
    secretInput.addEventListener("change", function () {
      P.setStored(SECRET_KEY, secretInput.value);
    });
  }
  function secret() {
    return secretInput ? secretInput.value : "";
  }
  // The form's token field is for use without JavaScript: the token box
  // keeps it for the tab instead.
  for (const f of document.querySelectorAll(".nojs-token")) f.hidden = true;

  // After each swap the form acts on what the page now shows.
  function sync() {
    const st = document.getElementById("entry-state");
    if (!st) return;
    const digest = document.getElementById("digest");
    if (digest) digest.value = st.dataset.digest || "";
    const restart = document.getElementById("restart-button");
    if (restart) restart.hidden = st.dataset.disabled === "true";
  }
  const refresh = P.refresher(300);
  new MutationObserver(sync).observe(document.getElementById("live"), { childList: true, subtree: true });

  setInterval(P.tick, 1000);
  // Usage (the sparklines) moves without events: refresh now and then
  // while the page is seen.
  setInterval(function () {
    if (!document.hidden) refresh();
  }, 5000);

  const actions = document.getElementById("actions");
  if (actions) {
    actions.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const b = ev.submitter;
      if (protectedEntry && !secret()) {
        P.message("This " + group + " is protected: enter its secret first.", "error");
        secretInput.focus();
        return;
      }
      if (secretInput) P.setStored(SECRET_KEY, secret());
      const sent = P.submit(actions, b); // reads the form before the button is disabled
      if (b) b.disabled = true;
      P.message((b ? b.textContent : "Change") + "…", "");
      try {
        await sent;
      } finally {
        if (b) b.disabled = false;
        refresh();
      }
    });
  }

  P.events("?group=" + encodeURIComponent(group) + "&id=" + encodeURIComponent(id) + "&pings=1", refresh, refresh);

  // The log viewer (apps only).
  const logEl = document.getElementById("log");
  if (!logEl) return;
  const logForm = document.getElementById("log-form");
  const followBox = document.getElementById("log-follow");
  const status = document.getElementById("log-status");
  let lines = []; // complete lines shown, at most MAX_LINES
  let partial = ""; // an unfinished last line
  let dirty = false;
  let current = null; // the AbortController of the running request
  let generation = 0;

  const search = document.getElementById("log-search");

  // paint shows the lines, with what the search box holds highlighted
  // (case-insensitive, as typed: no pattern syntax).
  function paint() {
    dirty = false;
    const atBottom = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 4;
    const text = lines.join("\n") + (lines.length ? "\n" : "") + partial;
    const needle = search ? search.value : "";
    let found = 0;
    if (!needle) {
      logEl.textContent = text;
    } else {
      const frag = document.createDocumentFragment();
      const hay = text.toLowerCase();
      const low = needle.toLowerCase();
      let at = 0;
      for (let i = hay.indexOf(low); i >= 0; i = hay.indexOf(low, i + low.length)) {
        if (i > at) frag.append(text.slice(at, i));
        frag.append(P.el("mark", { text: text.slice(i, i + low.length) }));
        at = i + low.length;
        found++;
      }
      frag.append(text.slice(at));
      logEl.replaceChildren(frag);
    }
    if (search) logEl.dataset.matches = String(found);
    if (needle && found > 0 && !atBottom) {
      const m = logEl.querySelector("mark");
      if (m) m.scrollIntoView({ block: "nearest" });
    } else if (atBottom) {
      logEl.scrollTop = logEl.scrollHeight;
    }
  }

  function add(text) {
    const parts = (partial + text).split("\n");
    partial = parts.pop();
    for (const l of parts) lines.push(l);
    if (lines.length > MAX_LINES) lines = lines.slice(lines.length - MAX_LINES);
    if (partial.length > 1 << 20) {
      lines.push(partial);
      partial = "";
    }
    if (!dirty) {
      dirty = true;
      requestAnimationFrame(paint);
    }
  }

  async function load() {
    if (current) current.abort();
    const gen = ++generation;
    const ctl = new AbortController();
    current = ctl;
    lines = [];
    partial = "";
    paint();
    const follow = followBox.checked;
    const tail = Math.min(10000, Math.max(0, Number(document.getElementById("log-tail").value) || 0));
    let url = "/api/logs?id=" + encodeURIComponent(id) + "&stream=" + encodeURIComponent(document.getElementById("log-stream").value) + "&tail=" + tail;
    if (follow) url += "&follow=1";
    if (secret()) url += "&secret=" + encodeURIComponent(secret());
    P.setText(status, follow ? "following…" : "loading…");
    const headers = {};
    const token = P.getStored("patrol-token");
    if (token) headers["Authorization"] = "Bearer " + token;
    let res;
    try {
      res = await fetch(url, { signal: ctl.signal, cache: "no-store", headers });
    } catch (err) {
      if (gen === generation) P.setText(status, err.name === "AbortError" ? "stopped" : "failed: " + err.message);
      return;
    }
    if (!res.ok) {
      let msg = "HTTP " + res.status;
      try {
        msg = (await res.json()).errors.join("; ");
      } catch (err) { /* not the API's JSON */ }
      if (gen === generation) P.setText(status, msg);
      return;
    }
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        add(dec.decode(value, { stream: true }));
        if (follow && gen === generation) P.setText(status, "following (" + lines.length + " lines)");
      }
      add(dec.decode());
      if (gen === generation) P.setText(status, follow ? "the stream ended; retrying in 2 s" : lines.length + " lines");
      if (follow && gen === generation && followBox.checked) setTimeout(function () {
        if (gen === generation && followBox.checked) load();
      }, 2000);
    } catch (err) {
      if (gen === generation) P.setText(status, err.name === "AbortError" ? "stopped" : "failed: " + err.message);
    }
  }

  logForm.addEventListener("submit", function (e) {
    e.preventDefault();
    load();
  });
  followBox.addEventListener("change", load);
  if (search) search.addEventListener("input", function () {
    if (!dirty) {
      dirty = true;
      requestAnimationFrame(paint);
    }
    P.setText(status, search.value ? "highlighting “" + search.value + "”" : lines.length + " lines");
  });
  document.getElementById("log-stream").addEventListener("change", load);
  window.addEventListener("pagehide", function () {
    if (current) current.abort();
  });
  load();
})();
