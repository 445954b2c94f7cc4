// The count of the shown camera over the last minutes, drawn with uPlot (vendored in static/vendor/uplot, no CDN)
// from the results the page already receives: each /api/status answer with a new frame adds a point.
// window.persenseChart exposes the series (for tests and for anyone debugging the page).
"use strict";

const CHART_KEEP_S = 3600; // the longest window offered (60 minutes)

const persenseChart = {
  camera: null,
  frames: [], // frame index of each point
  times: [], // unix seconds when the page received it
  counts: [],
  passed: [], // items passed so far at each point (null where no counting line is set)
  minutes: 10,
  plot: null,

  reset(camera) {
    this.camera = camera;
    this.frames = [];
    this.times = [];
    this.counts = [];
    this.passed = [];
    this.draw();
  },

  // One camera entry of /api/status; a point only where it is a new result (the frame index moved on).
  add(camera, cam, colour) {
    if (camera !== this.camera) this.reset(camera);
    if (cam.frame_index === null || cam.frame_index === undefined || cam.count === null) return;
    const last = this.frames.length - 1;
    if (last >= 0 && this.frames[last] === cam.frame_index) return;
    const now = Date.now() / 1000;
    this.frames.push(cam.frame_index);
    this.times.push(now);
    this.counts.push(cam.count);
    this.passed.push(cam.passed_total === undefined ? null : cam.passed_total);
    while (this.times.length && this.times[0] < now - CHART_KEEP_S) {
      this.frames.shift();
      this.times.shift();
      this.counts.shift();
      this.passed.shift();
    }
    if (colour !== this.colour) { // a new product, a new colour: the line is drawn afresh in it
      this.colour = colour;
      if (this.plot) this.plot.destroy();
      this.plot = null;
    }
    this.draw();
  },

  // The points inside the chosen window: what the chart draws.
  shown() {
    const since = Date.now() / 1000 - this.minutes * 60;
    const first = this.times.findIndex((t) => t >= since);
    const from = first < 0 ? this.times.length : first;
    const times = this.times.slice(from);
    return { frames: this.frames.slice(from), times, counts: this.counts.slice(from),
             perMinute: this.perMinute(from) };
  },

  // Items passed per minute at each point, over the minute before it (null where no line is set).
  perMinute(from) {
    const out = [];
    let back = 0;
    for (let i = from; i < this.times.length; i++) {
      if (this.passed[i] === null) {
        out.push(null);
        continue;
      }
      while (back < i && this.times[back] < this.times[i] - 60) back++;
      const span = this.times[i] - this.times[back];
      out.push(span > 0 && this.passed[back] !== null ? (this.passed[i] - this.passed[back]) * 60 / span : null);
    }
    return out;
  },

  draw() {
    const element = document.getElementById("chart");
    if (!element || typeof uPlot === "undefined") return;
    const data = this.shown();
    const width = Math.max(element.clientWidth, 300);
    const counting = data.perMinute.some((v) => v !== null);
    const series = counting ? [data.times, data.counts, data.perMinute] : [data.times, data.counts];
    if (!this.plot || this.plot.width !== width || this.plot.series.length !== series.length) {
      if (this.plot) this.plot.destroy();
      const axis = { stroke: "#9aa4ae", grid: { stroke: "#2d343c" } };
      const options = {
        width, height: 200,
        scales: { x: { time: true } },
        axes: [axis, axis],
        series: [{}, { label: "count", stroke: this.colour || "#00e6ff", width: 2 }],
      };
      if (counting) {
        options.scales.perMinute = {};
        options.axes.push({ ...axis, scale: "perMinute", side: 1, grid: { show: false } });
        options.series.push({ label: "items passed / min", scale: "perMinute", stroke: "#ffb000", width: 1, dash: [4, 4] });
      }
      this.plot = new uPlot(options, series, element);
    } else {
      this.plot.setData(series);
    }
  },
};

window.persenseChart = persenseChart;
window.addEventListener("DOMContentLoaded", () => {
  const minutes = document.getElementById("chart-minutes");
  minutes.addEventListener("change", () => {
    persenseChart.minutes = Number(minutes.value);
    persenseChart.draw();
  });
  window.addEventListener("resize", () => persenseChart.draw());
});
