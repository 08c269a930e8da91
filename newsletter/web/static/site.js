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

// The topic bar: the current topic scrolled into view, and a fade on each edge the row
// continues past, so a cut-off word says "there is more this way".
(function () {
  var nav = document.querySelector(".topics-nav");
  var list = nav && nav.querySelector("ul");
  if (!list) { return; }
  var current = list.querySelector('[aria-current="page"]');
  if (current) {
    var item = current.parentElement;
    list.scrollLeft = item.offsetLeft - (list.clientWidth - item.offsetWidth) / 2;
  }
  function edges() {
    var more = list.scrollWidth - list.clientWidth;
    nav.toggleAttribute("data-more-left", list.scrollLeft > 2);
    nav.toggleAttribute("data-more-right", more - list.scrollLeft > 2);
  }
  list.addEventListener("scroll", edges, { passive: true });
  window.addEventListener("resize", edges);
  edges();
})();

// Topic order: the arrows move a ticked topic past the ticked one above or below it, at once
// (the form's Save keeps the order); without JavaScript each arrow saves the form and moves
// the topic on the server. Unticked topics have no order, so they do not count.
(function () {
  var list = document.querySelector("[data-topic-order]");
  if (!list) { return; }
  var status = document.querySelector("[data-topic-order-status]");
  function rows() { return Array.prototype.slice.call(list.querySelectorAll("li")); }
  function ticked(row) { return row.querySelector('input[type="checkbox"]').checked; }
  function neighbour(row, up) {
    var all = rows();
    var i = all.indexOf(row) + (up ? -1 : 1);
    while (i >= 0 && i < all.length && !ticked(all[i])) { i += up ? -1 : 1; }
    return i >= 0 && i < all.length ? all[i] : null;
  }
  function buttons(row) {
    return { up: row.querySelector('button[value$=":up"]'),
             down: row.querySelector('button[value$=":down"]') };
  }
  function refresh() {
    rows().forEach(function (row) {
      var b = buttons(row);
      b.up.disabled = !ticked(row) || !neighbour(row, true);
      b.down.disabled = !ticked(row) || !neighbour(row, false);
    });
  }
  list.addEventListener("change", refresh);
  list.addEventListener("click", function (event) {
    var button = event.target.closest('button[name="move"]');
    if (!button) { return; }
    event.preventDefault();
    var row = button.closest("li");
    var up = /:up$/.test(button.value);
    var other = neighbour(row, up);
    if (!other || !ticked(row)) { return; }
    // Swap the two rows (unticked rows between them stay where they are).
    var marker = document.createElement("li");
    list.replaceChild(marker, other);
    list.replaceChild(other, row);
    list.replaceChild(row, marker);
    refresh();
    var b = buttons(row);
    (button.disabled ? (up ? b.down : b.up) : button).focus();
    var order = rows().filter(ticked);
    var name = row.querySelector("label span").firstChild.textContent.trim();
    if (status) {
      status.textContent = name + " moved " + (up ? "up" : "down") + ": " +
        (order.indexOf(row) + 1) + " of " + order.length + ". Save to keep this order.";
    }
  });
  refresh();
})();

// The timezone list: a search box that narrows it to the matching places.
(function () {
  var search = document.querySelector("[data-zone-search]");
  var select = document.getElementById("timezone");
  if (!search || !select) { return; }
  search.hidden = false;
  search.addEventListener("input", function () {
    var words = search.value.trim().toLowerCase();
    select.querySelectorAll("optgroup").forEach(function (group) {
      var shown = 0;
      group.querySelectorAll("option").forEach(function (option) {
        var match = !words || option.textContent.toLowerCase().indexOf(words) >= 0 ||
          option.value.toLowerCase().replace(/_/g, " ").indexOf(words) >= 0;
        option.hidden = !match && !option.selected;
        if (match) { shown += 1; }
      });
      group.hidden = shown === 0;
    });
  });
  // The search only narrows the list: the zone stays the one chosen until another is picked.
})();
