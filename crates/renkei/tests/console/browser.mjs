// What the console tests share: Debian's Chromium, headless, and a check that fails loudly.
import { chromium } from "playwright-core";

export const check = (condition, message) => {
  if (!condition) throw new Error(message);
};

export const launch = () => chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

// A page of its own (its own session) logged in with `token`, once the study list shows.
export const login = async (browser, base, token, viewport = { width: 1300, height: 900 }) => {
  const page = await browser.newPage({ locale: "ja-JP", viewport });
  page.setDefaultTimeout(15000);
  await page.goto(`${base}/`);
  await page.fill("[data-testid=token]", token);
  await page.click("[data-testid=login] button[type=submit]");
  await page.waitForSelector("[data-testid=study-row]");
  return page;
};

