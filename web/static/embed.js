// Tells the host page about this frame: its height (so the host can size the
// iframe) and the pairing (so the host can react). Messages go only to the
// origins the planner allowed to embed this page; see docs/embedding.md.
(function () {
  "use strict";
  // As the browser spells an origin (no default port), to compare with ancestorOrigins.
  function normalise(origin) {
    try { return new URL(origin).origin; } catch (e) { return origin; }
  }
  var allowed = (document.body.getAttribute("data-parent-origins") || "").split(" ")
    .filter(Boolean).map(normalise);
  if (window.parent === window || allowed.length === 0) { return; }

  // Where the browser says the host is (Chromium, Safari), send only there:
  // posting to every listed origin works too, but logs an error in the
  // console for each origin that is not the host's. Elsewhere (Firefox) the
  // host is unknown, so every listed origin is tried; a message only ever
  // reaches a window whose origin matches its target exactly.
  var ancestors = window.location.ancestorOrigins;
  var parentOrigin = ancestors && ancestors.length ? ancestors[0] : null;
  var targets = parentOrigin === null ? allowed
    : allowed.indexOf(parentOrigin) >= 0 ? [parentOrigin] : [];
  if (targets.length === 0) { return; }

  function send(message) {
    targets.forEach(function (origin) { window.parent.postMessage(message, origin); });
  }

  // The height of the content, not of the frame: scrollHeight never falls
  // below the frame's own height, so a frame sized from it could grow but
  // never shrink back (after an error message goes, say).
  var lastHeight = 0;
  function sendHeight() {
    var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height > 0 && height !== lastHeight) {
      lastHeight = height;
      send({ type: "matcher:height", version: 1, height: height });
    }
  }

  sendHeight();
  if (window.ResizeObserver) {
    new ResizeObserver(sendHeight).observe(document.documentElement);
  } else {
    window.addEventListener("resize", sendHeight);
    window.addEventListener("load", sendHeight);
  }

  var result = document.getElementById("result");
  var unsure = document.getElementById("unsure");
  if (result) {
    send({
      type: "matcher:paired",
      version: 1,
      confident: true,
      celebrity_id: result.getAttribute("data-celebrity-id"),
      percent: Number(result.getAttribute("data-percent")),
      // The page's language tag: "en" or "zh-CN".
      lang: document.documentElement.lang
    });
  } else if (unsure) {
    // The matcher could not tell: nobody was paired, so no celebrity is named.
    send({
      type: "matcher:unsure",
      version: 1,
      confident: false,
      reason: unsure.getAttribute("data-reason"),
      lang: document.documentElement.lang
    });
  }
})();
