// Progressive enhancement for the shopper form; the form works without it.
(function () {
  "use strict";
  var text = document.getElementById("text");
  var hint = document.getElementById("text-limit");
  if (text && hint) {
    var limit = Number(hint.getAttribute("data-limit"));
    var original = hint.textContent;
    var update = function () {
      hint.textContent = original + " (" + text.value.length + "/" + limit + ")";
    };
    text.addEventListener("input", update);
    update();
  }
  // After a POST, move focus to what changed, so keyboard and screen-reader
  // users land on it: the result, or the field whose error they must fix or
  // that they are asked to add to (the textarea's aria-describedby points at
  // the message).
  var result = document.getElementById("result");
  if (result) {
    result.focus();
  } else if (text && (document.getElementById("form-error") || document.getElementById("unsure"))) {
    text.focus();
  }
})();
