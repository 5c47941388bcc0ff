// Side panels over a range of time: the message sequence diagram of chosen
// processes, the call tree as a flame graph, and events found by the filter
// language the command line uses.

import { ui, sapi, esc, rel, moveTo, kindClass } from './app.js';

const $ = (sel) => document.querySelector(sel);
const windowRange = () => ({ from: rel(ui.view.from), to: rel(ui.view.to) });

// ---- message sequence diagram ---------------------------------------------------------

let seqPids = null;

export async function showSequence() {
  const el = $('#panel-sequence');
  const pids = seqPids ?? ui.pid ?? '';
  if (!pids) {
    el.innerHTML = '<p class="muted">Select a process (click its lane) to see its messages in the visible window.</p>';
    return;
  }
  const r = await sapi('sequence', { pids, ...windowRange(), limit: 300 });
  const cols = r.participants;
  const colX = new Map(cols.map((c, i) => [c.pid, 70 + i * 150]));
  const rowH = 24, top = 40;
  const width = 70 + cols.length * 150, height = top + r.messages.length * rowH + 20;
  let svg = `<svg id="sequence-svg" width="${width}" height="${height}" xmlns="http://www.w3.org/2000/svg">` +
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">' +
    '<path d="M 0 0 L 10 5 L 0 10 z" fill="#5e81ac"/></marker></defs>';
  cols.forEach((c) => {
    const x = colX.get(c.pid);
    svg += `<text x="${x}" y="16" text-anchor="middle">${esc(c.label.slice(0, 24))}</text>` +
      `<line class="life" x1="${x}" y1="24" x2="${x}" y2="${height}"/>`;
  });
  r.messages.forEach((m, i) => {
    const y = top + i * rowH;
    const x0 = colX.get(m.from), x1 = colX.get(m.to);
    if (x0 === undefined || x1 === undefined) return;
    const self = x0 === x1;
    svg += `<g class="msg-row" data-event="${m.send}">` +
      `<text x="6" y="${y + 4}" class="muted">${esc(rel(m.sent_ns).slice(0, 10))}</text>` +
      (self ? `<path class="msg" fill="none" d="M ${x0} ${y} h 30 v 10 h -28"/>`
        : `<line class="msg" x1="${x0}" y1="${y}" x2="${x1}" y2="${y + (m.receive !== undefined ? 8 : 0)}"${m.receive === undefined ? ' stroke-dasharray="4 3"' : ''}/>`) +
      `<text x="${(x0 + x1) / 2 + (self ? 40 : 0)}" y="${y - 3}" text-anchor="${self ? 'start' : 'middle'}">${esc(m.message.slice(0, 40))}</text></g>`;
  });
  svg += '</svg>';
  el.innerHTML = `<h2>Messages in the visible window</h2>` +
    `<form id="seq-form"><input id="seq-pids" value="${esc(pids)}" title="processes, comma-separated" spellcheck="false"> <button>show</button></form>` +
    `<p class="muted">${r.messages.length} messages${r.truncated ? ' (first 300; zoom in for the rest)' : ''}; dashed: not received in view. Click one to go to it.</p>${svg}`;
  $('#seq-form').onsubmit = (ev) => { ev.preventDefault(); seqPids = $('#seq-pids').value.trim() || null; showSequence(); };
  el.querySelectorAll('.msg-row').forEach((g) => g.addEventListener('click', () => moveTo(+g.dataset.event, { reveal: true })));
  el.dataset.messages = r.messages.length;
}

// ---- flame graph ----------------------------------------------------------------------------

let flameScope = 'process';

