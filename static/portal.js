// latchkey portal: small improvements only; every page works without this file.
// - times (<time datetime>) shown in the viewer's own zone, UTC kept in the title;
// - copy buttons for share links and SP values.
(function () {
  "use strict";
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
  var fmt = null;
  try {
    fmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  } catch (e) { fmt = null; }
  function localise() {
    if (!fmt || !zone || zone === "UTC") { return; }
    var times = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var t = times[i], d = new Date(t.getAttribute("datetime"));
      if (isNaN(d.getTime()) || t.getAttribute("datetime").length <= 10) { continue; }
      t.title = t.textContent;
      t.textContent = fmt.format(d);
    }
    var tz = document.querySelectorAll(".tz");
    for (var j = 0; j < tz.length; j++) { tz[j].textContent = zone + " (hover a time for UTC)"; }
  }
  function copyButtons() {
    var buttons = document.querySelectorAll("button.copy[data-copy]");
    for (var i = 0; i < buttons.length; i++) {
      (function (b) {
        var target = document.getElementById(b.getAttribute("data-copy"));
        if (!target) { return; }
        b.hidden = false;
        b.addEventListener("click", function () {
          var text = target.value !== undefined ? target.value : target.textContent;
          var done = function () { b.textContent = "Copied"; setTimeout(function () { b.textContent = "Copy"; }, 2000); };
          if (navigator.clipboard && navigator.clipboard.writeText) {
            navigator.clipboard.writeText(text).then(done, function () { target.select(); });
          } else if (target.select) {
            target.select();
            try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
          }
        });
      })(buttons[i]);
    }
  }
  // Links to the usage report ask for the viewer's own days.
  function zoneLinks() {
    if (!zone) { return; }
    var links = document.querySelectorAll("a[data-add-tz]");
    for (var i = 0; i < links.length; i++) {
      var a = links[i];
      a.href = a.getAttribute("href") + (a.getAttribute("href").indexOf("?") < 0 ? "?" : "&") + "tz=" + encodeURIComponent(zone);
    }
  }
  // SSO set-up: the chosen vendor's help opens, the others close.
  function vendorHelp() {
    var radios = document.querySelectorAll("input[name=vendor]");
    for (var i = 0; i < radios.length; i++) {
      radios[i].addEventListener("change", function (ev) {
        var all = document.querySelectorAll("details.help[data-vendor]");
        for (var j = 0; j < all.length; j++) { all[j].open = all[j].getAttribute("data-vendor") === ev.target.value; }
      });
    }
  }
  document.addEventListener("DOMContentLoaded", function () { localise(); copyButtons(); zoneLinks(); vendorHelp(); });
})();
