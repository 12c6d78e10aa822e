// The live view of a txinferno registry: fills the page from the event
// stream /v1/events (Server-Sent Events) and keeps it current.  No
// framework; everything the page shows is set as text, never as HTML.
(function () {
  "use strict";

  var MAX_CHANGES_SHOWN = 50;
  var MAX_CHANGES_KEPT = 200; // as the server keeps them
  var ROW_HEIGHT = 24;        // px, as view.css sets it
  var ROWS_AROUND = 20;       // rows made above and below those on screen
  var MAX_VALUES_SHOWN = 8;

  var rows = document.getElementById("rows");
  var filter = document.getElementById("filter");
  var filterNote = document.getElementById("filter-note");
  var stateText = document.getElementById("state");
  var services = new Map();   // name -> {attrs, line}
  var order = [];             // the names, in the registry's order
  var orderStale = false;     // names removed since order was last cleaned
  var counts = new Map();     // attr -> Map(value -> services)
  var changes = [];
  var history = [];
  var status = null;
  var clockOffset = 0;        // the server's clock minus ours, in seconds
  var source = null;
  var renderPending = false;

  // The registry's input rule (txinferno.wire.words.splitWords): space,
  // tab and newline separate words; single quotes group, '' inside quotes
  // is one quote, an unbalanced quote ends with the text.
  function splitWords(text) {
    var words = [], current = "", inWord = false, inQuote = false;
    for (var i = 0; i < text.length; i++) {
      var c = text[i];
      if (inQuote) {
        if (c === "'") {
          if (text[i + 1] === "'") { current += "'"; i++; } else { inQuote = false; }
        } else { current += c; }
      } else if (c === "'") { inQuote = true; inWord = true; }
      else if (c === " " || c === "\t" || c === "\n") {
        if (inWord) { words.push(current); current = ""; inWord = false; }
      } else { current += c; inWord = true; }
    }
    if (inWord) { words.push(current); }
    return words;
  }

  // A service's attributes from its line (a change carries only its line):
  // the words after the name, in pairs.
  function attrsOf(line) {
    var words = splitWords(line), attrs = Object.create(null);
    for (var i = 1; i + 1 < words.length; i += 2) { attrs[words[i]] = words[i + 1]; }
    return attrs;
  }

  function setState(name, text) {
    document.body.className = name;
    stateText.textContent = text;
  }

  function count(attrs, delta) {
    Object.keys(attrs).forEach(function (attr) {
      var values = counts.get(attr);
      if (!values) { values = new Map(); counts.set(attr, values); }
      var n = (values.get(attrs[attr]) || 0) + delta;
      if (n > 0) { values.set(attrs[attr], n); } else { values.delete(attrs[attr]); }
      if (values.size === 0) { counts.delete(attr); }
    });
  }

  function upsert(service) {
    var known = services.get(service.name);
    if (known) {
      count(known.attrs, -1);
    } else {
      order.push(service.name);
    }
    services.set(service.name, {attrs: service.attrs, line: service.line});
    count(service.attrs, 1);
  }

  function remove(name) {
    var known = services.get(name);
    if (known) {
      count(known.attrs, -1);
      services.delete(name);
      orderStale = true;
    }
  }

  // Only the rows on screen (and a few around) are in the document, so that
  // 10,000 services cost the browser no more than a screenful.
  function renderRows() {
    if (orderStale) {
      var seen = new Set();
      order = order.filter(function (name) {
        var keep = services.has(name) && !seen.has(name);
        seen.add(name);
        return keep;
      });
      orderStale = false;
    }
    var first = Math.max(0, Math.floor(rows.scrollTop / ROW_HEIGHT) - ROWS_AROUND);
    var last = Math.min(order.length,
                        first + Math.ceil(rows.clientHeight / ROW_HEIGHT) + 2 * ROWS_AROUND);
    var fragment = document.createDocumentFragment();
    fragment.appendChild(document.createElement("div")).style.height = first * ROW_HEIGHT + "px";
    for (var i = first; i < last; i++) {
      var name = order[i], line = services.get(name).line;
      var space = line.indexOf(" ");
      var row = fragment.appendChild(document.createElement("div"));
      row.className = "row";
      row.dataset.name = name;
      row.title = line;
      row.appendChild(document.createElement("span")).className = "name";
      row.appendChild(document.createElement("span")).className = "attrs";
      row.firstChild.textContent = space < 0 ? line : line.slice(0, space);
      row.lastChild.textContent = space < 0 ? "" : line.slice(space + 1);
    }
    fragment.appendChild(document.createElement("div")).style.height =
      (order.length - last) * ROW_HEIGHT + "px";
    rows.replaceChildren(fragment);
  }

  function time(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString([], {hour12: false});
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
    var m = Math.floor(seconds / 60) % 60, s = seconds % 60;
    return (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + s + "s";
  }

  function renderStatus() {
    if (!status) { return; }
    document.getElementById("version").textContent = status.version;
    document.getElementById("count").textContent = status.services;
    var c = status.connections;
    document.getElementById("connections").textContent =
      "new " + c["new"] + ", find " + c.find + ", event " + c.event + ", views " + status.views;
    renderUptime();
  }

  function renderUptime() {
    if (status) {
      document.getElementById("uptime").textContent =
        duration(Date.now() / 1000 + clockOffset - status.started);
    }
  }

  function renderChanges() {
    var list = document.getElementById("changes");
    var fragment = document.createDocumentFragment();
    for (var i = changes.length - 1; i >= 0 && i >= changes.length - MAX_CHANGES_SHOWN; i--) {
      var change = changes[i];
      var item = document.createElement("li");
      item.className = change.kind;
      item.appendChild(document.createElement("time")).textContent = time(change.time);
      item.appendChild(document.createElement("span")).textContent = change.kind;
      item.appendChild(document.createElement("code")).textContent =
        change.kind === "rejected" ? (change.name || "(no name)") + ": " + change.reason : change.line;
      fragment.appendChild(item);
    }
    list.replaceChildren(fragment);
  }

  function renderCounts() {
    var box = document.getElementById("counts");
    var fragment = document.createDocumentFragment();
    Array.from(counts.keys()).sort().forEach(function (attr) {
      var values = Array.from(counts.get(attr).entries());
      values.sort(function (a, b) { return b[1] - a[1] || (a[0] < b[0] ? -1 : 1); });
      var block = document.createElement("dl");
      block.appendChild(document.createElement("dt")).textContent = attr;
      values.slice(0, MAX_VALUES_SHOWN).forEach(function (pair) {
        var dd = block.appendChild(document.createElement("dd"));
        dd.appendChild(document.createElement("code")).textContent = pair[0];
        dd.appendChild(document.createTextNode(" " + pair[1]));
      });
      if (values.length > MAX_VALUES_SHOWN) {
        block.appendChild(document.createElement("dd")).textContent =
          "and " + (values.length - MAX_VALUES_SHOWN) + " more values";
      }
      fragment.appendChild(block);
    });
    box.replaceChildren(fragment);
    document.getElementById("shown").textContent =
      services.size + " service" + (services.size === 1 ? "" : "s") + " shown";
  }

  function renderChart() {
    var svg = document.getElementById("chart");
    var ns = "http://www.w3.org/2000/svg";
    var points = history.slice(-120);
    svg.replaceChildren();
    if (points.length === 0) { return; }
    var maxServices = Math.max(1, Math.max.apply(null, points.map(function (p) { return p.services; })));
    var maxChanges = Math.max(1, Math.max.apply(null, points.map(function (p) { return p.changes; })));
    var step = 300 / Math.max(1, points.length - 1);
    var width = Math.max(1, 300 / points.length - 1);
    points.forEach(function (p, i) {
      if (p.changes) {
        var bar = document.createElementNS(ns, "rect");
        var h = 40 * p.changes / maxChanges;
        bar.setAttribute("x", Math.min(300 - width, i * step));
        bar.setAttribute("y", 100 - h);
        bar.setAttribute("width", width);
        bar.setAttribute("height", h);
        bar.setAttribute("class", "changes");
        svg.appendChild(bar);
      }
    });
    var line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", points.map(function (p, i) {
      return (i * step).toFixed(1) + "," + (95 - 90 * p.services / maxServices).toFixed(1);
    }).join(" "));
    line.setAttribute("class", "services");
    svg.appendChild(line);
    var title = document.createElementNS(ns, "title");
    title.textContent = "up to " + maxServices + " services, " + maxChanges + " changes per sample";
    svg.appendChild(title);
  }

  function render() {
    renderPending = false;
    renderRows();
    renderStatus();
    renderChanges();
    renderCounts();
    renderChart();
  }

  function scheduleRender() {
    if (!renderPending) {
      renderPending = true;
      setTimeout(render, 100);
    }
  }

  function connect() {
    var words = splitWords(filter.value);
    var params = new URLSearchParams();
    if (words.length % 2) {
      filterNote.textContent = "odd number of words: the registry finds every service";
    } else {
      filterNote.textContent = "";
      for (var i = 0; i < words.length; i += 2) { params.append(words[i], words[i + 1]); }
    }
    if (source) { source.close(); }
    var query = params.toString();
    source = new EventSource("v1/events" + (query ? "?" + query : ""));
    setState("connecting", "connecting");
    source.addEventListener("snapshot", function (event) {
      var data = JSON.parse(event.data);
      services.clear();
      counts.clear();
      order = [];
      status = data.status;
      clockOffset = status.time - Date.now() / 1000;
      changes = data.changes;
      history = data.history;
      setState("loading", "loading");
    });
    source.addEventListener("services", function (event) {
      JSON.parse(event.data).forEach(upsert);
    });
    source.addEventListener("ready", function () {
      setState("live", "live");
      render();
    });
    // The changes since the last event, in order, each with whether the
    // stream's query finds its service after it ("1" in shown).
    source.addEventListener("changes", function (event) {
      var data = JSON.parse(event.data);
      data.changes.forEach(function (change, i) {
        if (data.shown[i] === "1") {
          upsert({name: change.name, attrs: attrsOf(change.line), line: change.line});
        } else if (change.kind !== "rejected") {
          remove(change.name);
        }
        changes.push(change);
        if (status) {
          status.version = change.version;
          status.services += change.kind === "registered" ? 1 : change.kind === "removed" ? -1 : 0;
        }
      });
      if (changes.length > MAX_CHANGES_KEPT) { changes.splice(0, changes.length - MAX_CHANGES_KEPT); }
      scheduleRender();
    });
    source.addEventListener("sample", function (event) {
      var sample = JSON.parse(event.data);
      status = sample.status;
      clockOffset = status.time - Date.now() / 1000;
      history.push({time: sample.time, services: sample.services, changes: sample.changes});
      scheduleRender();
    });
    source.onerror = function () {
      setState("lost", "registry unreachable: reconnecting");
    };
  }

  var typing = null;
  filter.addEventListener("input", function () {
    clearTimeout(typing);
    typing = setTimeout(connect, 250);
  });
  document.getElementById("filter-form").addEventListener("submit", function (event) {
    event.preventDefault();
    clearTimeout(typing);
    connect();
  });
  var scrolling = false;
  rows.addEventListener("scroll", function () {
    if (!scrolling) {
      scrolling = true;
      requestAnimationFrame(function () { scrolling = false; renderRows(); });
    }
  });
  setInterval(renderUptime, 1000);
  connect();
}());
