/* Bascule statistics page: draws the graphs of one virtual service with uPlot and refreshes
   them. The page says what to draw in data-* attributes (see pages/statistics.py, Chart):
   #statistics[data-series-url][data-refresh-ms], and one figure.chart per graph with
   data-scope="vs" (a line per metric) or "rs" (a line per real server; several metrics are
   summed). No inline script: the CSP allows scripts from /static/ only. */
(function () {
  "use strict";

  var PALETTE = ["#1f5fbf", "#2e7d32", "#c62828", "#b26a00", "#7b1fa2", "#00838f",
                 "#5d4037", "#ad1457", "#455a64", "#9e9d24"];
  var HEIGHT = 200;

  function formatValue(unit) {
    return function (u, value) {
      if (value === null || value === undefined) return "–";
      var v = Math.abs(value);
      if (unit === "B/s") {
        var units = ["B/s", "KiB/s", "MiB/s", "GiB/s"];
        var i = 0;
        while (v >= 1024 && i < units.length - 1) { v /= 1024; value /= 1024; i++; }
        return (i === 0 ? value.toFixed(0) : value.toFixed(1)) + " " + units[i];
      }
      var text = v >= 100 || value === Math.round(value) ? value.toFixed(0) : value.toFixed(1);
      return unit === "ms" ? text + " ms" : text;
    };
  }

  function axisValues(unit) {
    var one = formatValue(unit);
    return function (u, ticks) { return ticks.map(function (t) { return one(u, t); }); };
  }

  function sumColumns(columns, metrics) {
    var present = metrics.filter(function (m) { return columns[m]; });
    if (!present.length) return null;
    var length = columns[present[0]].length;
    var out = new Array(length);
    for (var i = 0; i < length; i++) {
      var total = null;
      for (var j = 0; j < present.length; j++) {
        var v = columns[present[j]][i];
        if (v !== null && v !== undefined) total = (total || 0) + v;
      }
      out[i] = total;
    }
    return out;
  }

  // The lines of one chart: [{label, values}] from the JSON series.
  function lines(figure, series) {
    var metrics = figure.dataset.metrics.split(",");
    var labels = figure.dataset.labels ? figure.dataset.labels.split(",") : [];
    var out = [];
    if (figure.dataset.scope === "vs") {
      metrics.forEach(function (metric, i) {
        if (series.values[metric]) out.push({label: labels[i] || metric, values: series.values[metric]});
      });
    } else {
      Object.keys(series.real_servers).sort().forEach(function (key) {
        var values = sumColumns(series.real_servers[key], metrics);
        if (values) out.push({label: key, values: values});
      });
    }
    return out;
  }

  function build(figure, drawn, timestamps) {
    var target = figure.querySelector(".chart-plot");
    target.textContent = "";
    var unit = figure.dataset.unit;
    var opts = {
      width: Math.max(240, target.clientWidth || figure.clientWidth || 480),
      height: HEIGHT,
      scales: {x: {time: true}, y: {range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; }}},
      axes: [{}, {values: axisValues(unit), size: unit === "B/s" ? 90 : 60}],
      series: [{}].concat(drawn.map(function (line, i) {
        return {label: line.label, stroke: PALETTE[i % PALETTE.length], width: 1.5,
                spanGaps: false, value: formatValue(unit)};
      })),
      legend: {live: true},
    };
    var data = [timestamps].concat(drawn.map(function (line) { return line.values; }));
    return new window.uPlot(opts, data, target);
  }

  function Page(root) {
    this.root = root;
    this.url = root.dataset.seriesUrl;
    this.refresh = parseInt(root.dataset.refreshMs, 10) || 10000;
    this.status = document.getElementById("chart-status");
    this.plots = new Map(); // figure -> {plot, labels}
    this.timer = null;
  }

  Page.prototype.say = function (text) {
    this.status.textContent = text;
    this.status.hidden = !text;
  };

  Page.prototype.draw = function (series) {
    var self = this;
    this.root.querySelectorAll("figure.chart").forEach(function (figure) {
      var drawn = lines(figure, series);
      var key = drawn.map(function (l) { return l.label; }).join("\n");
      var known = self.plots.get(figure);
      if (!drawn.length) {
        if (known) known.plot.destroy();
        self.plots.delete(figure);
        figure.querySelector(".chart-plot").textContent = "No data for this graph.";
        figure.classList.add("chart-empty");
        return;
      }
      figure.classList.remove("chart-empty");
      if (known && known.key === key) {
        known.plot.setData([series.timestamps].concat(drawn.map(function (l) { return l.values; })));
      } else {
        if (known) known.plot.destroy();
        self.plots.set(figure, {plot: build(figure, drawn, series.timestamps), key: key});
      }
    });
    var hasData = Object.keys(series.values).length > 0;
    this.say(hasData ? "" : "No sample yet: the graphs fill in as the daemon samples (every few seconds).");
  };

  Page.prototype.load = function () {
    var self = this;
    // HX-Request marks it as background polling (web/auth.py): refreshing graphs is not a
    // person's activity and must not keep an idle session open.
    var headers = {"Accept": "application/json", "HX-Request": "true"};
    return fetch(this.url, {credentials: "same-origin", headers: headers})
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (!response.ok || type.indexOf("application/json") !== 0) {
          throw new Error(response.status === 404 ? "gone" : "session");
        }
        return response.json();
      })
      .then(function (series) { self.draw(series); return true; })
      .catch(function (error) {
        self.stop();
        self.say(error.message === "gone"
          ? "This virtual service no longer exists."
          : "The graphs stopped refreshing (your session may have ended): reload the page.");
        return false;
      });
  };

  Page.prototype.start = function () {
    var self = this;
    this.load().then(function (ok) {
      if (ok) self.timer = window.setInterval(function () { self.load(); }, self.refresh);
    });
    var resizing = null;
    window.addEventListener("resize", function () {
      window.clearTimeout(resizing);
      resizing = window.setTimeout(function () {
        self.plots.forEach(function (entry, figure) {
          var target = figure.querySelector(".chart-plot");
          entry.plot.setSize({width: Math.max(240, target.clientWidth), height: HEIGHT});
        });
      }, 150);
    });
  };

  Page.prototype.stop = function () {
    if (this.timer !== null) window.clearInterval(this.timer);
    this.timer = null;
  };

  function init() {
    var root = document.getElementById("statistics");
    if (!root || !window.uPlot) return;
    new Page(root).start();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
