// The timeline: one lane per process in supervision order, events as marks,
// messages as arrows between lanes, the cursor T as a line. It asks the server
// only for the visible lanes and window: marks and arrows when few events fall
// in it, counts per time bucket otherwise. Drag pans, ctrl+wheel zooms.

import { ui, sapi, showError, moveTo, selectProcess, viewChanged } from './app.js';

const ROW = 18, LABEL_W = 240, AXIS_H = 22;
const CLASS_COLORS = ['--c-message', '--c-call', '--c-capture', '--c-state', '--c-lifecycle', '--c-crash'];

export class Timeline {
  constructor(canvas, scroller, spacer) {
    this.canvas = canvas;
    this.scroller = scroller;
    this.spacer = spacer;
    this.ctx = canvas.getContext('2d');
    this.lanes = [];
    this.row = new Map();     // lane id -> row
    this.data = null;         // last /timeline answer
    this.seq = 0;             // request number, to drop stale answers
    this.hits = [];
    this.filtered = false;  // lanes narrowed to the active ones
    const css = getComputedStyle(document.documentElement);
    this.colors = CLASS_COLORS.map((v) => css.getPropertyValue(v).trim());
    this.cursorColor = css.getPropertyValue('--cursor').trim();
    this.lineColor = css.getPropertyValue('--line').trim();
    this.dim = css.getPropertyValue('--dim').trim();
    this.text = css.getPropertyValue('--text').trim();
    scroller.addEventListener('scroll', () => { this.draw(); this.refresh(); });
    window.addEventListener('resize', () => { this.draw(); this.refresh(); });
    this.bindMouse();
  }

  setLanes(lanes) {
    this.lanes = lanes;
    this.row = new Map(lanes.map((l, i) => [l.id, i]));
    this.spacer.style.height = `${lanes.length * ROW + AXIS_H}px`;
    document.body.dataset.lanes = lanes.length;
  }

  /** Scrolls the lane of `proc` (pid or registered name) into view. */
  showLane(proc) {
    const row = this.lanes.findIndex((l) => l.pid === proc || l.name === proc);
    if (row < 0) return;
    const top = row * ROW, h = this.scroller.clientHeight - AXIS_H;
    if (top < this.scroller.scrollTop || top + ROW > this.scroller.scrollTop + h) {
      this.scroller.scrollTop = Math.max(0, top - h / 3);
    }
  }

  plotWidth() { return Math.max(50, this.canvas.clientWidth - LABEL_W); }
  x(ts) { return LABEL_W + ((ts - ui.view.from) / (ui.view.to - ui.view.from)) * this.plotWidth(); }
  tsAt(px) { return ui.view.from + ((px - LABEL_W) / this.plotWidth()) * (ui.view.to - ui.view.from); }
  firstRow() { return Math.floor(this.scroller.scrollTop / ROW); }
  y(row) { return AXIS_H + (row - this.firstRow()) * ROW - (this.scroller.scrollTop % ROW); }

  visibleLanes() {
    const first = this.firstRow();
    const n = Math.ceil(this.scroller.clientHeight / ROW) + 1;
    return this.lanes.slice(first, first + n);
  }

