// Opens a page in the system's headless Chromium (playwright-core, no browser download), waits
// for the page to finish sampling, and writes what its canvas holds (and a screenshot).
//   node drive.mjs URL OUT.json [SCREENSHOT.png]
import { writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [url, out, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 420 } });
  await page.goto(url);
  await page.waitForFunction(() => window.ganpackDone || window.ganpackError, null, { timeout: 60000 });
  const error = await page.evaluate(() => window.ganpackError);
  if (error) throw new Error(error);
  writeFileSync(out, JSON.stringify(await page.evaluate(() => window.ganpack)));
  if (screenshot) await page.screenshot({ path: screenshot });
} finally {
  await browser.close();
}