export async function showFlame() {
  const el = $('#panel-flame');
  const pid = flameScope === 'process' ? ui.pid : null;
  const g = await sapi('flame', { pid, ...windowRange() });
  const rowH = 20;
  const x = new Array(g.nodes.length).fill(0);
  let nextRoot = 0;
  const total = Math.max(1, g.total_ns);
  let html = '', maxDepth = 0;
  g.nodes.forEach((n, i) => {
    if (n.parent === undefined || n.parent === null) { x[i] = nextRoot; nextRoot += n.total_ns / total; }
    let cx = x[i];
    for (const c of n.children) { x[c] = cx; cx += g.nodes[c].total_ns / total; }
    maxDepth = Math.max(maxDepth, n.depth);
    const w = n.total_ns / total;
    if (w < 0.002) return;
    const hue = 20 + ((n.mfa_id * 47) % 40);
    html += `<div class="flame-node" style="left:${(x[i] * 100).toFixed(3)}%;width:${(w * 100).toFixed(3)}%;top:${n.depth * rowH}px;background:hsl(${hue},70%,62%)" ` +
      `title="${esc(n.mfa)} — ${n.calls} calls, ${(n.total_ns / 1e6).toFixed(3)} ms total, ${(n.self_ns / 1e6).toFixed(3)} ms self">${esc(n.mfa)}</div>`;
  });
  el.innerHTML = `<h2>Where the time of traced calls went</h2>` +
    `<p><label><input type="radio" name="flame-scope" value="process"${flameScope === 'process' ? ' checked' : ''}> ${esc(ui.pid ?? 'selected process')}</label> ` +
    `<label><input type="radio" name="flame-scope" value="all"${flameScope === 'all' ? ' checked' : ''}> whole session</label> · visible window</p>` +
    `<p class="muted">${g.calls} calls, ${(g.total_ns / 1e6).toFixed(3)} ms${g.open_calls ? `, ${g.open_calls} still running` : ''}` +
    `${g.unmatched_returns ? `, ${g.unmatched_returns} returns without their call` : ''}${g.sample > 1 ? `, calls of 1 process in ${g.sample} kept` : ''}</p>` +
    (g.nodes.length ? `<div id="flame-chart" style="height:${(maxDepth + 1) * rowH + 4}px">${html}</div>` +
      `<h2>Call tree</h2><table id="call-tree"><tr><th>function</th><th>calls</th><th>total</th><th>self</th></tr>` +
      g.nodes.slice(0, 300).map((n) => `<tr><td class="mono" style="padding-left:${8 + n.depth * 14}px">${esc(n.mfa)}</td>` +
        `<td>${n.calls}</td><td>${(n.total_ns / 1e6).toFixed(3)} ms</td><td>${(n.self_ns / 1e6).toFixed(3)} ms</td></tr>`).join('') +
      `</table>${g.nodes.length > 300 ? `<p class="muted">first 300 of ${g.nodes.length} nodes</p>` : ''}`
      : '<p class="muted">no traced calls here (record with --trace MFA)</p>');
  el.querySelectorAll('input[name=flame-scope]').forEach((r) => { r.onchange = () => { flameScope = r.value; showFlame(); }; });
  el.dataset.calls = g.calls;
  el.dataset.scope = `${flameScope} ${g.from}…${g.to}`;
}

// ---- events by filter ------------------------------------------------------------------------

export async function showEvents() {
  const el = $('#panel-events');
  const page = await sapi('events', { q: ui.query, limit: 300 });
  const rows = page.events.map((e) =>
    `<li class="clickable${ui.cursor && ui.cursor.id === e.id ? ' current' : ''}" data-id="${e.id}" data-pid="${esc(e.pid ?? '')}">` +
    `<span class="muted mono">#${e.id} ${esc(e.at)}</span> <span class="kind ${kindClass(e.kind)}">${esc(e.kind)}</span> ` +
    `${esc(e.pid ?? '')} ${esc(e.name ?? '')} — ${esc(e.summary)}</li>`).join('');
  el.innerHTML = `<h2>Events${ui.query ? ` matching <code>${esc(ui.query)}</code>` : ''}</h2>` +
    `<p class="muted" id="events-count">${page.matched}${page.truncated ? '+' : ''} matched${page.truncated ? `, first ${page.events.length} shown` : ''}</p>` +
    `<ul class="list" id="events-list">${rows}</ul>`;
  el.querySelectorAll('li[data-id]').forEach((li) => li.addEventListener('click', () =>
    moveTo(+li.dataset.id, { reveal: true, pid: li.dataset.pid || undefined })));
  el.dataset.matched = page.matched;
}
