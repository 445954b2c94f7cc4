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
  minutes: 10,
  plot: null,

  reset(camera) {
    this.camera = camera;
    this.frames = [];
    this.times = [];
    this.counts = [];
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
    while (this.times.length && this.times[0] < now - CHART_KEEP_S) {
      this.frames.shift();
      this.times.shift();
      this.counts.shift();
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
    return { frames: this.frames.slice(from), times: this.times.slice(from), counts: this.counts.slice(from) };
  },

  draw() {
    const element = document.getElementById("chart");
    if (!element || typeof uPlot === "undefined") return;
    const data = this.shown();
    const width = Math.max(element.clientWidth, 300);
    if (!this.plot || this.plot.width !== width) {
      if (this.plot) this.plot.destroy();
      this.plot = new uPlot({
        width, height: 200,
        scales: { x: { time: true } },
        axes: [{ stroke: "#9aa4ae", grid: { stroke: "#2d343c" } }, { stroke: "#9aa4ae", grid: { stroke: "#2d343c" } }],
        series: [{}, { label: "count", stroke: this.colour || "#00e6ff", width: 2 }],
      }, [data.times, data.counts], element);
    } else {
      this.plot.setData([data.times, data.counts]);
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
