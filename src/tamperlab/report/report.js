// tamperlab report: x-axis switch and sample filters. No data lives here and nothing is fetched.
(function () {
  "use strict";
  var root = document.documentElement;

  function setUnit(unit) {
    root.setAttribute("data-x", unit);
  }
  var radios = document.querySelectorAll('input[name="xunit"]');
  Array.prototype.forEach.call(radios, function (radio) {
    radio.addEventListener("change", function () {
      if (radio.checked) setUnit(radio.value);
    });
    if (radio.checked) setUnit(radio.value);
  });

  var filters = document.querySelectorAll("select[data-filter]");
  var groups = document.querySelectorAll("details.sample-group");
  var counter = document.getElementById("sample-count");

  function value(name) {
    var el = document.querySelector('select[data-filter="' + name + '"]');
    return el ? el.value : "";
  }
  function matches(el, name) {
    var want = value(name);
    return !want || el.getAttribute("data-" + name) === want;
  }
  function applyFilters() {
    var shownGroups = 0;
    var shownRows = 0;
    Array.prototype.forEach.call(groups, function (group) {
      var groupOk = matches(group, "arm") && matches(group, "seed") && matches(group, "step");
      var visible = 0;
      var rows = group.querySelectorAll("tr.sample");
      Array.prototype.forEach.call(rows, function (row) {
        var ok = groupOk && matches(row, "set") && matches(row, "verdict");
        if (ok && value("disagree") === "yes" && row.getAttribute("data-disagree") !== "yes") ok = false;
        row.hidden = !ok;
        if (ok) visible += 1;
      });
      group.hidden = !(groupOk && visible > 0);
      if (!group.hidden) {
        shownGroups += 1;
        shownRows += visible;
      }
    });
    if (counter) {
      counter.textContent = shownRows + " generations in " + shownGroups + " evaluations shown";
    }
  }
  Array.prototype.forEach.call(filters, function (el) {
    el.addEventListener("change", applyFilters);
  });
  applyFilters();

  var expand = document.getElementById("samples-expand");
  if (expand) {
    expand.addEventListener("click", function () {
      var open = expand.getAttribute("data-open") !== "yes";
      Array.prototype.forEach.call(groups, function (group) {
        if (!group.hidden) group.open = open;
      });
      expand.setAttribute("data-open", open ? "yes" : "no");
      expand.textContent = open ? "Collapse all shown" : "Expand all shown";
    });
  }
})();
