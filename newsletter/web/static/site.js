// Preset timezone fields from the browser (the server validates; UTC is the fallback).
(function () {
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone) { return; }
  document.querySelectorAll("input[data-browser-timezone]").forEach(function (input) {
    input.value = zone;
  });
  document.querySelectorAll("select[data-browser-timezone-default]").forEach(function (select) {
    if (select.querySelector('option[value="' + zone + '"]')) { select.value = zone; }
  });
})();
