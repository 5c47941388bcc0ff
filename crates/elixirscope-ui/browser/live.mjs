// Opens a session that is still recording and watches live mode: the event
// count and the timeline must follow the capture. Prints what it saw as JSON.
//
//   node live.mjs BASE_URL SESSION OUT_DIR SECONDS

import { launch, shot } from './browser.mjs';

const [base, session, outDir, seconds] = process.argv.slice(2);
const { browser, page, errors } = await launch();
await page.goto(`${base}/#/s/${encodeURIComponent(session)}`);
await page.waitForSelector('#live-badge:not([hidden])');
const samples = [];
const until = Date.now() + 1000 * (+seconds || 4);
while (Date.now() < until) {
  samples.push(await page.evaluate(() => ({
    events: +(document.body.dataset.liveEvents || 0),
    timeline_requests: +(document.body.dataset.timelineSeq || 0),
    window: document.querySelector('#window-info').textContent,
  })));
  await page.waitForTimeout(400);
}
const screenshot = await shot(page, outDir, 'live');
await browser.close();
console.log(JSON.stringify({ samples, errors, screenshot }));
