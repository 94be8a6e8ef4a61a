// The gateway's /docs page in a real headless Chromium: it loads with no
// request leaving the gateway, lists every operation of /openapi.json, and
// "Try it out" on GET /healthz gets a 200. Leaves a screenshot behind.
//
//   GATEWAY_URL=http://127.0.0.1:5000 SCREENSHOT=out.png node --test docs.test.mjs
// (run.sh starts a stack and does this.)

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

const gateway = process.env.GATEWAY_URL;
assert.ok(gateway, 'set GATEWAY_URL');
const screenshot = process.env.SCREENSHOT;

let context;
let page;
let userDataDir;
const requests = [];

before(async () => {
  userDataDir = mkdtempSync(join(tmpdir(), 'bookstore-chromium-'));
  // No internet here (nor behind our users' firewalls): nothing that
  // phones home, and a fresh profile.
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
  });
  context.on('request', (request) => requests.push(request.url()));
  page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`${gateway}/docs`, { waitUntil: 'load' });
});

after(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

test('the page loads with the API title', async () => {
  await page.locator('.swagger-ui .info .title').waitFor({ timeout: 15_000 });
  assert.match(await page.locator('.swagger-ui .info .title').innerText(), /Bookstore REST API/);
});

test('every operation of the document is listed', async () => {
  const document = await (await fetch(`${gateway}/openapi.json`)).json();
  const expected = [];
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of ['get', 'post', 'put', 'patch', 'delete']) {
      if (item[method]) expected.push(`${method.toUpperCase()} ${path}`);
    }
  }
  assert.ok(expected.length >= 11, `only ${expected.length} operations in the document`);
  await page.locator('.opblock').first().waitFor();
  const listed = await page.locator('.opblock-summary').evaluateAll((summaries) =>
    summaries.map((summary) => {
      const method = summary.querySelector('.opblock-summary-method')?.textContent.trim();
      const path = summary.querySelector('.opblock-summary-path')?.getAttribute('data-path');
      return `${method} ${path}`;
    }),
  );
  assert.deepEqual([...listed].sort(), [...expected].sort());
});

test('"Try it out" on GET /healthz gets a 200', async () => {
  const operation = page.locator('.opblock-get').filter({
    has: page.locator('.opblock-summary-path[data-path="/healthz"]'),
  });
  await operation.locator('.opblock-summary').click();
  await operation.getByRole('button', { name: 'Try it out' }).click();
  await operation.getByRole('button', { name: 'Execute' }).click();

  const status = operation.locator('.live-responses-table .response .response-col_status').first();
  await status.waitFor({ timeout: 15_000 });
  assert.equal((await status.innerText()).trim(), '200');
  const body = await operation.locator('.live-responses-table .response-col_description pre').first().innerText();
  assert.deepEqual(JSON.parse(body), { status: 'ok' });

  if (screenshot) {
    await operation.scrollIntoViewIfNeeded();
    await page.screenshot({ path: screenshot, fullPage: true });
  }
});

test('no request left the gateway', () => {
  const foreign = requests.filter((url) => !url.startsWith(`${gateway}/`) && !url.startsWith('data:'));
  assert.deepEqual(foreign, []);
  assert.ok(requests.some((url) => url.endsWith('/openapi.json')), requests.join('\n'));
  assert.ok(requests.some((url) => url.endsWith('/healthz')), requests.join('\n'));
});
