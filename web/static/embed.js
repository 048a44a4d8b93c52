// Tells the host page about this frame: its height (so the host can size the
// iframe) and the pairing (so the host can react). Messages go only to the
// origins the planner allowed to embed this page; see docs/embedding.md.
(function () {
  "use strict";
  var origins = (document.body.getAttribute("data-parent-origins") || "").split(" ").filter(Boolean);
  if (window.parent === window || origins.length === 0) { return; }

  function send(message) {
    origins.forEach(function (origin) { window.parent.postMessage(message, origin); });
  }

  var lastHeight = 0;
  function sendHeight() {
    var height = Math.ceil(document.documentElement.scrollHeight);
    if (height !== lastHeight) {
      lastHeight = height;
      send({ type: "matcher:height", version: 1, height: height });
    }
  }

  sendHeight();
  if (window.ResizeObserver) {
    new ResizeObserver(sendHeight).observe(document.documentElement);
  } else {
    window.addEventListener("resize", sendHeight);
  }

  var result = document.getElementById("result");
  if (result) {
    send({
      type: "matcher:paired",
      version: 1,
      celebrity_id: result.getAttribute("data-celebrity-id"),
      percent: Number(result.getAttribute("data-percent")),
      lang: document.documentElement.lang
    });
  }
})();
