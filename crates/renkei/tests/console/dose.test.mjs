// Drives the console's dose pages in Debian's headless Chromium: a facility's radiographer
// sees the distribution per device against the DRL, the histogram and the monthly trend
// (drawn by Chart.js), the exams over the DRL flagged, the alerts, and a patient's history;
// the benchmark across facilities appears only for an administrator.
//
// usage: node dose.test.mjs BASE_URL EAST_TOKEN SCREENSHOT_DIR ADMIN_TOKEN
import { check, launch, login as loginPage } from "./browser.mjs";

const [base, east, shots, admin] = process.argv.slice(2);

const browser = await launch();
try {
  const login = (token) => loginPage(browser, base, token, { width: 1300, height: 1400 });
  const drawn = async (page, testid) => Number(await page.getAttribute(`[data-testid=${testid}]`, "data-drawn"));

  const radiographer = await login(east);
  await radiographer.click("[data-testid=nav-dose]");
  await radiographer.waitForSelector("[data-testid=dose-by-device][data-drawn]");
  await radiographer.selectOption("[data-testid=dose-category]", "ct.head");
  await radiographer.selectOption("[data-testid=dose-metric]", "ctdivol");
  await radiographer.click("[data-testid=dose-filter] button[type=submit]");
  await radiographer.waitForFunction(() => location.hash.includes("category=ct.head"));
  await radiographer.waitForSelector("[data-testid=dose-exam]");
  check((await drawn(radiographer, "dose-by-device")) >= 3, "a box per device: quartiles, median, ends");
  check((await drawn(radiographer, "dose-histogram")) > 0, "a histogram");
  check((await drawn(radiographer, "dose-trend")) > 0, "a monthly trend");
  const chartLevel = await radiographer.evaluate(() =>
    document.querySelector("[data-testid=dose-by-device]").chart.data.datasets.find((d) => d.type === "line").data[0]);
  check(chartLevel === 67, `the 2025 head CT level drawn: ${chartLevel}`);
  check((await radiographer.locator("[data-testid=dose-exam].flagged").count()) === 1, "the exam over the DRL is flagged");
  check((await radiographer.textContent("[data-testid=dose-exams]")).includes("DRL超過"), "and says so");
  check((await radiographer.locator("[data-testid=dose-alert]").count()) >= 1, "the alerts list it");
  check((await radiographer.locator("[data-testid=dose-benchmark]").count()) === 0, "no benchmark for a facility");
  const forbidden = await radiographer.evaluate(async (token) => (await fetch("/api/dose/benchmark?category=ct.head&metric=dlp",
    { headers: { Authorization: `Bearer ${token}` } })).status, east);
  check(forbidden === 403, `the benchmark API refuses a facility: ${forbidden}`);
  await radiographer.screenshot({ path: `${shots}/dose.png`, fullPage: true });

  await radiographer.click("[data-testid=dose-exam].flagged");
  await radiographer.waitForSelector("[data-testid=history-exam]");
  check((await drawn(radiographer, "dose-history")) >= 1, "the history chart");
  check((await radiographer.textContent("[data-testid=history-totals]")).includes("1,600"), "the DLP total");
  await radiographer.screenshot({ path: `${shots}/dose-history.png`, fullPage: true });

  const administrator = await login(admin);
  await administrator.goto(`${base}/#/dose?kind=ct&category=ct.head&metric=ctdivol`);
  await administrator.waitForSelector("[data-testid=dose-benchmark][data-drawn]");
  check((await drawn(administrator, "dose-benchmark")) >= 1, "the benchmark across facilities");
  check((await administrator.textContent("[data-testid=dose-benchmark-devices]")).includes("east"), "with each facility's devices");
  await administrator.screenshot({ path: `${shots}/dose-benchmark.png`, fullPage: true });
  console.log("dose console ok");
} finally {
  await browser.close();
}
