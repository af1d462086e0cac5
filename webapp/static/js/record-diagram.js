// Draws a record's BPMN diagram with the bpmn-js NavigatedViewer (from npm, copied to
// static/vendor) and marks the tasks: completed (cq-completed) and open (cq-open).
// The container carries the diagram URL and the BPMN ids in data attributes; no inline script.
(function () {
  "use strict";

  function ids(value) {
    return (value || "").split(/\s+/).filter(Boolean);
  }

  function draw(container) {
    if (typeof window.BpmnJS !== "function") {
      container.querySelector(".diagram-fallback").textContent = "The diagram viewer could not be loaded.";
      return;
    }
    var viewer = new window.BpmnJS({ container: container });
    fetch(container.getAttribute("data-xml-url"), { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (xml) { return viewer.importXML(xml); })
      .then(function () {
        var canvas = viewer.get("canvas");
        var registry = viewer.get("elementRegistry");
        var fallback = container.querySelector(".diagram-fallback");
        if (fallback) { fallback.remove(); }
        // The start event has happened for every record.
        registry.filter(function (el) { return el.type === "bpmn:StartEvent" && !el.host; })
          .forEach(function (el) { canvas.addMarker(el.id, "cq-completed"); });
        ids(container.getAttribute("data-completed")).forEach(function (id) {
          if (registry.get(id)) { canvas.addMarker(id, "cq-completed"); }
        });
        ids(container.getAttribute("data-open")).forEach(function (id) {
          if (registry.get(id)) {
            canvas.removeMarker(id, "cq-completed");
            canvas.addMarker(id, "cq-open");
          }
        });
        canvas.zoom("fit-viewport");
        container.setAttribute("data-rendered", "true");
      })
      .catch(function (err) {
        container.setAttribute("data-rendered", "error");
        var p = document.createElement("p");
        p.className = "alert alert-error";
        p.textContent = "The diagram could not be drawn: " + err.message;
        container.appendChild(p);
      });
  }

  function init() {
    var container = document.getElementById("diagram");
    if (container) { draw(container); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
