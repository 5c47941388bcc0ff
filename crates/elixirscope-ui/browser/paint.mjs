// For the UI benchmark: opens a session's timeline in headless Chromium and
// reports time to first paint, then fetch-and-draw times while zooming in
// step by step (each step halves the window) and while panning.
//
//   node paint.mjs BASE_URL SESSION

import { launch } from './browser.mjs';

const [base, session] = process.argv.slice(2);
const { browser, page, errors } = await launch();
await page.goto(`${base}/#/s/${encodeURIComponent(session)}`);
await page.waitForFunction(() => document.body.dataset.timelineSeq);
const firstPaintMs = await page.evaluate(() => performance.now());
const seq = () => page.evaluate(() => +document.body.dataset.timelineSeq);
const sample = () => page.evaluate(() => ({
  ms: +document.body.dataset.timelineMs,
  detail: document.body.dataset.timelineDetail === 'true',
  window: document.querySelector('#window-info').textContent,
}));

async function after(action) {
  const before = await seq();
  await action();
  await page.waitForFunction((b) => +document.body.dataset.timelineSeq > b, before);
  await page.waitForTimeout(30);
  return sample();
}

const zoom = [];
for (let i = 0; i < 20; i++) zoom.push(await after(() => page.keyboard.press('+')));
const box = await page.locator('#timeline').boundingBox();
const pans = [];
for (let i = 0; i < 8; i++) {
  pans.push(await after(async () => {
    await page.mouse.move(box.x + box.width * 0.7, box.y + 200);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.5, box.y + 200, { steps: 4 });
    await page.mouse.up();
  }));
}
await browser.close();
console.log(JSON.stringify({ first_paint_ms: firstPaintMs, zoom, pans, errors }));
