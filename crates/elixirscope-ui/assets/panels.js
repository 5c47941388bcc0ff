// Side panels about one thing at T: the process inspector (state at T and
// what changed it, mailbox, links, monitors, call stack), the event inspector
// (full terms, collapsible and copyable) and the session overview.

import { ui, sapi, esc, moveTo, selectProcess, kindClass } from './app.js';

const $ = (sel) => document.querySelector(sel);

// ---- terms as collapsible trees ----------------------------------------------------

/** Splits an inspected Elixir term into nested containers and their items. */
export function parseTerm(s) {
  let i = 0;
  const readString = (q) => {
    let j = i + 1;
    while (j < s.length && s[j] !== q) { if (s[j] === '\\') j++; j++; }
    const t = s.slice(i, j + 1);
    i = j + 1;
    return t;
  };
  const opener = () => {
    if (s[i] === '{' || s[i] === '[') return s[i];
    if (s.startsWith('<<', i)) return '<<';
    if (s[i] === '%') { const m = /^%[A-Za-z0-9_.]*\{/.exec(s.slice(i, i + 200)); if (m) return m[0]; }
    return null;
  };
  const seq = (close) => {
    const items = [];
    let pieces = [], text = '';
    const flushText = () => { if (text) { pieces.push(text); text = ''; } };
    const flushItem = () => { flushText(); if (pieces.length) items.push(pieces); pieces = []; };
    while (i < s.length) {
      if (close && s.startsWith(close, i)) { i += close.length; flushItem(); return items; }
      const c = s[i];
      if (close && c === ',') { flushItem(); i++; if (s[i] === ' ') i++; continue; }
      if (c === '"' || c === "'") { text += readString(c); continue; }
      const o = opener();
      if (o) {
        flushText();
        i += o.length;
        const cl = o === '[' ? ']' : o === '<<' ? '>>' : '}';
        pieces.push({ open: o, close: cl, items: seq(cl) });
        continue;
      }
      text += c; i++;
    }
    flushItem();
    return items;
  };
  return seq(null);
}

const flat = (pieces) => pieces.map((p) => (typeof p === 'string' ? p : flatNode(p))).join('');
const flatNode = (n) => n.open + n.items.map(flat).join(', ') + n.close;

function renderPieces(pieces, depth) {
  return pieces.map((p) => (typeof p === 'string' ? esc(p) : renderNode(p, depth))).join('');
}

function renderNode(n, depth) {
  const text = flatNode(n);
  if (text.length <= 60 || !n.items.length) return esc(text);
  const items = n.items.map((it, k) => `<div>${renderPieces(it, depth + 1)}${k < n.items.length - 1 ? ',' : ''}</div>`).join('');
  return `<span class="node${depth > 2 ? ' collapsed' : ''}"><span class="toggle" title="fold / unfold">${esc(n.open)}</span>` +
    `<span class="ellipsis toggle">…${esc(n.close)}</span><div class="items">${items}</div><span class="close">${esc(n.close)}</span></span>`;
}

/** A term as a collapsible tree with a copy button; `id` names the raw text. */
export function termView(text, id) {
  const tree = parseTerm(text).map((p) => renderPieces(p, 0)).join('');
  return `<button class="copy" data-copy="${esc(id)}">copy</button>` +
    `<div class="term" data-raw-id="${esc(id)}">${tree}</div><pre hidden id="${esc(id)}">${esc(text)}</pre>`;
}

function bindTerms(el) {
  el.querySelectorAll('.term').forEach((t) => t.addEventListener('click', (ev) => {
    if (ev.target.classList.contains('toggle')) ev.target.parentElement.classList.toggle('collapsed');
  }));
  el.querySelectorAll('button.copy').forEach((b) => b.addEventListener('click', () => {
    const text = document.getElementById(b.dataset.copy).textContent;
    navigator.clipboard?.writeText(text).then(() => { b.textContent = 'copied'; }, () => { b.textContent = 'select and copy'; });
    document.body.dataset.copied = text;
  }));
}

function bindJumps(el) {
  el.querySelectorAll('[data-event]').forEach((a) => a.addEventListener('click', (ev) => {
    ev.preventDefault();
    moveTo(+a.dataset.event, { reveal: true, pid: a.dataset.pid || undefined });
  }));
  el.querySelectorAll('[data-proc]').forEach((a) => a.addEventListener('click', (ev) => {
    ev.preventDefault();
    selectProcess(a.dataset.proc);
  }));
}

const evLink = (id, label, pid) => `<a href="#" data-event="${id}"${pid ? ` data-pid="${esc(pid)}"` : ''}>${esc(label ?? `#${id}`)}</a>`;
const procLink = (pid, label) => `<a href="#" data-proc="${esc(pid)}">${esc(label ?? pid)}</a>`;

// ---- the process inspector -------------------------------------------------------------

export async function showProcess() {
  const el = $('#panel-process');
  if (!ui.pid) {
    el.innerHTML = '<p class="muted">Click a lane (or a mark) to inspect its process at T.</p>';
    return;
  }
  const pid = ui.pid, at = ui.cursor ? String(ui.cursor.id) : 'end';
  const r = await sapi('inspect', { pid, at });
  if (pid !== ui.pid || at !== (ui.cursor ? String(ui.cursor.id) : 'end')) return; // stale
  const p = r.process, st = r.state, mb = r.mailbox;
  let h = `<h2>Process ${esc(r.pid)} at ${esc(r.at)}</h2><dl class="kv">`;
  h += `<dt>name</dt><dd>${esc(st.name ?? p?.name ?? '—')}</dd>`;
  if (p) {
    h += `<dt>initial call</dt><dd>${esc(p.initial_call ?? '—')}</dd>`;
    h += `<dt>parent</dt><dd>${p.parent ? procLink(p.parent) : '—'}</dd>`;
    h += `<dt>status</dt><dd>${p.alive ? 'alive' : `exited ${esc(p.exited_at ?? '')}: ${esc(p.exit_reason ?? '')}`}</dd>`;
    if (p.spawned_at) h += `<dt>spawned</dt><dd>${esc(p.spawned_at)}</dd>`;
    if (p.restart_of) h += `<dt>restart of</dt><dd>${procLink(p.restart_of.pid)} (crashed ${esc(p.restart_of.exited_at)}: ${esc(p.restart_of.reason)})</dd>`;
    h += `<dt>links</dt><dd>${p.links.length ? p.links.map((l) => procLink(l)).join(' ') : '—'}</dd>`;
  } else {
    h += '<dt>status</dt><dd class="muted">not known at T (not spawned yet, or seen only in messages)</dd>';
  }
  h += `<dt>monitors</dt><dd>${r.monitors.length ? r.monitors.map((m) => `${esc(m.target)} (${evLink(m.event, m.since)})`).join(', ') : '—'}</dd></dl>`;

  h += '<h2>State at T</h2>';
  if (st.state !== undefined && st.state !== null) {
    h += `<pre id="state-text"${st.diff.length ? ' class="changed"' : ''}>${esc(st.state)}</pre>`;
    h += `<details id="state-tree"><summary class="muted">as a tree</summary>${termView(st.state, 'state-raw')}</details>`;
    if (st.changed) {
      const c = st.changed;
      h += `<p>changed ${evLink(c.event, c.at, r.pid)} by ${esc(c.by)}`;
      if (c.message) h += ` handling ${c.message_event !== undefined ? evLink(c.message_event, 'message', r.pid) : 'message'} <code>${esc(c.message)}</code>`;
      if (c.message_from) h += ` from ${procLink(c.message_from)}`;
      h += '</p>';
    }
    if (st.diff.length) {
      h += '<table id="state-diff"><tr><th>changed</th><th>before</th><th>after</th></tr>' + st.diff.map((d) =>
        `<tr><td class="mono">${esc(d.path)}</td><td class="diff-before mono">${esc(d.before ?? '')}</td><td class="diff-after mono">${esc(d.after ?? '')}</td></tr>`).join('') + '</table>';
    }
    if (st.unchanged_callbacks) h += `<p class="muted">${st.unchanged_callbacks} callbacks since left it unchanged</p>`;
    if (st.truncated) h += '<p class="muted" id="state-truncated">cut by the capture limits where it says “… N more”; the diff covers what was kept</p>';
    if (st.change_note) h += `<p class="muted">${esc(st.change_note)}</p>`;
    if (st.degraded) h += `<p class="warn" id="state-degraded">${esc(st.degraded)}</p>`;
  } else {
    h += '<p class="muted" id="state-none">No state recorded for this process by T (record with --state MODULE to capture it).</p>';
  }

  const msgs = (list) => list.map((m) => `<li>${evLink(m.event, m.at, r.pid)} ${m.from ? `from ${procLink(m.from)} ` : ''}<code>${esc(m.message)}</code></li>`).join('');
  h += `<h2>Mailbox at T</h2>`;
  if (!mb.in_flight.length && !mb.unhandled.length) h += '<p class="muted">empty</p>';
  if (mb.in_flight.length) h += `<p>sent, not yet received:</p><ul class="list" id="mailbox-in-flight">${msgs(mb.in_flight)}</ul>`;
  if (mb.unhandled.length) h += `<p>received, not yet handled:</p><ul class="list" id="mailbox-unhandled">${msgs(mb.unhandled)}</ul>`;

  h += '<h2>Call stack at T</h2>';
  if (!r.stack.frames.length) h += '<p class="muted">no traced call running</p>';
  else h += `<ol class="list" id="stack">${r.stack.frames.map((f) => `<li>${evLink(f.call_event, f.mfa, r.pid)} <span class="muted">for ${esc(f.running_for)}</span>${f.arguments ? ` <code>${esc(f.arguments)}</code>` : ''}</li>`).join('')}</ol>`;
  if (r.stack.partial) h += '<p class="muted">(outer frames lie further back than was read)</p>';
  el.innerHTML = h;
  bindTerms(el);
  bindJumps(el);
  el.dataset.pid = pid;
  el.dataset.at = at;
  document.body.dataset.inspected = `${pid}@${at}`;
}

// ---- the event inspector ------------------------------------------------------------------

export async function showEvent() {
  const el = $('#panel-event');
  if (!ui.cursor) { el.innerHTML = '<p class="muted">Step or click a mark to inspect an event.</p>'; return; }
  const e = ui.cursor.event && ui.cursor.event.time ? ui.cursor.event : await sapi(`events/${ui.cursor.id}`);
  let h = `<h2>Event #${e.id} <span class="kind ${kindClass(e.kind)}">${esc(e.kind)}</span></h2>`;
  h += `<p id="event-summary">${esc(e.summary)}</p><dl class="kv">`;
  h += `<dt>at</dt><dd>${esc(e.at)} (${esc(e.time)})</dd><dt>node</dt><dd>${esc(e.node)}</dd>`;
  if (e.pid) h += `<dt>process</dt><dd>${procLink(e.pid)} ${esc(e.name ?? '')}</dd>`;
  if (e.peer) h += `<dt>peer</dt><dd>${procLink(e.peer)} ${esc(e.peer_name ?? '')}</dd>`;
  if (e.mfa) h += `<dt>MFA</dt><dd>${esc(e.mfa)}</dd>`;
  if (e.duration_ns !== undefined) h += `<dt>duration</dt><dd>${(e.duration_ns / 1e3).toFixed(1)} µs</dd>`;
  if (e.depth !== undefined) h += `<dt>stack depth</dt><dd>${e.depth}</dd>`;
  if (e.count !== undefined) h += `<dt>count</dt><dd>${e.count}</dd>`;
  if (e.link !== undefined) h += `<dt>related</dt><dd>${evLink(e.link, `#${e.link}`, e.pid)}</dd>`;
  h += '</dl>';
  if (e.term !== undefined) h += `<h2>Term</h2>${termView(e.term, 'event-term')}`;
  if (e.term2 !== undefined) h += `<h2>Second term</h2>${termView(e.term2, 'event-term2')}`;
  el.innerHTML = h;
  bindTerms(el);
  bindJumps(el);
  el.dataset.event = e.id;
}

// ---- the session overview -------------------------------------------------------------------

export async function showOverview() {
  const el = $('#panel-overview');
  const o = ui.overview;
  let h = `<h2>Session ${esc(o.session)}</h2><dl class="kv">`;
  h += `<dt>status</dt><dd>${esc(o.status)}</dd><dt>target</dt><dd>${esc(o.mode)} ${esc(o.target)}</dd>`;
  h += `<dt>nodes</dt><dd>${esc(o.nodes.join(', '))}</dd><dt>started</dt><dd>${esc(o.started)}</dd>`;
  h += `<dt>duration</dt><dd>${o.duration_s.toFixed(3)} s</dd><dt>events</dt><dd>${o.events} (${(o.disk_bytes / 1024).toFixed(1)} KiB, ${o.bytes_per_event.toFixed(1)} B/event)</dd>`;
  h += `<dt>processes</dt><dd>${o.processes_seen}</dd><dt>dropped</dt><dd>${o.dropped}</dd>`;
  if (o.cut_events) h += `<dt>cut by the limits</dt><dd>${o.cut_events} events</dd>`;
  for (const t of o.tracers) h += `<dt>tracer</dt><dd>${esc(t.node)}: ${esc(t.tracer)}${t.note ? ` (${esc(t.note)})` : ''}</dd>`;
  h += '</dl><h2>Events per kind</h2><table>' + Object.entries(o.counts).map(([k, n]) =>
    `<tr><td><span class="kind ${kindClass(k)}">${esc(k)}</span></td><td>${n}</td></tr>`).join('') + '</table>';
  h += `<h2>Crashes</h2>${o.crashes.length ? `<ul class="list" id="crashes">${o.crashes.map((c) =>
    `<li>${evLink(c.event, c.at, c.pid)} ${procLink(c.pid, `${c.pid} ${c.name ?? ''}`)}: <code>${esc(c.reason)}</code></li>`).join('')}</ul>` : '<p class="muted">none</p>'}`;
  h += `<h2>Trips</h2>${o.trips.length ? `<ul class="list">${o.trips.map((t) => `<li><code>${esc(JSON.stringify(t))}</code></li>`).join('')}</ul>` : '<p class="muted">none</p>'}`;
  if (o.degraded && o.degraded.length) h += `<h2>State capture degraded</h2><ul class="list" id="degraded">${o.degraded.map((d) =>
    `<li>${evLink(d.event, d.at, d.pid)} ${procLink(d.pid, `${d.pid} ${d.name ?? ''}`)} to level ${d.level}: ${esc(d.why)}</li>`).join('')}</ul>`;
  h += `<h2>Busiest processes</h2><ul class="list">${o.top_processes.map((p) =>
    `<li>${procLink(p.pid, `${p.pid} ${p.name ?? p.initial_call ?? ''}`)} — ${p.events} events</li>`).join('')}</ul>`;
  if (o.problems.length) h += `<h2>Damage</h2><ul class="list">${o.problems.map((p) => `<li>${esc(p)}</li>`).join('')}</ul>`;
  el.innerHTML = h;
  bindJumps(el);
}
