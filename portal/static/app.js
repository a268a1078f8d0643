// Small page behaviours: toasts from HX-Trigger, confirmations, copy buttons, close buttons.
(function () {
  "use strict";

  function showToast(message, level) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var el = document.createElement("div");
    el.className = "toast toast-" + (level || "success");
    el.setAttribute("role", "status");
    el.textContent = message;
    box.appendChild(el);
    setTimeout(function () { el.remove(); }, 4000);
  }
  window.portalToast = showToast;

  document.addEventListener("toast", function (evt) {
    var d = evt.detail || {};
    showToast(d.message || d.value || "", d.level);
  });

  // A refused request (403/409/5xx) is not swapped; say so instead of doing nothing.
  document.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail.xhr;
    if (xhr.getResponseHeader("HX-Trigger")) return;
    var text = "操作失败（" + xhr.status + "）";
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var msg = doc.querySelector(".alert, .error-page p");
      if (msg && msg.textContent.trim()) text = msg.textContent.trim();
    } catch (e) { /* keep the generic text */ }
    showToast(text, "error");
  });
  // A table body that gains a row (a created row swapped in with afterbegin/beforeend) drops
  // its "nothing here yet" placeholder row; the server cannot know whether the page shows one.
  document.addEventListener("htmx:afterSwap", function (evt) {
    var body = evt.detail.target;
    if (!body || body.tagName !== "TBODY") return;
    var empty = body.querySelector(":scope > tr.empty");
    if (empty && body.querySelector(":scope > tr:not(.empty)")) empty.remove();
  });
  // A result that a new request will replace (a connection test's ✔/✘) goes away when that
  // request starts, so an old "连接成功" never stands beside a test still running.
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var host = evt.detail.elt && evt.detail.elt.closest && evt.detail.elt.closest("[data-clear-on-request]");
    var stale = host && document.querySelector(host.getAttribute("data-clear-on-request"));
    if (stale) stale.innerHTML = "";
  });
  document.addEventListener("htmx:sendError", function () {
    showToast("网络连接失败，请检查网络后重试。", "error");
  });

  // Confirmations live in data-confirm (escaped like any attribute), never in inline handlers:
  // the page's CSP forbids those. Capture phase, so it runs before htmx or the browser submits.
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    var message = form && form.getAttribute && form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      evt.preventDefault();
      evt.stopImmediatePropagation();
    }
  }, true);

  // A swapped-in form that names a field in data-select-after-settle gets it focused and
  // selected, so the next barcode scan replaces the previous number.
  document.addEventListener("htmx:afterSettle", function (evt) {
    var host = evt.target && evt.target.closest && evt.target.closest("[data-select-after-settle]");
    if (!host) return;
    var input = host.querySelector(host.getAttribute("data-select-after-settle"));
    if (input) { input.focus(); input.select(); }
  });

  document.addEventListener("click", function (evt) {
    var copy = evt.target.closest("[data-copy]");
    if (copy) {
      var src = document.querySelector(copy.getAttribute("data-copy"));
      var text = src ? (src.value !== undefined && src.tagName === "INPUT" ? src.value : src.textContent) : "";
      var done = function () { copy.textContent = "已复制"; setTimeout(function () { copy.textContent = copy.dataset.label || "复制"; }, 1500); };
      copy.dataset.label = copy.dataset.label || copy.textContent;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
      } else { fallbackCopy(text); done(); }
      return;
    }
    // On a phone the menu folds behind one button (app.css); it opens the nav and the user box.
    var toggle = evt.target.closest("[data-nav-toggle]");
    if (toggle) {
      var bar = toggle.closest(".topbar");
      var open = bar.classList.toggle("nav-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      return;
    }
    var close = evt.target.closest("[data-close]");
    if (close) {
      var panel = document.querySelector(close.getAttribute("data-close"));
      if (panel) panel.innerHTML = "";
    }
  });

  function fallbackCopy(text) {
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.style.position = "fixed"; ta.style.opacity = "0";
    document.body.appendChild(ta);
    ta.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing else to try */ }
    ta.remove();
  }
})();
