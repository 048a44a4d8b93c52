// Progressive enhancement for the shopper pages; every page works without it.
(function () {
  "use strict";
  var text = document.getElementById("text");
  var hint = document.getElementById("text-limit");
  if (text && hint) {
    var limit = Number(hint.getAttribute("data-limit"));
    var original = hint.textContent;
    // Chinese pages take full-width brackets.
    var chinese = document.documentElement.lang.indexOf("zh") === 0;
    var update = function () {
      var count = text.value.length + "/" + limit;
      hint.textContent = original + (chinese ? "（" + count + "）" : " (" + count + ")");
    };
    text.addEventListener("input", update);
    update();
  }
  // On a result, or after a refused POST, move focus to what changed, so
  // keyboard and screen-reader users land on it: the result, or the field
  // whose error they must fix or that they are asked to add to (the
  // textarea's aria-describedby points at the message).
  var result = document.getElementById("result");
  if (result) {
    result.focus({ preventScroll: true });
  } else if (text && (document.getElementById("form-error") || document.getElementById("unsure"))) {
    text.focus();
  }
  // The share link: the system's share sheet where there is one, else copy to the clipboard.
  var copy = document.querySelector("button.copy-link");
  if (copy && (navigator.share || (navigator.clipboard && window.isSecureContext))) {
    var url = copy.getAttribute("data-copy");
    copy.hidden = false;
    copy.addEventListener("click", function () {
      if (navigator.share) {
        navigator.share({ title: document.title, url: url }).catch(function () {});
        return;
      }
      navigator.clipboard.writeText(url).then(function () {
        copy.textContent = copy.getAttribute("data-copied");
      });
    });
  }
})();
