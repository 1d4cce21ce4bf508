// Drives the console's patient review in Debian's headless Chromium, as an administrator.
//
// usage: node mpi.test.mjs BASE_URL ADMIN_TOKEN SCREENSHOT_DIR PATIENT_ID EAST_RECORD
// Finds the review task of PATIENT_ID, opens the other record's person, comes back and
// accepts the pair as the same person; then, in EAST_RECORD's person view, unlinks west's
// W-901 and links it again by hand.
import { check, launch } from "./browser.mjs";

const [base, token, shots, patientId, eastRecord] = process.argv.slice(2);

const browser = await launch();
try {
  const page = await browser.newPage({ locale: "ja-JP", viewport: { width: 1200, height: 900 } });
  page.setDefaultTimeout(15000);
  await page.goto(`${base}/`);
  await page.fill("[data-testid=token]", token);
  await page.click("[data-testid=login] button[type=submit]");
  await page.waitForSelector("[data-testid=study-row]");

  // Administrators see the review queue.
  await page.click("[data-testid=nav-review]");
  const task = page.locator("[data-testid=review-task]", { hasText: patientId }).first();
  await task.waitFor();
  const terms = await task.locator("[data-testid=score-term]").allTextContents();
  check(terms.some((row) => row.startsWith("姓") && row.includes("不一致")), `the surname differs: ${terms}`);
  check(terms.some((row) => row.startsWith("生年月日") && row.includes("完全一致")), `the birth date agrees: ${terms}`);
  await page.screenshot({ path: `${shots}/review.png` });

  // The other side's person, with its records and links.
  const other = task.locator("[data-testid=record-a], [data-testid=record-b]").filter({ hasNotText: patientId });
  await other.locator("[data-testid=record-link]").click();
  await page.waitForSelector("[data-testid=person-record]");
  const records = await page.locator("[data-testid=person-record]").allTextContents();
  check(records.length >= 2, `the person has linked records: ${records}`);
  check((await page.locator("[data-testid=person-link]").count()) >= 1, "and their links");
  await page.screenshot({ path: `${shots}/person.png` });
  await page.goBack();

  // Accepting needs a reviewer and a reason.
  const again = page.locator("[data-testid=review-task]", { hasText: patientId }).first();
  await again.locator("[data-testid=accept]").click();
  check((await again.textContent()).includes("確認者と理由を入力してください。"), "a decision without a reason is refused");
  await page.fill("[data-testid=reviewer]", "clerk");
  await again.locator("[data-testid=reason]").fill("married 2024");
  await again.locator("[data-testid=accept]").click();
  await page.waitForSelector("[data-testid=recorded]");

  // In east's person view, the automatic link to west's variant record is undone, and
  // west's record linked again by hand.
  await page.goto(`${base}/#/person/${eastRecord}`);
  const auto = page.locator("[data-testid=person-link]", { hasText: "west/W-901" }).first();
  await auto.waitFor();
  await page.fill("[data-testid=person-reason]", "wrong chart");
  await auto.locator("[data-testid=unlink]").click();
  await page.waitForSelector("[data-testid=person-message]:has-text('記録しました')");
  await page.fill("[data-testid=link-facility]", "west");
  await page.fill("[data-testid=link-patient]", "W-901");
  await page.fill("[data-testid=person-reason]", "confirmed with the patient");
  await page.click("[data-testid=link-submit]");
  await page.waitForSelector("[data-testid=person-message]:has-text('記録しました')");
  console.log("review ok");
} finally {
  await browser.close();
}
