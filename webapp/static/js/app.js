// cellqms: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  // Move focus to the error summary when a form comes back with errors, so keyboard and
  // screen-reader users learn about them at once.
  function focusErrors() {
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
  }

  // Buttons that ask for confirmation carry data-confirm="question".
  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-confirm]") : null;
    if (target && !window.confirm(target.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  // Keep the inbox count in the navigation in step after htmx swaps a fresh inbox table.
  document.addEventListener("htmx:afterSwap", function (event) {
    var table = event.detail && event.detail.target;
    if (table && table.id === "inbox-table") {
      var rows = table.querySelectorAll("tbody tr").length;
      var count = document.getElementById("inbox-count");
      if (count) { count.textContent = String(rows); }
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", focusErrors);
  } else {
    focusErrors();
  }
})();
