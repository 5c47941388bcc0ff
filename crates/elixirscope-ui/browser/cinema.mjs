// Drives the UI on a recorded session in headless Chromium, the way a person
// would: sessions list, a deep link, keyboard stepping to state changes,
// playback, every tab, a search. Prints what it saw as one JSON document and
// writes a screenshot of each view into OUT_DIR.
//
//   node cinema.mjs BASE_URL SESSION PROCESS OUT_DIR

import { launch, shot } from './browser.mjs';

const [base, session, proc, outDir] = process.argv.slice(2);
const { browser, page, errors } = await launch();
const result = { points: [], errors, screenshots: [] };
const s = encodeURIComponent(session);

async function cursorId() {
  return (await page.textContent('#cursor-id')).trim();
}

/** Waits until the inspector shows PROCESS at the cursor, then reads it. */
async function capture(label) {
  const id = await cursorId();
  await page.waitForFunction(([p, i]) => document.body.dataset.inspected === `${p}@${i}`, [proc, id]);
  const state = (await page.$('#state-text')) ? await page.textContent('#state-text') : null;
  result.points.push({ label, id: +id, state });
}

async function press(key) {
  const before = await cursorId();
  await page.keyboard.press(key);
  await page.waitForFunction((b) => document.querySelector('#cursor-id').textContent.trim() !== b, before);
}

// The sessions list.
await page.goto(`${base}/#/`);
await page.waitForSelector(`#sessions-table tr[data-name="${session}"]`);
result.screenshots.push(await shot(page, outDir, 'sessions'));

// A deep link to the session with the process selected, then its whole timeline.
await page.goto(`${base}/#/s/${s}?pid=${encodeURIComponent(proc)}&tab=process`);
await page.waitForFunction((n) => document.body.dataset.session === n && document.body.dataset.timelineSeq, session);
result.screenshots.push(await shot(page, outDir, 'timeline'));

// Keyboard: the next three changes of the process's state, then two events on.
for (let i = 0; i < 3; i++) {
  await press('c');
  await capture(`change ${i + 1}`);
}
await press('ArrowRight');
await press('ArrowRight');
await capture('two events after the third change');
await press('C');
await capture('back to the previous change');

// Playback: play until T has moved three events on (or playback ran out of
// events and stopped itself), pause, read where T stopped.
const beforePlay = +(await cursorId());
await page.click('#btn-play');
await page.waitForFunction((b) => +document.querySelector('#cursor-id').textContent.trim() >= b + 3
  || document.body.dataset.playing === 'false', beforePlay);
if (await page.getAttribute('body', 'data-playing') === 'true') await page.click('#btn-play');
await page.waitForFunction(() => document.body.dataset.playing === 'false');
await capture('after playing');
result.played = +(await cursorId()) - beforePlay;
result.screenshots.push(await shot(page, outDir, 'process-inspector'));

// Zoom in around T until single events show: the window asked for last is drawn.
for (let i = 0; i < 6; i++) await page.keyboard.press('+');
await page.waitForFunction(() => document.body.dataset.timelineIdle === 'true'
  && document.body.dataset.timelineDetail === 'true');
result.screenshots.push(await shot(page, outDir, 'timeline-zoomed'));

// Only the processes active in the zoomed window, then all again.
const allLanes = +(await page.getAttribute('body', 'data-lanes'));
const seqBefore = +(await page.getAttribute('body', 'data-timeline-seq'));
await page.check('#active-only');
await page.waitForFunction((b) => +document.body.dataset.timelineSeq > b, seqBefore);
result.lanes = { all: allLanes, active: +(await page.getAttribute('body', 'data-lanes')) };
result.screenshots.push(await shot(page, outDir, 'timeline-active-lanes'));
await page.uncheck('#active-only');
await page.waitForFunction((n) => +document.body.dataset.lanes === n, allLanes);

// The event inspector.
await page.click('#tabs button[data-tab=event]');
await page.waitForSelector('#event-summary');
result.event = { id: +(await page.getAttribute('#panel-event', 'data-event')), summary: await page.textContent('#event-summary') };
result.screenshots.push(await shot(page, outDir, 'event-inspector'));

// Sequence diagram of the process in the window, flame graph of the session.
await page.click('#tabs button[data-tab=sequence]');
await page.waitForSelector('#panel-sequence[data-messages]');
result.sequence_messages = +(await page.getAttribute('#panel-sequence', 'data-messages'));
result.screenshots.push(await shot(page, outDir, 'sequence'));
await page.click('#btn-fit');
await page.click('#tabs button[data-tab=flame]');
await page.click('input[name=flame-scope][value=all]');
// The graph of the whole session over the whole window (an earlier render may still be on screen).
await page.waitForFunction(() => (document.querySelector('#panel-flame').dataset.scope || '').startsWith('all +0.000000s'));
await page.waitForSelector('#flame-chart');
result.flame_calls = +(await page.getAttribute('#panel-flame', 'data-calls'));
result.screenshots.push(await shot(page, outDir, 'flame'));

// Search with the CLI's filter language.
await page.fill('#search', `kind:state pid:${proc}`);
await page.press('#search', 'Enter');
await page.waitForSelector('#panel-events[data-matched]');
result.search_matched = +(await page.getAttribute('#panel-events', 'data-matched'));
result.screenshots.push(await shot(page, outDir, 'events'));
await page.click('#tabs button[data-tab=overview]');
await page.waitForSelector('#panel-overview h2');
result.screenshots.push(await shot(page, outDir, 'overview'));

// A deep link to the second point opens the same session, process and T.
const target = result.points[1];
const fresh = await browser.newPage({ viewport: { width: 1600, height: 900 } });
fresh.on('pageerror', (e) => errors.push(String(e)));
await fresh.goto(`${base}/#/s/${s}?t=${target.id}&pid=${encodeURIComponent(proc)}&tab=process`);
await fresh.waitForFunction(([p, i]) => document.body.dataset.inspected === `${p}@${i}`, [proc, String(target.id)]);
result.deep_link = {
  id: +(await fresh.textContent('#cursor-id')),
  state: (await fresh.$('#state-text')) ? await fresh.textContent('#state-text') : null,
  url: fresh.url(),
};

await browser.close();
console.log(JSON.stringify(result));
