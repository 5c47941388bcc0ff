// The UI's core: state, the API, the address bar (deep links), the sessions
// list, the cursor T with playback and keyboard stepping, and live mode.
// The timeline lives in timeline.js, the side panels in panels.js and views.js.

import { Timeline } from './timeline.js';
import { showProcess, showEvent, showOverview } from './panels.js';
import { showSequence, showFlame, showEvents } from './views.js';

export const ui = {
  session: null,      // name
  overview: null,     // /overview answer
  lanes: [],          // /lanes answer
  start: 0, end: 0,   // session span, ns (as numbers: ~256 ns precision)
  view: { from: 0, to: 1 },
  cursor: null,       // { id, ts }
  pid: null,          // selected process (pid text)
  tab: 'process',
  query: '',
  playing: false,
  live: null,         // EventSource while the session records
};

const $ = (sel) => document.querySelector(sel);

export async function api(path, params = {}) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') qs.set(k, v);
  const url = path + (qs.toString() ? '?' + qs : '');
  const r = await fetch(url);
  const body = await r.json().catch(() => ({ error: `bad answer from ${url}` }));
  if (!r.ok) throw new Error(body.error || `${r.status} from ${url}`);
  return body;
}

export function sapi(what, params) {
  return api(`/api/sessions/${encodeURIComponent(ui.session)}/${what}`, params);
}

export function showError(e) {
  const box = $('#error');
  box.textContent = String(e.message || e);
  box.hidden = false;
  clearTimeout(showError.t);
  showError.t = setTimeout(() => { box.hidden = true; }, 6000);
}

export function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

/** `+1.234567s` from the session start, for an absolute ns time. */
export function rel(ns) {
  return '+' + ((ns - ui.start) / 1e9).toFixed(6) + 's';
}

export function kindClass(kind) {
  const k = {
    send: 'message', receive: 'message', send_to_dead: 'message', call: 'call', return: 'call',
    exception: 'crash', trip: 'crash', dropped: 'crash', state: 'state', state_snapshot: 'state',
    capture_start: 'capture', capture_stop: 'capture', module_load: 'capture',
  }[kind];
  return 'k-' + (k || 'lifecycle');
}

// ---- the address bar ---------------------------------------------------------

