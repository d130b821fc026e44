// Joyce's single-page app: a chat view at / and an about view at /about, switched
// in the browser (history.pushState). The server answers every unknown path with
// index.html (spa = true in berth.toml), so /about also loads when typed in.

const views = { "/": "chat-view", "/about": "about-view" };

function show(path) {
  const id = views[path] || "chat-view";
  for (const v of Object.values(views)) document.getElementById(v).hidden = v !== id;
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.route === (views[path] ? path : "/"));
  }
}

for (const a of document.querySelectorAll("nav a")) {
  a.addEventListener("click", (e) => {
    e.preventDefault();
    history.pushState({}, "", a.dataset.route);
    show(a.dataset.route);
  });
}
window.addEventListener("popstate", () => show(location.pathname));
show(location.pathname);

function say(who, text, note) {
  const li = document.createElement("li");
  li.className = who;
  li.textContent = text;
  if (note) {
    const small = document.createElement("small");
    small.textContent = note;
    li.appendChild(small);
  }
  document.getElementById("log").appendChild(li);
  return li;
}

async function hello() {
  const status = document.getElementById("status");
  try {
    const r = await fetch("/api/hello");
    const body = await r.json();
    if (r.ok) {
      status.textContent = `Online (answered by instance ${body.instance}, pid ${body.pid})`;
    } else {
      status.textContent = body.message || `Offline (${r.status})`;
    }
  } catch (e) {
    status.textContent = "Offline: " + e;
  }
}

document.getElementById("ask").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = document.getElementById("question");
  const question = input.value.trim();
  if (!question) return;
  input.value = "";
  say("you", question);
  try {
    const r = await fetch("/api/ask", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ question }),
    });
    const body = await r.json();
    if (r.status === 402) {
      // berth's budget answer: {"error": "budget_exhausted", "message": …, "resets_at": …}
      say("blocked", "Joyce has used up this month's budget and is taking a break.",
          `resets at ${body.resets_at}`);
    } else if (!r.ok) {
      say("blocked", body.message || body.error || `error ${r.status}`);
    } else {
      say("joyce", body.answer, `instance ${body.instance} · pid ${body.pid}`);
    }
  } catch (err) {
    say("blocked", "Joyce cannot be reached: " + err);
  }
});

hello();
