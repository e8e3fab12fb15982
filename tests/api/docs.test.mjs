// /docs in a real browser: headless Chromium (Debian's) opens the page that
// `make dev` serves, sees every route of the API listed, and "Try it out" on
// GET /users shows the seeded users. A screenshot goes to $SCREENSHOT.
//
//   DOCS_URL=http://127.0.0.1:9000/docs node --test tests/api/docs.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const url = process.env.DOCS_URL;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

test('the docs page lists the routes and "Try it out" on GET /users shows users', async () => {
  assert.ok(url, 'DOCS_URL names the /docs page to open');
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    // This machine has no network beyond loopback: keep Chromium from trying.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    const failed = [];
    page.on('requestfailed', (request) => failed.push(request.url()));
    // cargo lambda watch now and then answers a large response (this page is
    // 1.9 MB) with a 500 of its own, before or after the function answered
    // 200; its body is then watch's problem+json, never ours. Try again then.
    let response = await page.goto(url);
    for (let retry = 0; retry < 3 && response.status() === 500; retry += 1) {
      const body = await response.text();
      assert.match(body, /httpstatuses\.com\/500/, `a 500 of the function's own: ${body}`);
      console.log(`watch answered /docs with its own 500; retrying (${body})`);
      response = await page.goto(url);
    }
    assert.equal(response.status(), 200);

    // The page renders from /openapi.json, which watch may answer with its
    // own 500 as well (a large response); and a Chromium just installed takes
    // its first start slowly. Load the page again, up to twice, if no
    // operation shows, saying what failed.
    const operations = page.locator('.opblock-summary');
    for (let load = 1; ; load += 1) {
      try {
        await operations.first().waitFor({ timeout: 30_000 });
        break;
      } catch (err) {
        if (load === 3) throw err;
        console.log(`no operation shown after load ${load} (failed requests: ${failed.join(', ') || 'none'}); loading again`);
        await page.goto(url);
      }
    }
    const listed = (await page.locator('.opblock-summary-method, .opblock-summary-path').allInnerTexts())
      .map((text) => text.trim().replace(/\u200b/g, ''));
    const routes = [];
    for (let i = 0; i + 1 < listed.length; i += 2) routes.push(`${listed[i]} ${listed[i + 1]}`);
    assert.deepEqual(routes.sort(), [
      'DELETE /tasks/{task_id}', 'GET /async', 'GET /docs', 'GET /openapi.json', 'GET /tasks',
      'GET /tasks/{task_id}', 'GET /users', 'POST /async',
    ]);

    const users = page.locator('#operations-users-list_users');
    await users.locator('.opblock-summary').click();
    await users.getByRole('button', { name: 'Try it out' }).click();
    await users.locator('input[placeholder="limit"]').fill('5');
    await users.getByRole('button', { name: 'Execute' }).click();
    const body = users.locator('.responses-wrapper .live-responses-table .response-col_description pre').first();
    await body.waitFor({ timeout: 30_000 });
    const text = await body.innerText();
    const shown = JSON.parse(text);
    assert.equal(shown.users.length, 5, text);
    for (const user of shown.users) {
      assert.match(user.id, /^u\d\d$/);
      assert.ok(user.name && user.email, text);
    }
    assert.equal(await users.locator('.live-responses-table .response .response-col_status').first().innerText(), '200');
    assert.deepEqual(failed, [], 'every request of the page succeeded');

    if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  } finally {
    await browser.close();
  }
});
