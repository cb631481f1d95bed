// The dashboard's only script: live updates (server-sent events), actions without a page
// reload, the contract's validation messages beside their fields, and expiry countdowns.
"use strict";
(() => {
  const body = document.body;
  const kind = body.dataset.kind;
  if (!kind) return; // the sign-in page: plain forms
  const sections = document.getElementById("sections");
  const flash = document.getElementById("flash");
  const liveState = document.getElementById("live-state");
  const log = document.getElementById("events");
  let lastId = body.dataset.cursor || "";
  let source = null;
  let refreshing = null;
  let again = false;
  let timer = null;

  // --- re-read the sections as this user (focus kept on the same control) ---
  async function refresh() {
    if (refreshing) { again = true; return refreshing; }
    refreshing = (async () => {
      do {
        again = false;
        const response = await fetch("/dashboard/sections", { headers: { Accept: "text/html" } });
        if (response.redirected) { location.href = response.url; return; } // signed out
        if (!response.ok) break;
        const html = await response.text();
        const focused = document.activeElement && sections.contains(document.activeElement)
          ? document.activeElement.id : "";
        sections.innerHTML = html;
        if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
        tick();
      } while (again);
    })().catch(() => {}).finally(() => { refreshing = null; });
    return refreshing;
  }
  function soon() { clearTimeout(timer); timer = setTimeout(refresh, 80); }

  // --- the event stream: resumes after the last event seen ---
  function note(text) {
    const item = document.createElement("li");
    item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
    log.prepend(item);
    while (log.children.length > 12) log.lastChild.remove();
  }
  function connect() {
    if (source) source.close();
    source = new EventSource(`/dashboard/events?after=${encodeURIComponent(lastId)}`);
    source.onopen = () => { liveState.textContent = "Live: up to date"; liveState.dataset.state = "open"; };
    source.onerror = () => { liveState.textContent = "Reconnecting…"; liveState.dataset.state = "reconnecting"; };
    source.onmessage = (e) => {
      if (e.lastEventId) lastId = e.lastEventId;
      const ev = JSON.parse(e.data);
      note(`${ev.event.replaceAll("_", " ")} (${ev.session_type || "-"})`);
      soon();
    };
    source.addEventListener("resync", (e) => {
      const cursor = JSON.parse(e.data).cursor;
      if (cursor) lastId = cursor; // the events after it follow on this stream
      note("caught up: reloading the lists");
      soon();
    });
  }
  function disconnect() { if (source) source.close(); source = null; liveState.dataset.state = "closed"; }

  // --- actions ---
  function show(message, ok) {
    flash.textContent = message;
    flash.dataset.kind = ok ? "ok" : "error";
  }
  function clearErrors(form) {
    form.querySelectorAll(".error").forEach((p) => { p.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  }
  function newKey(form) {
    const key = form.querySelector("input[name=idempotency_key]");
    if (key) key.value = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
  }
  document.querySelectorAll("form#new-form, form#intake-form").forEach((form) => {
    const key = document.createElement("input");
    key.type = "hidden"; key.name = "idempotency_key";
    form.append(key); newKey(form);
  });
  document.addEventListener("submit", async (e) => {
    const form = e.target;
    if (!form.classList || !form.classList.contains("js-action")) return;
    e.preventDefault();
    const data = new URLSearchParams(new FormData(form));
    if (e.submitter && e.submitter.name) data.set(e.submitter.name, e.submitter.value);
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    clearErrors(form);
    try {
      const response = await fetch(form.action, {
        method: "POST", body: data,
        headers: { Accept: "application/json" },
      });
      const answer = await response.json().catch(() => ({ message: `HTTP ${response.status}` }));
      if (response.ok && answer.ok) {
        show(answer.message, true);
        if (form.id === "new-form" || form.id === "intake-form") { form.reset(); newKey(form); }
      } else {
        const slot = answer.field && form.querySelector(`.error[data-field="${answer.field}"]`);
        const text = answer.hint ? `${answer.message} ${answer.hint}` : answer.message;
        if (slot) {
          slot.textContent = text;
          const input = form.querySelector(`[name="${answer.field}"]`);
          if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
          show("Please correct the highlighted field.", false);
        } else {
          show(text || "Something went wrong.", false);
        }
      }
    } catch (err) {
      show("The server could not be reached; try again.", false);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
    soon();
  });

  // --- countdowns ---
  function tick() {
    const now = Date.now();
    document.querySelectorAll("time.countdown").forEach((t) => {
      const s = Math.floor((Date.parse(t.getAttribute("datetime")) - now) / 1000);
      if (s <= 0) { t.textContent = "expired"; return; }
      const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
      t.textContent = `${h} h ${String(m).padStart(2, "0")} min ${String(s % 60).padStart(2, "0")} s left`;
    });
  }
  setInterval(tick, 1000);

  window.autodoctorDashboard = { connect, disconnect, refresh, get lastId() { return lastId; } };
  connect();
})();