  /** Fetches the visible window (debounced) and draws it. */
  refresh() {
    // For tests and the benchmark: 'false' until the window asked for last is drawn.
    document.body.dataset.timelineIdle = 'false';
    this.pending = true;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.pending = false; this.fetch(); }, 60);
    viewChanged();
  }

  async fetch() {
    const seq = ++this.seq;
    const started = performance.now();
    try {
      // Only the processes with events in the window, when asked.
      const active = document.querySelector('#active-only').checked;
      if (active || this.filtered) {
        const lanes = active
          ? await sapi('lanes', { from_ns: Math.floor(ui.view.from), to_ns: Math.ceil(ui.view.to) })
          : ui.lanes;
        if (seq !== this.seq) return;
        this.filtered = active;
        this.setLanes(lanes);
      }
      const lanes = this.visibleLanes().map((l) => l.id);
      const d = await sapi('timeline', {
        from_ns: Math.floor(ui.view.from), to_ns: Math.ceil(ui.view.to),
        buckets: Math.floor(this.plotWidth() / 3), lanes: lanes.join(','),
      });
      if (seq !== this.seq) return;
      this.data = d;
      this.draw();
      const ds = document.body.dataset;
      ds.timelineMs = Math.round(performance.now() - started);
      ds.timelineDetail = d.detail;
      ds.timelineSeq = seq;
      ds.timelineIdle = String(!this.pending);
    } catch (e) { showError(e); }
  }

  /** Pans so that `ts` is in view (keeping the zoom). */
  reveal(ts) {
    const span = ui.view.to - ui.view.from;
    if (ts >= ui.view.from && ts <= ui.view.to) return;
    ui.view = { from: ts - span * 0.3, to: ts + span * 0.7 };
    this.refresh();
  }

  zoom(factor, center) {
    const c = center ?? (ui.cursor && ui.cursor.ts >= ui.view.from && ui.cursor.ts <= ui.view.to
      ? ui.cursor.ts : (ui.view.from + ui.view.to) / 2);
    const span = Math.max(1000, (ui.view.to - ui.view.from) * factor);
    const left = (c - ui.view.from) / (ui.view.to - ui.view.from);
    ui.view = { from: c - span * left, to: c + span * (1 - left) };
    this.refresh();
  }

  fit() {
    ui.view = { from: ui.start, to: ui.end };
    this.refresh();
  }

  bindMouse() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener('mousedown', (ev) => {
      drag = { x: ev.offsetX, from: ui.view.from, to: ui.view.to, moved: false };
      c.classList.add('dragging');
    });
    window.addEventListener('mousemove', (ev) => {
      if (!drag) return;
      const dx = ev.clientX - c.getBoundingClientRect().left - drag.x;
      if (Math.abs(dx) > 3) drag.moved = true;
      if (!drag.moved) return;
      const shift = (-dx / this.plotWidth()) * (drag.to - drag.from);
      ui.view = { from: drag.from + shift, to: drag.to + shift };
      this.draw();
      this.refresh();
    });
    window.addEventListener('mouseup', (ev) => {
      if (!drag) return;
      c.classList.remove('dragging');
      const wasClick = !drag.moved;
      drag = null;
      if (wasClick && ev.target === c) this.click(ev.offsetX, ev.offsetY);
    });
    c.addEventListener('wheel', (ev) => {
      if (ev.ctrlKey || ev.metaKey) {
        ev.preventDefault();
        this.zoom(ev.deltaY > 0 ? 1.25 : 0.8, this.tsAt(ev.offsetX));
      } else if (Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
        ev.preventDefault();
        const shift = (ev.deltaX / this.plotWidth()) * (ui.view.to - ui.view.from);
        ui.view = { from: ui.view.from + shift, to: ui.view.to + shift };
        this.refresh();
      }
    }, { passive: false });
    c.addEventListener('dblclick', (ev) => { if (ev.offsetX > LABEL_W) this.zoom(0.5, this.tsAt(ev.offsetX)); });
  }

  click(px, py) {
    const row = this.firstRow() + Math.floor((py - AXIS_H + (this.scroller.scrollTop % ROW)) / ROW);
    const lane = this.lanes[row];
    if (px < LABEL_W) { if (lane && lane.pid) selectProcess(lane.pid); return; }
    let best = null, bestD = 7;
    for (const h of this.hits) {
      const d = Math.hypot(h.x - px, h.y - py);
      if (d < bestD) { best = h; bestD = d; }
    }
    if (best) {
      const l = this.lanes[this.row.get(best.mark.lane)];
      moveTo(best.mark.id, { pid: l && l.pid ? l.pid : undefined });
    } else if (lane && lane.pid) {
      selectProcess(lane.pid);
    }
  }

  draw() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = this.scroller.clientWidth, h = this.scroller.clientHeight;
    if (c.width !== w * dpr || c.height !== h * dpr) {
      c.width = w * dpr; c.height = h * dpr;
      c.style.width = `${w}px`; c.style.height = `${h}px`;
    }
    const g = this.ctx;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    g.font = '12px system-ui, sans-serif';
    this.hits = [];
    const first = this.firstRow();
    const rows = this.visibleLanes();
    // Lanes: stripes, labels, lifespans.
    rows.forEach((l, i) => {
      const y = this.y(first + i);
      const selected = l.pid && (l.pid === ui.pid || l.name === ui.pid);
      g.fillStyle = selected ? '#2a2f3a' : (i + first) % 2 ? '#181b21' : '#14161b';
      g.fillRect(0, y, w, ROW);
      const x0 = l.spawned_ns ? Math.max(LABEL_W, this.x(l.spawned_ns)) : LABEL_W;
      const x1 = l.exited_ns ? Math.min(w, this.x(l.exited_ns)) : w;
      if (x1 > x0) { g.fillStyle = this.lineColor; g.fillRect(x0, y + ROW / 2, x1 - x0, 1); }
      g.fillStyle = l.crashed ? this.colors[5] : selected ? this.cursorColor : this.text;
      const label = `${l.supervisor ? '▣ ' : ''}${l.label}`;
      g.fillText(label, 6 + Math.min(l.depth, 12) * 10, y + ROW - 5, LABEL_W - 70 - Math.min(l.depth, 12) * 10);
      g.fillStyle = this.dim;
      g.fillText(l.pid, LABEL_W - 62, y + ROW - 5, 58);
    });
    g.fillStyle = this.lineColor;
    g.fillRect(LABEL_W - 1, 0, 1, h);
    const d = this.data;
    if (d) (d.detail ? this.drawDetail(g, d) : this.drawDensity(g, d));
    this.drawAxis(g, w);
    if (ui.cursor) {
      const x = this.x(ui.cursor.ts);
      if (x >= LABEL_W && x <= w) {
        g.fillStyle = this.cursorColor;
        g.fillRect(x - 1, 0, 2, h);
      }
    }
  }

  laneY(id) {
    const r = this.row.get(id);
    return r === undefined ? null : this.y(r) + ROW / 2;
  }

  drawDetail(g, d) {
    g.lineWidth = 1;
    for (const a of d.arrows) {
      const y0 = this.laneY(a.from_lane), y1 = this.laneY(a.to_lane);
      if (y0 === null || y1 === null) continue;
      const x0 = this.x(a.from_ns), x1 = this.x(a.to_ns);
      g.strokeStyle = a.receive === undefined ? 'rgba(191,97,106,0.6)' : 'rgba(94,129,172,0.75)';
      g.beginPath(); g.moveTo(x0, y0); g.lineTo(x1, y1); g.stroke();
      const ang = Math.atan2(y1 - y0, x1 - x0);
      g.beginPath();
      g.moveTo(x1, y1);
      g.lineTo(x1 - 6 * Math.cos(ang - 0.4), y1 - 6 * Math.sin(ang - 0.4));
      g.lineTo(x1 - 6 * Math.cos(ang + 0.4), y1 - 6 * Math.sin(ang + 0.4));
      g.closePath(); g.fillStyle = g.strokeStyle; g.fill();
    }
    for (const m of d.marks) {
      const y = this.laneY(m.lane);
      if (y === null) continue;
      const x = this.x(m.ts_ns);
      if (x < LABEL_W) continue;
      g.fillStyle = this.colors[m.class] || this.text;
      const selected = ui.cursor && ui.cursor.id === m.id;
      g.fillRect(x - (selected ? 3 : 2), y - (selected ? 7 : 5), selected ? 6 : 4, selected ? 14 : 10);
      this.hits.push({ x, y, mark: m });
    }
  }

  drawDensity(g, d) {
    const cellW = this.plotWidth() / d.buckets;
    const span = ui.view.to - ui.view.from;
    // Buckets were computed for the window of the answer; place them by time.
    const scale = (d.to_ns - d.from_ns) / span;
    for (const ld of d.density) {
      const y = this.laneY(ld.lane);
      if (y === null) continue;
      const cells = ld.cells;
      for (let i = 0; i < cells.length; i += 3) {
        const ts = d.from_ns + (cells[i] / d.buckets) * (d.to_ns - d.from_ns);
        const x = this.x(ts);
        const n = cells[i + 1];
        g.globalAlpha = 0.35 + 0.65 * Math.min(1, Math.log10(n + 1) / 3);
        g.fillStyle = this.colors[cells[i + 2]] || this.text;
        g.fillRect(x, y - 6, Math.max(1, cellW * scale - 0.5), 12);
      }
    }
    g.globalAlpha = 1;
  }

  drawAxis(g, w) {
    g.fillStyle = '#14161b';
    g.fillRect(0, 0, w, AXIS_H);
    g.fillStyle = this.lineColor;
    g.fillRect(0, AXIS_H - 1, w, 1);
    const span = ui.view.to - ui.view.from;
    const target = span / Math.max(2, this.plotWidth() / 110);
    const step = [1, 2, 5].flatMap((m) => [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12].map((e) => m * 10 ** e))
      .sort((a, b) => a - b).find((s) => s >= target) || target;
    const unit = step >= 1e9 ? [1e9, 's'] : step >= 1e6 ? [1e6, 'ms'] : step >= 1e3 ? [1e3, 'µs'] : [1, 'ns'];
    g.fillStyle = this.dim;
    let t = Math.ceil((ui.view.from - ui.start) / step) * step;
    for (; ui.start + t <= ui.view.to; t += step) {
      const x = this.x(ui.start + t);
      g.fillRect(x, AXIS_H - 6, 1, 5);
      g.fillText(`+${+(t / unit[0]).toFixed(3)}${unit[1]}`, x + 3, 13);
    }
    g.fillText(`${this.lanes.length} processes`, 6, 14);
  }
}