function readHash() {
  const h = location.hash.replace(/^#/, '');
  const [path, query] = h.split('?');
  const p = new URLSearchParams(query || '');
  const m = path.match(/^\/s\/([^/]+)/);
  return { session: m ? decodeURIComponent(m[1]) : null, p };
}

let hashTimer = null;
/** Writes the current session, selection, T, window and tab into the address. */
export function writeHash() {
  clearTimeout(hashTimer);
  hashTimer = setTimeout(() => {
    const p = new URLSearchParams();
    if (ui.cursor) p.set('t', ui.cursor.id);
    if (ui.pid) p.set('pid', ui.pid);
    p.set('tab', ui.tab);
    p.set('from', Math.round(ui.view.from - ui.start));
    p.set('to', Math.round(ui.view.to - ui.start));
    if (ui.query) p.set('q', ui.query);
    history.replaceState(null, '', `#/s/${encodeURIComponent(ui.session)}?${p}`);
  }, 150);
}

// ---- sessions list -------------------------------------------------------------

async function showSessions() {
  $('#session-view').hidden = true;
  $('#sessions-view').hidden = false;
  $('#session-name').textContent = '';
  $('#session-stats').textContent = '';
  const rows = await api('/api/sessions');
  const body = $('#sessions-table tbody');
  body.innerHTML = rows.slice().reverse().map((s) => s.error
    ? `<tr><td>${esc(s.name)}</td><td colspan="6" class="muted">${esc(s.error)}</td></tr>`
    : `<tr class="clickable" data-name="${esc(s.name)}"><td><a href="#/s/${encodeURIComponent(s.name)}">${esc(s.name)}</a></td>
       <td>${esc(s.status)}</td><td>${esc(s.mode)}</td><td>${s.events}</td><td>${s.duration_s.toFixed(2)} s</td>
       <td>${esc(s.created)}</td><td class="muted">${esc(s.target)}</td></tr>`).join('');
  $('#sessions-empty').hidden = rows.length > 0;
  body.querySelectorAll('tr.clickable').forEach((tr) => tr.addEventListener('click', () => {
    location.hash = `#/s/${encodeURIComponent(tr.dataset.name)}`;
  }));
}

// ---- one session -------------------------------------------------------------------

let timeline = null;

async function openSession(name, p) {
  stopPlaying();
  if (ui.live) { ui.live.close(); ui.live = null; }
  ui.session = name;
  $('#sessions-view').hidden = true;
  $('#session-view').hidden = false;
  $('#session-name').textContent = name;
  const [overview, lanes] = await Promise.all([sapi('overview'), sapi('lanes')]);
  ui.overview = overview;
  ui.lanes = lanes;
  ui.start = overview.start_ns;
  ui.end = Math.max(overview.end_ns, overview.start_ns + 1);
  const from = p.get('from'), to = p.get('to');
  ui.view = (from !== null && to !== null && +to > +from)
    ? { from: ui.start + +from, to: ui.start + +to }
    : { from: ui.start, to: ui.end };
  ui.pid = p.get('pid') || null;
  ui.tab = p.get('tab') || 'process';
  ui.query = p.get('q') || '';
  $('#search').value = ui.query;
  renderStats();
  if (!timeline) timeline = new Timeline($('#timeline'), $('#timeline-scroll'), $('#timeline-spacer'));
  timeline.setLanes(lanes);
  if (ui.pid) timeline.showLane(ui.pid);
  const t = p.get('t');
  ui.cursor = null;
  if (t !== null && t !== '') await moveTo(+t, { reveal: true });
  else timeline.refresh();
  selectTab(ui.tab);
  if (overview.live) startLive();
  document.body.dataset.session = name;
}

function renderStats() {
  const o = ui.overview;
  const crashes = o.crashes.length;
  $('#session-stats').innerHTML = `${o.status} · ${esc(o.nodes.join(', '))} · ${o.duration_s.toFixed(3)} s · ` +
    `${o.events} events · ${o.processes_seen} processes · ` +
    `<span class="${crashes ? 'k-crash kind' : ''}">${crashes} crashes</span> · ${o.dropped} dropped · ${o.trips.length} trips`;
}

// ---- the cursor T -----------------------------------------------------------------

/** Moves T to event `id`; `reveal` scrolls the timeline to it. */
export async function moveTo(id, { reveal = false, pid = undefined } = {}) {
  const total = ui.overview.events;
  if (id < 0 || id >= total) return;
  let e;
  try { e = await sapi(`events/${id}`); } catch (err) { showError(err); return; }
  setCursor(e, { reveal, pid });
}

/** Sets T to the event `e` (an /events entry). */
export function setCursor(e, { reveal = false, pid = undefined } = {}) {
  ui.cursor = { id: e.id, ts: e.ts_ns, event: e };
  const before = ui.pid;
  if (pid !== undefined) ui.pid = pid;
  else if (!ui.pid && e.pid) ui.pid = e.pid;
  if (ui.pid && ui.pid !== before) timeline.showLane(ui.pid);
  $('#cursor-id').textContent = e.id;
  $('#cursor-at').textContent = e.at;
  if (reveal || ui.playing) timeline.reveal(e.ts_ns);
  timeline.draw();
  refreshPanel();
  writeHash();
}

export function selectProcess(pid) {
  ui.pid = pid;
  timeline.showLane(pid);
  timeline.draw();
  selectTab('process');
}

export function selectTab(tab) {
  ui.tab = tab;
  document.querySelectorAll('#tabs button').forEach((b) => b.classList.toggle('active', b.dataset.tab === tab));
  document.querySelectorAll('.panel').forEach((p) => p.classList.toggle('shown', p.id === `panel-${tab}`));
  refreshPanel(true);
  writeHash();
}

let panelTimer = null, panelAt = 0;
/** Redraws the visible panel; while playing, at most four times a second. */
export function refreshPanel(now = false) {
  clearTimeout(panelTimer);
  const wait = now || !ui.playing ? 0 : Math.max(0, 250 - (Date.now() - panelAt));
  panelTimer = setTimeout(() => {
    panelAt = Date.now();
    const show = { process: showProcess, event: showEvent, sequence: showSequence, flame: showFlame,
      events: showEvents, overview: showOverview }[ui.tab];
    Promise.resolve(show()).catch(showError);
  }, wait);
}

export function viewChanged() {
  const span = ui.view.to - ui.view.from;
  $('#window-info').textContent = `${rel(ui.view.from)} … ${rel(ui.view.to)} (${(span / 1e6).toFixed(3)} ms)`;
  writeHash();
  if (ui.tab === 'sequence' || ui.tab === 'flame') refreshPanel();
}

// ---- stepping and playback -----------------------------------------------------------

async function stepBy(delta) {
  stopPlaying();
  const id = ui.cursor ? ui.cursor.id + delta : 0;
  await moveTo(id, { reveal: true, pid: ui.pid ?? undefined });
}

async function stepProcess(forward, what) {
  stopPlaying();
  if (!ui.pid) { showError('select a process first (click its lane)'); return; }
  const at = ui.cursor ? String(ui.cursor.id) : (forward ? 'start' : 'end');
  const r = await sapi('step', { pid: ui.pid, at, dir: forward ? 'next' : 'prev', what });
  if (!r.event) { showError(`no ${forward ? 'next' : 'previous'} ${what === 'change' ? 'state change' : 'event'} of ${ui.pid}`); return; }
  setCursor(r.event, { reveal: true, pid: ui.pid });
}

let queue = [], playTimer = null, fetching = false, exhausted = false;

async function fill() {
  if (fetching || exhausted) return;
  fetching = true;
  try {
    const last = queue.length ? queue[queue.length - 1].id : (ui.cursor ? ui.cursor.id : -1);
    const page = await sapi('events', { q: `--from ${last + 1}`, limit: 500 });
    if (!page.events.length) exhausted = !ui.overview.live;
    queue.push(...page.events);
  } catch (e) { showError(e); stopPlaying(); } finally { fetching = false; }
}

function tick() {
  if (!ui.playing) return;
  if (queue.length < 100) fill();
  const e = queue.shift();
  if (e) setCursor(e, { pid: ui.pid ?? undefined });
  else if (exhausted) { stopPlaying(); return; }
  playTimer = setTimeout(tick, 1000 / +$('#speed').value);
}

export function startPlaying() {
  if (ui.playing) return;
  ui.playing = true;
  queue = []; exhausted = false;
  $('#btn-play').textContent = '❚❚';
  $('#btn-play').classList.add('active');
  document.body.dataset.playing = 'true';
  fill().then(tick);
}

export function stopPlaying() {
  if (!ui.playing) return;
  ui.playing = false;
  clearTimeout(playTimer);
  $('#btn-play').textContent = '▶︎';
  $('#btn-play').classList.remove('active');
  document.body.dataset.playing = 'false';
  refreshPanel(true);
}

// ---- live mode ------------------------------------------------------------------------

function startLive() {
  $('#live-badge').hidden = false;
  $('#follow-label').hidden = false;
  const src = new EventSource(`/api/sessions/${encodeURIComponent(ui.session)}/live`);
  ui.live = src;
  let lanesAt = 0;
  const onProgress = async (msg, done) => {
    const p = JSON.parse(msg.data);
    $('#live-events').textContent = p.events;
    document.body.dataset.liveEvents = p.events;
    ui.overview.events = p.events;
    const span = ui.view.to - ui.view.from;
    const wasFollowing = $('#follow').checked && ui.view.to >= ui.end - 1;
    ui.end = Math.max(p.end_ns, ui.end);
    ui.overview.status = p.status;
    ui.overview.duration_s = (ui.end - ui.start) / 1e9;
    renderStats();
    if (Date.now() - lanesAt > 1000 || done) {
      lanesAt = Date.now();
      ui.lanes = await sapi('lanes');
      timeline.setLanes(ui.lanes);
    }
    if (wasFollowing) ui.view = { from: Math.max(ui.start, ui.end - span), to: ui.end };
    timeline.refresh();
    if (done) {
      src.close(); ui.live = null;
      $('#live-badge').hidden = true;
      ui.overview = await sapi('overview');
      renderStats();
    }
  };
  src.addEventListener('progress', (m) => onProgress(m, false).catch(showError));
  src.addEventListener('done', (m) => onProgress(m, true).catch(showError));
}

// ---- wiring -----------------------------------------------------------------------------

async function route() {
  const { session, p } = readHash();
  try {
    if (!session) await showSessions();
    else if (session !== ui.session || !p.has('keep')) await openSession(session, p);
  } catch (e) { showError(e); }
}

function keys(ev) {
  if (!ui.session || ev.target.tagName === 'INPUT' || ev.target.tagName === 'SELECT') {
    if (ev.key === 'Escape') ev.target.blur();
    return;
  }
  const k = ev.key;
  const act = {
    ArrowRight: () => stepBy(1), ArrowLeft: () => stepBy(-1),
    n: () => stepProcess(true, 'event'), p: () => stepProcess(false, 'event'),
    c: () => stepProcess(true, 'change'), C: () => stepProcess(false, 'change'),
    ' ': () => (ui.playing ? stopPlaying() : startPlaying()),
    '+': () => timeline.zoom(0.5), '=': () => timeline.zoom(0.5), '-': () => timeline.zoom(2),
    f: () => timeline.fit(), '/': () => $('#search').focus(),
  }[k];
  if (act) { ev.preventDefault(); Promise.resolve(act()).catch(showError); }
}

function init() {
  $('#btn-prev').onclick = () => stepBy(-1).catch(showError);
  $('#btn-next').onclick = () => stepBy(1).catch(showError);
  $('#btn-play').onclick = () => (ui.playing ? stopPlaying() : startPlaying());
  $('#btn-zoom-in').onclick = () => timeline.zoom(0.5);
  $('#btn-zoom-out').onclick = () => timeline.zoom(2);
  $('#btn-fit').onclick = () => timeline.fit();
  $('#active-only').onchange = () => timeline.refresh();
  document.querySelectorAll('#tabs button').forEach((b) => { b.onclick = () => selectTab(b.dataset.tab); });
  $('#search-form').onsubmit = (ev) => {
    ev.preventDefault();
    ui.query = $('#search').value.trim();
    selectTab('events');
  };
  document.addEventListener('keydown', keys);
  window.addEventListener('hashchange', () => {
    const { session } = readHash();
    if (session !== ui.session) route();
  });
  $('#legend').innerHTML = ['message', 'call', 'capture', 'state', 'lifecycle', 'crash']
    .map((c) => `<span class="sw" style="background: var(--c-${c})"></span>${c}`).join('') +
    ' <span class="muted">— arrows are messages; the yellow line is T</span>';
  route();
}

init();
