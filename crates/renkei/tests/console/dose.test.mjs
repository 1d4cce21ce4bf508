// Drives the console's dose pages in Debian's headless Chromium: a facility's radiographer
// sees the distribution per device against the DRL, the histogram, each device's monthly
// trend and the workload (drawn by Chart.js), the exams over the DRL flagged, the alerts,
// and a patient's history; the benchmark across facilities appears only for an
// administrator. On the settings page the facility's uploader sets and removes a threshold,
// a viewer is told why it may not, and an administrator confirms a suggested DRL category.
//
// usage: node dose.test.mjs BASE_URL EAST_TOKEN SCREENSHOT_DIR ADMIN_TOKEN UPLOADER_TOKEN
import { check, launch, login as loginPage } from "./browser.mjs";

const [base, east, shots, admin, uploader] = process.argv.slice(2);

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
  // The page drawn again for the category (not the first one, still in place for a moment).
  await radiographer.waitForFunction(() => document.querySelector("[data-testid=dose-category]")?.value === "ct.head"
    && document.querySelector("[data-testid=dose-workload][data-drawn]"));
  check((await drawn(radiographer, "dose-by-device")) >= 3, "a box per device: quartiles, median, ends");
  check((await drawn(radiographer, "dose-histogram")) > 0, "a histogram");
  check((await drawn(radiographer, "dose-trend")) > 0, "a monthly trend");
  const trendLines = await radiographer.evaluate(() => document.querySelector("[data-testid=dose-trend]").chart.data.datasets.length);
  check(trendLines === 2, `a line per device and the DRL: ${trendLines}`);
  check((await drawn(radiographer, "dose-workload")) === 1, "the workload: the head CT's weekday and hour");
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

  // Settings: a viewer may look but not set; the uploader sets a threshold and removes it.
  await radiographer.goto(`${base}/#/dose-settings`);
  await radiographer.waitForSelector("[data-testid=rule]");
  check((await radiographer.locator("[data-testid=mapping-confirm]").count()) === 0, "only administrators confirm mappings");
  await radiographer.fill("[data-testid=dose-operator]", "田中 技師");
  await radiographer.fill("[data-testid=rule-threshold]", "60");
  await radiographer.click("[data-testid=rule-form] button[type=submit]");
  await radiographer.waitForSelector("[data-testid=dose-settings-message].error");
  check((await radiographer.textContent("[data-testid=dose-settings-message]")).includes("viewer"), "the viewer is told why");

  const lead = await login(uploader);
  await lead.goto(`${base}/#/dose-settings`);
  await lead.waitForSelector("[data-testid=rule]");
  const rules = await lead.locator("[data-testid=rule]").count();
  await lead.fill("[data-testid=dose-operator]", "佐藤 技師長");
  await lead.selectOption("[data-testid=rule-metric]", "ctdivol");
  await lead.fill("[data-testid=rule-threshold]", "60");
  await lead.click("[data-testid=rule-form] button[type=submit]");
  await lead.waitForFunction((n) => document.querySelectorAll("[data-testid=rule]").length === n + 1, rules);
  const added = lead.locator("[data-testid=rule]", { hasText: "CTDIvol" });
  check((await added.textContent()).includes("佐藤 技師長"), "the threshold, with who set it");
  await lead.fill("[data-testid=dose-operator]", "佐藤 技師長");
  await added.locator("[data-testid=rule-remove]").click();
  await lead.waitForFunction((n) => document.querySelectorAll("[data-testid=rule]").length === n, rules);

  const administrator = await login(admin);
  await administrator.goto(`${base}/#/dose?kind=ct&category=ct.head&metric=ctdivol`);
  await administrator.waitForSelector("[data-testid=dose-benchmark][data-drawn]");
  check((await drawn(administrator, "dose-benchmark")) >= 1, "the benchmark across facilities");
  check((await administrator.textContent("[data-testid=dose-benchmark-devices]")).includes("east"), "with each facility's devices");
  await administrator.screenshot({ path: `${shots}/dose-benchmark.png`, fullPage: true });

  // The chest CT's description has no category yet: the suggestion comes first, marked.
  await administrator.goto(`${base}/#/dose-settings`);
  const chest = administrator.locator("[data-testid=unmapped]", { hasText: "胸部CT" });
  await chest.waitFor();
  const suggested = await chest.locator("[data-testid=mapping-category] option").first().textContent();
  check(suggested.startsWith("★"), `a suggested category first: ${suggested}`);
  await administrator.fill("[data-testid=dose-operator]", "鈴木 技師長");
  await chest.locator("[data-testid=mapping-confirm]").click();
  const confirmed = administrator.locator("[data-testid=mapping]", { hasText: "胸部CT" });
  await confirmed.waitFor();
  check((await confirmed.textContent()).includes(suggested.slice(2)), "confirmed as suggested");
  check((await administrator.locator("[data-testid=unmapped]", { hasText: "胸部CT" }).count()) === 0, "and no longer unmapped");
  await administrator.screenshot({ path: `${shots}/dose-settings.png`, fullPage: true });
  console.log("dose console ok");
} finally {
  await browser.close();
}
