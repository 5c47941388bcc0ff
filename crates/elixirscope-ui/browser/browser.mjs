// Starts headless Chromium (Debian's, or $CHROMIUM) through playwright-core
// and collects the page's script errors, for the UI tests and benchmark.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

export async function launch() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) {
    console.error(`error: Chromium is not at ${executablePath}; run \`make test\` (it installs Debian's chromium) or set CHROMIUM`);
    process.exit(2);
  }
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu'] });
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.setDefaultTimeout(20000);
  return { browser, page, errors };
}

/** Writes a screenshot of the page as OUT_DIR/NAME.png and returns its path. */
export async function shot(page, outDir, name) {
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}
