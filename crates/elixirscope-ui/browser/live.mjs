// Opens a session that is still recording and watches live mode: the event
// count and the timeline must follow the capture. Samples the page until it
// has seen the count rise RISES times, the timeline refetch and the window
// move, or SECONDS have passed; prints what it saw as JSON.
//
//   node live.mjs BASE_URL SESSION OUT_DIR SECONDS [RISES]

import { launch, shot } from './browser.mjs';

const [base, session, outDir, seconds, rises] = process.argv.slice(2);
const { browser, page, errors } = await launch();
await page.goto(`${base}/#/s/${encodeURIComponent(session)}`);
await page.waitForSelector('#live-badge:not([hidden])');
const samples = [];
const until = Date.now() + 1000 * (+seconds || 30);
const wantRises = +rises || 3;
const seen = () => {
  const first = samples[0];
  const last = samples[samples.length - 1];
  let up = 0;
  for (let i = 1; i < samples.length; i++) if (samples[i].events > samples[i - 1].events) up++;
  return up >= wantRises && last.timeline_requests > first.timeline_requests && last.window !== first.window;
};
do {
  samples.push(await page.evaluate(() => ({
    events: +(document.body.dataset.liveEvents || 0),
    timeline_requests: +(document.body.dataset.timelineSeq || 0),
    window: document.querySelector('#window-info').textContent,
  })));
  if (seen()) break;
  await page.waitForTimeout(200);
} while (Date.now() < until);
const screenshot = await shot(page, outDir, 'live');
await browser.close();
console.log(JSON.stringify({ samples, errors, screenshot }));
