// berth's dashboard: actions through berth's API with the page's CSRF token, and the
// page's main part kept current over server-sent events. Plain JavaScript, no build.
"use strict";
(() => {
  const meta = (name) => {
    const m = document.querySelector(`meta[name="${name}"]`);
    return m ? m.content : "";
  };
  const base = meta("berth-base");
  const csrf = meta("berth-csrf");
  const flash = (text, bad) => {
    const f = document.getElementById("flash");
    if (!f) return;
    f.textContent = text;
    f.className = bad ? "bad" : "ok";
  };

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-path]");
    if (!button) return;
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    let body = button.dataset.body || "{}";
    if (button.dataset.prompt) {
      const number = button.dataset.promptNumber;
      const text = window.prompt(button.dataset.prompt, number === undefined ? "" : number);
      if (text === null) return;
      let value = text;
      if (number !== undefined) {
        // A number, or nothing for the default; anything else is not sent.
        value = text.trim() === "" ? null : Number(text.trim());
        if (value !== null && !Number.isInteger(value)) {
          flash(`${button.textContent}: ${JSON.stringify(text)} is not a whole number`, true);
          return;
        }
      }
      body = JSON.stringify({ [button.dataset.promptField || "message"]: value });
    }
    const label = button.textContent;
    button.disabled = true;
    try {
      const method = button.dataset.method || "POST";
      const response = await fetch(base + button.dataset.path, {
        method,
        credentials: "same-origin",
        headers: { "content-type": "application/json", "x-berth-csrf": csrf },
        body: method === "DELETE" ? undefined : body,
      });
      let message = `${label}: ${response.ok ? "done" : "failed (" + response.status + ")"}`;
      try {
        const answer = await response.json();
        // An action on a filter says what it did.
        if (response.ok && answer && typeof answer.matched === "number") {
          message = `${label}: ${answer.done} done, ${answer.skipped} skipped` +
            (answer.more ? " (more remain: run it again)" : "");
        }
        // berth's API says {"error": {"code", "message"}}; the gateway {"error", "message"}.
        const error = answer && answer.error;
        if (!response.ok && error) message = `${label}: ${error.message || answer.message || error}`;
      } catch (_) {
        // Not JSON: the status says enough.
      }
      flash(message, !response.ok);
    } catch (err) {
      flash(`${label}: ${err}`, true);
    } finally {
      button.disabled = false;
    }
  });

  const main = document.getElementById("main");
  if (main && main.dataset.view && window.EventSource) {
    const live = new EventSource(`${base}/live?view=${encodeURIComponent(main.dataset.view)}`);
    live.addEventListener("page", (event) => {
      main.innerHTML = event.data;
      document.body.dataset.updated = String(Date.now());
      const log = document.getElementById("log");
      if (log) log.scrollTop = log.scrollHeight;
    });
    live.addEventListener("open", () => document.body.classList.remove("offline"));
    live.addEventListener("error", () => document.body.classList.add("offline"));
    window.addEventListener("beforeunload", () => live.close());
  }
  const log = document.getElementById("log");
  if (log) log.scrollTop = log.scrollHeight;
})();
