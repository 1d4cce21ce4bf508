// Drives the web console in Debian's headless Chromium and checks what is on the screen.
//
// usage: node console.test.mjs BASE_URL TOKEN SCREENSHOT_DIR
import { check, launch } from "./browser.mjs";

const [base, token, shots] = process.argv.slice(2);

const browser = await launch();
try {
  const page = await browser.newPage({ locale: "ja-JP", viewport: { width: 1200, height: 900 } });
  page.setDefaultTimeout(15000);
  await page.goto(`${base}/`);

  // A wrong token is refused, in Japanese.
  await page.fill("[data-testid=token]", "rk_not-a-token");
  await page.click("[data-testid=login] button[type=submit]");
  const refusal = await page.textContent("[data-testid=login-error]");
  check(refusal === "トークンが無効です。", `login error: ${refusal}`);

  await page.fill("[data-testid=token]", token);
  await page.click("[data-testid=login] button[type=submit]");
  await page.waitForSelector("[data-testid=study-row]");
  check((await page.textContent("main h2")) === "検査一覧", "the study list is titled in Japanese");

  // Search by kana finds the kanji name.
  await page.fill("[data-testid=search-PatientName]", "やまだ");
  await page.click("[data-testid=search] button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=study-row]").length === 3);
  const rows = await page.locator("[data-testid=study-row]").allTextContents();
  check(rows.every((row) => row.includes("山田 太郎")), `rows: ${rows}`);

  // A date range and a modality narrow it down.
  await page.fill("[data-testid=search-from]", "2024-01-01");
  await page.fill("[data-testid=search-ModalitiesInStudy]", "CT");
  await page.click("[data-testid=search] button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=study-row]").length === 1);
  await page.screenshot({ path: `${shots}/studies.png` });

  // The study page shows its series with thumbnails.
  await page.click("[data-testid=study-row]");
  await page.waitForSelector("[data-testid=series-card]");
  check((await page.locator("[data-testid=series-card]").count()) === 2, "CT and dose report series");
  await page.waitForFunction(() =>
    [...document.querySelectorAll("[data-testid=thumbnail]")].some((image) => image.naturalWidth > 0));
  await page.screenshot({ path: `${shots}/study.png` });

  // The viewer scrolls through the slices and applies window presets.
  await page.locator("[data-testid=series-card]", { hasText: "CT" }).click();
  await page.waitForFunction(() => {
    const image = document.querySelector("[data-testid=image]");
    return image && image.naturalWidth === 128;
  });
  check((await page.textContent("[data-testid=counter]")) === "画像 1 / 3", "three slices");
  await page.focus("[data-testid=stage]");
  await page.keyboard.press("ArrowDown");
  await page.waitForFunction(() => document.querySelector("[data-testid=counter]").textContent === "画像 2 / 3");
  await page.click("[data-testid=preset-presetLung]");
  await page.waitForFunction(() => (document.querySelector("[data-testid=image]").dataset.src || "").includes("window=-600,1500"));
  await page.waitForFunction(() => document.querySelector("[data-testid=image]").naturalWidth === 128);
  await page.screenshot({ path: `${shots}/viewer.png` });

  // English on demand.
  await page.click("[data-testid=language]");
  await page.waitForSelector("[data-testid=preset-presetLung]");
  check((await page.textContent("[data-testid=preset-presetLung]")) === "Lung", "English presets");
  check((await page.textContent("[data-testid=counter]")).startsWith("Image "), "English counter");
  console.log("console ok");
} finally {
  await browser.close();
}
