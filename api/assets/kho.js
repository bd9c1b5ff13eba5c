// kho's one script: keeps the dashboard's panels live and prints. No framework, no inline
// handlers (the Content-Security-Policy forbids them); the page works without it.
"use strict";

(function () {
  const panels = document.getElementById("panels");
  if (panels && panels.dataset.live) {
    let etag = panels.dataset.etag || "";
    let busy = false;
    const every = 3000;
    async function poll() {
      if (busy || document.hidden) return;
      busy = true;
      try {
        const resp = await fetch(panels.dataset.live, {
          credentials: "same-origin",
          headers: etag ? { "If-None-Match": etag } : {},
          cache: "no-store",
        });
        if (resp.status === 200) {
          const html = await resp.text();
          // Keep the keyboard focus where it was when the panels are replaced.
          const focused = document.activeElement && document.activeElement.id;
          panels.innerHTML = html;
          etag = resp.headers.get("ETag") || "";
          panels.dataset.etag = etag;
          panels.dataset.updatedAt = String(Date.now());
          if (focused) {
            const again = document.getElementById(focused);
            if (again) again.focus();
          }
        } else if (resp.status === 401) {
          window.location.assign("/signin?next=" + encodeURIComponent(location.pathname + location.search));
        }
      } catch (e) {
        // The server is restarting or the network is down: try again at the next tick.
      } finally {
        busy = false;
      }
    }
    window.setInterval(poll, every);
    document.addEventListener("visibilitychange", poll);
  }
  const print = document.getElementById("print");
  if (print) print.addEventListener("click", () => window.print());
})();
