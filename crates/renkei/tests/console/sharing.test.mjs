// Drives the console's sharing pages in Debian's headless Chromium: east publishes a study
// to west, west links its patient to the referral and sees the study under its own
// patient, east revokes it, west opens emergency access, and an administrator reviews that
// access.
//
// usage: node sharing.test.mjs BASE_URL EAST_TOKEN SCREENSHOT_DIR WEST_TOKEN ADMIN_TOKEN STUDY_UID
import { check, launch, login as loginPage } from "./browser.mjs";

const [base, east, shots, west, admin, study] = process.argv.slice(2);

const browser = await launch();
try {
  // Each page is its own browser context: its own session, its own token.
  const login = (token) => loginPage(browser, base, token);
  const sharedRows = async (page) => {
    await page.goto(`${base}/#/studies?r=${Date.now()}`);
    await page.waitForSelector("[data-testid=study-row]");
    return page.locator("[data-testid=study-row]", { has: page.locator("[data-testid=shared-from]") });
  };

  // East publishes the study to west, with the patient's consent.
  const eastPage = await login(east);
  await eastPage.goto(`${base}/#/study/${study}`);
  await eastPage.waitForSelector("[data-testid=publish]");
  await eastPage.click("[data-testid=publish-submit]");
  check((await eastPage.textContent("[data-testid=publish-message]")).includes("すべての項目"), "every field is required");
  await eastPage.check("[data-testid=publish-to-west]");
  const tomorrow = new Date(Date.now() + 86400000).toISOString().slice(0, 10);
  await eastPage.fill("[data-testid=publish-until]", tomorrow);
  await eastPage.fill("[data-testid=consent-by]", "本人");
  await eastPage.fill("[data-testid=consent-scope]", "紹介先への画像共有");
  await eastPage.fill("[data-testid=publisher]", "dr.tanaka");
  await eastPage.click("[data-testid=publish-submit]");
  await eastPage.waitForSelector("[data-testid=publish-message]:has-text('公開しました')");
  await eastPage.screenshot({ path: `${shots}/publish.png` });

  // West has her under her married name, not linked: nothing to see yet. Its clerk finds
  // the referral among the candidates and links west's record to it.
  const westPage = await login(west);
  check((await (await sharedRows(westPage)).count()) === 0, "not linked → invisible");
  await westPage.click("[data-testid=nav-referral]");
  await westPage.fill("[data-testid=ref-family-kanji]", "佐藤");
  await westPage.fill("[data-testid=ref-given-kanji]", "花子");
  await westPage.fill("[data-testid=ref-family-kana]", "サトウ");
  await westPage.fill("[data-testid=ref-given-kana]", "ハナコ");
  await westPage.fill("[data-testid=ref-birth-date]", "1980-01-02");
  await westPage.click("[data-testid=referral] button[type=submit]");
  await westPage.waitForSelector("[data-testid=ref-referred-row]");
  check((await westPage.textContent("[data-testid=ref-own]")).includes("W-903"), "west's own candidate");
  check((await westPage.textContent("[data-testid=ref-referred]")).includes("E-001"), "east's published patient");
  await westPage.click("[data-testid=ref-link-E-001]");
  check((await westPage.textContent("[data-testid=ref-message]")).includes("自施設の患者を選んでください"), "choose ours first");
  await westPage.check("[data-testid=ref-own-W-903]");
  await westPage.fill("[data-testid=ref-operator]", "clerk");
  await westPage.fill("[data-testid=ref-reason]", "紹介状で本人確認（旧姓 高田）");
  await westPage.click("[data-testid=ref-link-E-001]");
  await westPage.waitForSelector("[data-testid=ref-message]:has-text('名寄せしました')");
  await westPage.screenshot({ path: `${shots}/referral.png` });

  // Once the matcher has joined them, west sees east's study under its own patient.
  let row = "";
  for (let tries = 0; tries < 40 && !row; tries++) {
    const shared = await sharedRows(westPage);
    if (await shared.count()) row = await shared.first().textContent();
    else await westPage.waitForTimeout(250);
  }
  check(row.includes("W-903") && row.includes("East Hospital") && !row.includes("E-001"), `under west's patient: ${row}`);
  await westPage.screenshot({ path: `${shots}/shared.png` });

  // East revokes it (a reason is required); west no longer sees it.
  await eastPage.click("[data-testid=nav-sharing]");
  const publication = eastPage.locator("[data-testid=publication]").first();
  check((await publication.textContent()).includes("公開中"), "the publication is current");
  await eastPage.fill("[data-testid=operator]", "dr.tanaka");
  await publication.locator("[data-testid=revoke-reason]").fill("同意撤回");
  await publication.locator("[data-testid=revoke]").click();
  await eastPage.waitForSelector("[data-testid=publication]:has-text('取消済み')");
  check((await (await sharedRows(westPage)).count()) === 0, "revoked → invisible");

  // West's clinician opens emergency access for its patient: east's study is back, flagged.
  await westPage.click("[data-testid=nav-sharing]");
  await westPage.fill("[data-testid=break-glass-patient]", "W-903");
  await westPage.fill("[data-testid=break-glass-by]", "dr.kato");
  await westPage.click("[data-testid=break-glass-open]");
  check((await westPage.textContent("[data-testid=break-glass-message]")).includes("すべての項目"), "a reason is required");
  await westPage.fill("[data-testid=break-glass-reason]", "脳卒中で救急搬送");
  await westPage.click("[data-testid=break-glass-open]");
  await westPage.waitForSelector("[data-testid=break-glass-message]:has-text('緊急閲覧を開始しました')");
  await westPage.screenshot({ path: `${shots}/break-glass.png` });
  await (await sharedRows(westPage)).first().waitFor();

  // The administrator sees the flagged access and its trail, and marks it reviewed.
  const adminPage = await login(admin);
  await adminPage.click("[data-testid=nav-sharing]");
  const flagged = adminPage.locator("[data-testid=break-glass]", { hasText: "脳卒中で救急搬送" });
  await flagged.waitFor();
  await adminPage.waitForSelector("[data-testid=access].flagged");
  await adminPage.screenshot({ path: `${shots}/audit.png` });
  await adminPage.fill("[data-testid=operator]", "security officer");
  await flagged.locator("[data-testid=review-note]").fill("救急記録と照合済み");
  await flagged.locator("[data-testid=mark-reviewed]").click();
  await adminPage.waitForSelector("[data-testid=break-glass]", { state: "detached" });

  // West's clinician ends the emergency access: east's study is gone again.
  await westPage.click("[data-testid=nav-sharing]");
  const access = westPage.locator("[data-testid=break-glass]").first();
  await westPage.fill("[data-testid=operator]", "dr.kato");
  await access.locator("[data-testid=close-reason]").fill("転院完了");
  await access.locator("[data-testid=close]").click();
  await westPage.waitForSelector("[data-testid=break-glass] [data-testid=close]", { state: "detached" });
  check((await (await sharedRows(westPage)).count()) === 0, "closed → invisible");
  console.log("sharing ok");
} finally {
  await browser.close();
}
