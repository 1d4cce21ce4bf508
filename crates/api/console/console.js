// Renkei's web console: search studies (other facilities' shared ones marked), browse
// series, view images, publish studies to other facilities and open emergency access; for
// administrators, the patient index's review queue and person view, flagged emergency
// accesses and the cross-facility access log. It speaks only the public DICOMweb and
// admin APIs with the user's bearer token, so it can do nothing the token cannot.

const TEXT = {
  ja: {
    subtitle: "画像ビューア", language: "English", logout: "ログアウト", login: "ログイン",
    token: "アクセストークン", loginHint: "管理者から受け取ったトークンを入力してください。",
    badToken: "トークンが無効です。", studies: "検査一覧", search: "検索", patientId: "患者ID",
    patientName: "患者氏名（漢字・かな・ローマ字）", dateFrom: "検査日（から）", dateTo: "検査日（まで）",
    modality: "モダリティ", date: "検査日", description: "検査内容", images: "画像数", noStudies: "該当する検査はありません。",
    back: "戻る", series: "シリーズ", image: "画像", window: "ウィンドウ", presetDefault: "標準", presetSoft: "軟部",
    presetLung: "肺野", presetBone: "骨", presetBrain: "脳", loading: "読み込み中…",
    review: "名寄せ確認", reviewer: "確認者", reason: "理由", same: "同一人物", different: "別人",
    recorded: "記録しました", noTasks: "確認待ちはありません。", probability: "一致確率", person: "人物",
    links: "リンク履歴", facility: "施設", birthDate: "生年月日", sex: "性別", field: "項目", level: "比較",
    weight: "重み", needReason: "確認者と理由を入力してください。", retired: "取消",
    grades: { certain: "確実", probable: "可能性高", possible: "可能性あり" },
    kinds: { auto: "自動", manual: "手動", candidate: "確認待ち", different: "別人" },
    sharing: "共有", origin: "提供元", sharedFrom: "共有", publish: "他施設へ公開", publishTo: "公開先",
    wholeGroup: "グループ全体", until: "公開期限", consentBy: "同意者", consentScope: "同意の範囲", publisher: "公開者",
    published: "公開しました", publications: "公開設定", revoke: "公開を取り消す", revoked: "取消済み", current: "公開中",
    notCurrent: "期間外", whole: "この患者の全検査", thisStudy: "この検査のみ", breakGlass: "緊急閲覧（ブレークグラス）",
    breakGlassHint: "自施設の患者に名寄せされた他施設の全検査を、理由を記録して閲覧します。すべての閲覧は記録され、管理者が確認します。",
    open: "緊急閲覧を開始", opened: "緊急閲覧を開始しました", hours: "時間", flagged: "確認待ちの緊急閲覧",
    reviewNote: "確認メモ", reviewed: "確認済み", markReviewed: "確認済みにする", accesses: "他施設データへのアクセス記録",
    viewer: "閲覧施設", study: "検査", kind: "種別", via: "経路", grant: "根拠", when: "日時", noneYet: "ありません。",
    needFields: "すべての項目を入力してください。", state: "状態", operator: "担当者", close: "終了する",
    referral: "紹介患者の名寄せ", familyKanji: "姓（漢字）", givenKanji: "名（漢字）", familyKana: "姓（カナ）",
    givenKana: "名（カナ）", female: "女", male: "男", other: "その他", ownRecords: "自施設の患者",
    referred: "他施設から公開された患者", linkThis: "選んだ自施設の患者と同一人物として名寄せ", linked: "名寄せしました",
    chooseOwn: "自施設の患者を選んでください。", grade: "一致度", noCandidates: "候補はありません。",
    unlink: "切り離す（別人）", withdraw: "判断を取り消す", linkRecord: "この人物に患者を名寄せ", link: "名寄せする",
    dose: "線量管理", doseKind: "種別", category: "DRL区分", metric: "指標", show: "表示", byDevice: "装置別の分布",
    histogram: "分布（ヒストグラム）", trend: "装置別・月別の中央値", drlLevel: "DRL", median: "中央値", exams: "検査数",
    recentExams: "最近の検査", overDrl: "DRL超過", patientHistory: "患者の線量履歴", cumulative: "累積",
    benchmark: "施設間ベンチマーク（管理者のみ）", csv: "CSV出力", alerts: "線量アラート（過去1年）", reasons: "理由",
    patientAlerts: "累積線量の超過", total: "合計", device: "装置", unmapped: "DRL区分が未設定の検査名",
    workload: "曜日・時間帯別の検査数", doseSettings: "DRL区分の対応付け・アラート閾値", mappings: "確定済みの対応付け",
    suggested: "候補", noCategory: "（該当なし）", confirm: "確定", confirmedBy: "確定者", thresholds: "アラート閾値",
    weeks: "期間（週。0は1検査ごと）", threshold: "閾値", save: "保存", remove: "削除", setBy: "設定者", saved: "保存しました",
    weekdays: ["日", "月", "火", "水", "木", "金", "土"],
    alertsPartial: "検査が多いため、新しい20万件のみ確認しました（それより前の検査のアラートは表示されていません）。",
    allCategories: "（すべて）", doseKinds: { ct: "CT", projection: "血管撮影・透視", mammography: "マンモグラフィ", nm: "核医学" },
    metrics: { ctdivol: "CTDIvol (mGy)", dlp: "DLP (mGy·cm)", dose_rp: "Ka,r (mGy)", dap: "PKA (Gy·cm²)", agd: "AGD (mGy)", activity: "投与量 (MBq)" },
    fields: { "family name": "姓", "given name": "名", "birth date": "生年月日", "sex": "性別" },
    levels: { missing: "なし", exact: "完全一致", "same reading": "同じ読み", "same reading, other kanji": "同じ読み・別の漢字",
      "kana typo, same kanji": "かなの誤り・同じ漢字", "same kanji, other reading": "同じ漢字・別の読み", "similar kana": "似たかな",
      different: "不一致", "era swapped": "元号の誤り", "one digit or day/month swapped": "1桁違い・月日の入れ替え", same: "一致" },
  },
  en: {
    subtitle: "image viewer", language: "日本語", logout: "Log out", login: "Log in",
    token: "Access token", loginHint: "Enter the token your administrator gave you.",
    badToken: "This token is not valid.", studies: "Studies", search: "Search", patientId: "Patient ID",
    patientName: "Patient name (kanji, kana or romaji)", dateFrom: "Study date from", dateTo: "Study date to",
    modality: "Modality", date: "Date", description: "Description", images: "Images", noStudies: "No studies found.",
    back: "Back", series: "Series", image: "Image", window: "Window", presetDefault: "Default", presetSoft: "Soft tissue",
    presetLung: "Lung", presetBone: "Bone", presetBrain: "Brain", loading: "Loading…",
    review: "Patient review", reviewer: "Reviewer", reason: "Reason", same: "Same person", different: "Different people",
    recorded: "Recorded", noTasks: "Nothing waits for review.", probability: "Match probability", person: "Person",
    links: "Link history", facility: "Facility", birthDate: "Birth date", sex: "Sex", field: "Field", level: "Comparison",
    weight: "Weight", needReason: "Enter the reviewer and a reason.", retired: "retired", grades: {}, kinds: {},
    sharing: "Sharing", origin: "From", sharedFrom: "Shared", publish: "Publish to other facilities", publishTo: "Publish to",
    wholeGroup: "The whole group", until: "Visible until", consentBy: "Consent given by", consentScope: "Consent covers",
    publisher: "Published by", published: "Published", publications: "Publications", revoke: "Revoke", revoked: "revoked",
    current: "current", notCurrent: "not current", whole: "Every study of this patient", thisStudy: "This study only",
    breakGlass: "Emergency access (break-glass)",
    breakGlassHint: "See every study, at every facility, of the person your patient is linked to. State why: every access is recorded and reviewed by an administrator.",
    open: "Open emergency access", opened: "Emergency access open", hours: "Hours", flagged: "Emergency accesses to review",
    reviewNote: "Review note", reviewed: "reviewed", markReviewed: "Mark reviewed", accesses: "Cross-facility accesses",
    viewer: "Viewer", study: "Study", kind: "Kind", via: "Via", grant: "Grant", when: "When", noneYet: "None.",
    needFields: "Fill in every field.", state: "State", operator: "Your name", close: "Close",
    referral: "Link a referral", familyKanji: "Family name (kanji)", givenKanji: "Given name (kanji)",
    familyKana: "Family name (kana)", givenKana: "Given name (kana)", female: "Female", male: "Male", other: "Other",
    ownRecords: "This facility's patients", referred: "Patients other facilities publish to you",
    linkThis: "Link to the chosen patient of ours", linked: "Linked", chooseOwn: "Choose one of this facility's patients.",
    grade: "Match", noCandidates: "No candidates.", unlink: "Unlink (different people)", withdraw: "Withdraw the decision",
    linkRecord: "Link a patient to this person", link: "Link",
    dose: "Dose", doseKind: "Kind", category: "DRL category", metric: "Metric", show: "Show", byDevice: "By device",
    histogram: "Distribution (histogram)", trend: "Monthly median by device", drlLevel: "DRL", median: "Median", exams: "Exams",
    recentExams: "Recent exams", overDrl: "Over DRL", patientHistory: "Patient dose history", cumulative: "Cumulative",
    benchmark: "Benchmark across facilities (administrators)", csv: "Export CSV", alerts: "Dose alerts (past year)", reasons: "Reasons",
    patientAlerts: "Cumulative dose over threshold", total: "Total", device: "Device", unmapped: "Exam names without a DRL category",
    workload: "Exams by weekday and hour", doseSettings: "DRL categories and alert thresholds", mappings: "Confirmed mappings",
    suggested: "Suggested", noCategory: "(none)", confirm: "Confirm", confirmedBy: "Confirmed by", thresholds: "Alert thresholds",
    weeks: "Window (weeks; 0 for each exam)", threshold: "Threshold", save: "Save", remove: "Remove", setBy: "Set by", saved: "Saved",
    weekdays: ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"],
    alertsPartial: "Too many exams in the period: only the newest 200,000 were checked; alerts on older ones are not shown.",
    allCategories: "(all)", doseKinds: { ct: "CT", projection: "Angiography / fluoroscopy", mammography: "Mammography", nm: "Nuclear medicine" },
    metrics: { ctdivol: "CTDIvol (mGy)", dlp: "DLP (mGy·cm)", dose_rp: "Ka,r (mGy)", dap: "PKA (Gy·cm²)", agd: "AGD (mGy)", activity: "Activity (MBq)" },
    fields: {}, levels: {},
  },
};

const PRESETS = [
  ["presetDefault", null], ["presetSoft", "40,400"], ["presetLung", "-600,1500"], ["presetBone", "400,1800"], ["presetBrain", "40,80"],
];

let administrator = false;
let language = localStorage.getItem("renkei.language") || (navigator.language.startsWith("ja") ? "ja" : "en");
let token = sessionStorage.getItem("renkei.token");
const view = document.getElementById("view");
const t = (key) => TEXT[language][key] ?? key;

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

class Unauthorized extends Error {}

async function api(path, accept = "application/dicom+json", init = {}) {
  const headers = { Authorization: `Bearer ${token}`, Accept: accept, ...(init.headers || {}) };
  const response = await fetch(path, { ...init, headers });
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(problem.detail || `${response.status}`);
  }
  return response;
}

const values = (dataset, tag) => (dataset[tag] && dataset[tag].Value) || [];
const first = (dataset, tag) => values(dataset, tag)[0] ?? "";
function personName(dataset, tag) {
  const name = first(dataset, tag);
  if (!name) return "";
  return [name.Ideographic, name.Phonetic, name.Alphabetic].filter(Boolean).map((g) => g.replaceAll("^", " ")).join(" ／ ");
}
const formatDate = (d) => (d && d.length === 8 ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d);

async function objectUrl(path) {
  const response = await api(path, "image/jpeg");
  return URL.createObjectURL(await response.blob());
}

function renderChrome() {
  document.documentElement.lang = language;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  document.getElementById("language").textContent = t("language");
  document.getElementById("logout").hidden = !token;
  document.getElementById("review").hidden = !(token && administrator);
  document.getElementById("sharing").hidden = !token;
  document.getElementById("dose").hidden = !token;
  document.getElementById("referral").hidden = !(token && !administrator);
}

// Whether the token is an administrator's: only they may see the admin API.
async function checkAdministrator() {
  const response = await fetch("/api/mpi/status", { headers: { Authorization: `Bearer ${token}` } });
  administrator = response.ok;
}

function loginView(message) {
  const input = element("input", { type: "password", name: "token", "data-testid": "token", autocomplete: "off" });
  const form = element("form", { class: "login", "data-testid": "login" },
    element("h2", { text: t("login") }),
    element("p", { class: "muted", text: t("loginHint") }),
    element("label", {}, t("token"), input),
    message ? element("p", { class: "error", "data-testid": "login-error", text: message }) : null,
    element("button", { class: "primary", type: "submit", text: t("login") }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    token = input.value.trim();
    try {
      await api("/dicom-web/studies?limit=1");
      sessionStorage.setItem("renkei.token", token);
      await checkAdministrator();
      location.hash = "#/studies";
      route();
    } catch (error) {
      token = null;
      loginView(t("badToken"));
    }
  });
  view.replaceChildren(form);
  renderChrome();
}

async function studiesView() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const field = (name, label, type = "text") =>
    element("label", {}, t(label), element("input", { name, type, value: params.get(name) || "", "data-testid": `search-${name}` }));
  const form = element("form", { class: "search", "data-testid": "search" },
    field("PatientID", "patientId"), field("PatientName", "patientName"), field("from", "dateFrom", "date"),
    field("to", "dateTo", "date"), field("ModalitiesInStudy", "modality"),
    element("button", { class: "primary", type: "submit", text: t("search") }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const query = new URLSearchParams();
    for (const [name, value] of data) if (value) query.set(name, value);
    location.hash = `#/studies?${query}`;
  });
  const body = element("tbody", { "data-testid": "studies" });
  view.replaceChildren(element("h2", { text: t("studies") }), form, element("table", {},
    element("thead", {}, element("tr", {}, ...["patientName", "patientId", "date", "modality", "description", "images", "origin"].map((k) => element("th", { text: t(k) })))),
    body));
  renderChrome();
  const query = new URLSearchParams();
  for (const key of ["PatientID", "ModalitiesInStudy"]) if (params.get(key)) query.set(key, params.get(key));
  if (params.get("PatientName")) {
    const name = params.get("PatientName");
    query.set("PatientName", /[*?]/.test(name) ? name : `${name}*`);
  }
  if (params.get("from") || params.get("to")) {
    const strip = (d) => (d || "").replaceAll("-", "");
    query.set("StudyDate", `${strip(params.get("from"))}-${strip(params.get("to"))}`);
  }
  query.set("limit", "200");
  const studies = await (await api(`/dicom-web/studies?${query}`)).json();
  if (studies.length === 0) body.append(element("tr", {}, element("td", { colspan: "7", class: "muted", text: t("noStudies") })));
  for (const study of studies) {
    const uid = first(study, "0020000D");
    body.append(element("tr", { "data-testid": "study-row", onclick: () => { location.hash = `#/study/${uid}`; } },
      element("td", { text: personName(study, "00100010") }),
      element("td", { text: first(study, "00100020") }),
      element("td", { text: formatDate(first(study, "00080020")) }),
      element("td", { text: values(study, "00080061").join(", ") }),
      element("td", { text: first(study, "00081030") }),
      element("td", { text: String(first(study, "00201208")) }),
      // Another facility's study, shown under this facility's patient, says whose it is.
      element("td", {}, first(study, "00080080")
        ? element("span", { class: "badge", "data-testid": "shared-from", text: `${t("sharedFrom")}: ${first(study, "00080080")}` })
        : null)));
  }
}

async function studyView(study) {
  const grid = element("div", { class: "series", "data-testid": "series" });
  view.replaceChildren(element("p", {}, element("button", { onclick: () => history.back(), text: t("back") })),
    element("h2", { text: t("series") }), grid);
  renderChrome();
  const [found] = await (await api(`/dicom-web/studies?StudyInstanceUID=${study}`)).json();
  if (found && !first(found, "00080080") && !administrator) view.append(await publishForm(study, first(found, "00100020")));
  const series = await (await api(`/dicom-web/studies/${study}/series`)).json();
  series.sort((a, b) => Number(first(a, "00200011")) - Number(first(b, "00200011")));
  for (const item of series) {
    const uid = first(item, "0020000E");
    const image = element("img", { alt: first(item, "0008103E"), "data-testid": "thumbnail" });
    grid.append(element("figure", { "data-testid": "series-card", onclick: () => { location.hash = `#/viewer/${study}/${uid}`; } },
      image, element("figcaption", { text: `${first(item, "00080060")} ${first(item, "0008103E")} (${first(item, "00201209")})` })));
    objectUrl(`/dicom-web/studies/${study}/series/${uid}/thumbnail`).then((url) => { image.src = url; }).catch(() => { image.alt = "—"; });
  }
}

async function viewerView(study, series) {
  const image = element("img", { "data-testid": "image", alt: "" });
  const counter = element("span", { "data-testid": "counter", text: t("loading") });
  const slider = element("input", { type: "range", min: "0", max: "0", value: "0", "data-testid": "slider" });
  let windowing = null;
  let frames = [];
  let current = 0;
  const presets = element("div", { class: "presets" }, element("strong", { text: t("window") }));
  const show = async () => {
    if (!frames.length) return;
    const [instance, frame] = frames[current];
    counter.textContent = `${t("image")} ${current + 1} / ${frames.length}`;
    slider.value = String(current);
    const path = `/dicom-web/studies/${study}/series/${series}/instances/${instance}/frames/${frame}/rendered`;
    const url = await objectUrl(windowing ? `${path}?window=${windowing}` : path);
    image.dataset.src = windowing ? `${path}?window=${windowing}` : path;
    image.src = url;
  };
  for (const [label, value] of PRESETS) {
    const button = element("button", { "data-testid": `preset-${label}`, text: t(label), onclick: () => {
      windowing = value;
      for (const b of presets.querySelectorAll("button")) b.classList.toggle("active", b === button);
      show();
    } });
    if (value === null) button.classList.add("active");
    presets.append(button);
  }
  const step = (delta) => { current = Math.max(0, Math.min(frames.length - 1, current + delta)); show(); };
  slider.addEventListener("input", () => { current = Number(slider.value); show(); });
  const stage = element("div", { class: "stage", tabindex: "0", "data-testid": "stage" }, image);
  stage.addEventListener("wheel", (event) => { event.preventDefault(); step(Math.sign(event.deltaY)); });
  stage.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowRight") step(1);
    if (event.key === "ArrowUp" || event.key === "ArrowLeft") step(-1);
  });
  view.replaceChildren(element("p", {}, element("button", { onclick: () => history.back(), text: t("back") })),
    element("div", { class: "viewer" }, stage, element("aside", {}, counter, slider, presets)));
  renderChrome();
  const metadata = await (await api(`/dicom-web/studies/${study}/series/${series}/metadata`)).json();
  metadata.sort((a, b) => Number(first(a, "00200013")) - Number(first(b, "00200013")));
  frames = metadata.flatMap((instance) => {
    const count = Number(first(instance, "00280008") || 1);
    return Array.from({ length: count }, (_, i) => [first(instance, "00080018"), i + 1]);
  });
  slider.max = String(Math.max(0, frames.length - 1));
  stage.focus();
  await show();
}

const json = (body) => ({ method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
const formatTime = (unix) => new Date(unix * 1000).toLocaleString(language === "ja" ? "ja-JP" : "en-GB", { timeZone: "Asia/Tokyo" });
// The end of a day in Japan time, as Unix seconds.
const endOfDayInJapan = (date) => Date.parse(`${date}T23:59:59+09:00`) / 1000 + 1;
const labelled = (label, input) => element("label", {}, t(label), input);

// Publishing one of this facility's studies (or all its patient's) to other facilities,
// with the patient's consent.
async function publishForm(study, patientId) {
  const facilities = await (await api("/api/sharing/facilities", "application/json")).json();
  const targets = element("div", { class: "targets" },
    element("label", {}, element("input", { type: "checkbox", value: "group", "data-testid": "publish-group" }), t("wholeGroup")),
    ...facilities.map((f) => element("label", {},
      element("input", { type: "checkbox", value: f.id, "data-testid": `publish-to-${f.id}` }), `${f.name} (${f.id})`)));
  const scope = element("select", { "data-testid": "publish-scope" },
    element("option", { value: "study", text: t("thisStudy") }), element("option", { value: "patient", text: t("whole") }));
  const until = element("input", { type: "date", "data-testid": "publish-until" });
  const consentBy = element("input", { "data-testid": "consent-by" });
  const consentScope = element("input", { "data-testid": "consent-scope" });
  const by = element("input", { "data-testid": "publisher", value: sessionStorage.getItem("renkei.reviewer") || "" });
  const message = element("p", { "data-testid": "publish-message" });
  const form = element("form", { class: "panel", "data-testid": "publish" },
    element("h3", { text: t("publish") }), element("div", {}, t("publishTo"), targets),
    element("div", { class: "fields" }, labelled("study", scope), labelled("until", until), labelled("consentBy", consentBy),
      labelled("consentScope", consentScope), labelled("publisher", by)),
    element("button", { class: "primary", type: "submit", "data-testid": "publish-submit", text: t("publish") }), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = [...targets.querySelectorAll("input:checked")].map((box) => box.value);
    if (!chosen.length || !until.value || !consentBy.value.trim() || !consentScope.value.trim() || !by.value.trim()) {
      message.className = "error";
      message.textContent = t("needFields");
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const body = {
      patient_id: patientId, study_uid: scope.value === "study" ? study : null,
      to: chosen.includes("group") ? "group" : chosen, starts_at: now, ends_at: endOfDayInJapan(until.value),
      consent: { given_by: consentBy.value, given_at: now, scope: consentScope.value }, by: by.value,
    };
    try {
      const published = await (await api("/api/sharing/publications", "application/json", json(body))).json();
      message.className = "muted";
      message.textContent = `${t("published")} (#${published.id})`;
    } catch (error) {
      message.className = "error";
      message.textContent = error.message;
    }
  });
  return form;
}

function table(testid, headings, rows) {
  return element("table", { "data-testid": testid },
    element("thead", {}, element("tr", {}, ...headings.map((k) => element("th", { text: t(k) })))),
    element("tbody", {}, ...(rows.length ? rows : [element("tr", {}, element("td", { colspan: String(headings.length), class: "muted", text: t("noneYet") }))])));
}

// Sharing: this facility's publications (revocable), emergency access for a facility's
// clinicians, and for administrators the flagged emergency accesses and the access log.
async function sharingView() {
  const operator = element("input", { "data-testid": "operator", value: sessionStorage.getItem("renkei.reviewer") || "" });
  operator.addEventListener("change", () => sessionStorage.setItem("renkei.reviewer", operator.value));
  // Who acts: recorded with every revocation and review.
  const actor = (input) => {
    if (operator.value.trim() && input.value.trim()) return operator.value.trim();
    (operator.value.trim() ? input : operator).focus();
    return null;
  };
  view.replaceChildren(element("h2", { text: t("sharing") }), element("label", { class: "reviewer" }, t("operator"), operator));
  renderChrome();
  const publications = await (await api("/api/sharing/publications", "application/json")).json();
  const rows = publications.map((p) => {
    const reason = element("input", { "data-testid": "revoke-reason", placeholder: t("reason") });
    const cell = p.revoked
      ? element("td", { text: `${t("revoked")}: ${p.revoked.by.who} (${p.revoked.by.why})` })
      : element("td", {}, reason, element("button", { "data-testid": "revoke", text: t("revoke"), onclick: async () => {
        const by = actor(reason);
        if (!by) return;
        await api(`/api/sharing/publications/${p.id}/revoke`, "application/json", json({ by, reason: reason.value }));
        route();
      } }));
    const what = p.published.kind === "study" ? p.published.study_uid : t("whole");
    const to = p.audience === "group" ? t("wholeGroup") : p.audience.facilities.join(", ");
    return element("tr", { "data-testid": "publication" },
      element("td", { text: `${p.patient.facility}/${p.patient.patient_id}` }), element("td", { text: what }),
      element("td", { text: to }), element("td", { text: formatTime(p.ends_at) }),
      element("td", { text: `${p.consent.given_by} — ${p.consent.scope}` }),
      element("td", { text: p.revoked ? t("revoked") : p.current ? t("current") : t("notCurrent") }), cell);
  });
  view.append(element("h3", { text: t("publications") }),
    table("publications", ["patientId", "study", "publishTo", "until", "consentBy", "state", "revoke"], rows));
  if (!administrator) view.append(breakGlassForm());
  const flagged = await (await api(`/api/sharing/break-glass${administrator ? "?unreviewed=true" : ""}`, "application/json")).json();
  view.append(element("h3", { text: t("flagged") }), table("break-glasses", ["when", "patientId", "reviewer", "reason", "close", "reviewed"],
    flagged.map((b) => {
      const note = element("input", { "data-testid": "review-note", placeholder: t("reviewNote") });
      const action = b.reviewed
        ? element("td", { text: `${t("reviewed")}: ${b.reviewed.by.who}` })
        : element("td", {}, administrator ? note : null, administrator ? element("button", { "data-testid": "mark-reviewed", text: t("markReviewed"), onclick: async () => {
          const by = actor(note);
          if (!by) return;
          await api(`/api/sharing/break-glass/${b.id}/review`, "application/json", json({ by, note: note.value }));
          route();
        } }) : null);
      const reason = element("input", { "data-testid": "close-reason", placeholder: t("reason") });
      const open = Date.now() / 1000 < b.ends_at;
      const close = open ? element("td", {}, reason, element("button", { "data-testid": "close", text: t("close"), onclick: async () => {
        const by = actor(reason);
        if (!by) return;
        await api(`/api/sharing/break-glass/${b.id}/close`, "application/json", json({ by, reason: reason.value }));
        route();
      } })) : element("td", { text: `${t("until")} ${formatTime(b.ends_at)}` });
      return element("tr", { "data-testid": "break-glass" }, element("td", { text: formatTime(b.starts_at) }),
        element("td", { text: `${b.patient.facility}/${b.patient.patient_id}` }), element("td", { text: b.opened_by.who }),
        element("td", { text: b.opened_by.why }), close, action);
    })));
  const accesses = await (await api("/api/sharing/accesses?limit=200", "application/json")).json();
  view.append(element("h3", { text: t("accesses") }), table("accesses", ["when", "viewer", "origin", "study", "kind", "via", "grant"],
    accesses.map((a) => element("tr", { "data-testid": "access", class: a.grant.kind === "break_glass" ? "flagged" : "" },
      element("td", { text: formatTime(a.at) }), element("td", { text: a.facility }), element("td", { text: a.origin }),
      element("td", { text: a.study_uid }), element("td", { text: a.kind }), element("td", { text: a.via }),
      element("td", { text: `${t(a.grant.kind === "break_glass" ? "breakGlass" : "publications")} #${a.grant.id}` })))));
}

function breakGlassForm() {
  const patient = element("input", { "data-testid": "break-glass-patient" });
  const reason = element("input", { "data-testid": "break-glass-reason" });
  const by = element("input", { "data-testid": "break-glass-by", value: sessionStorage.getItem("renkei.reviewer") || "" });
  const hours = element("input", { type: "number", min: "1", max: "72", value: "24", "data-testid": "break-glass-hours" });
  const message = element("p", { "data-testid": "break-glass-message" });
  const form = element("form", { class: "panel", "data-testid": "break-glass-form" },
    element("h3", { text: t("breakGlass") }), element("p", { class: "muted", text: t("breakGlassHint") }),
    element("div", { class: "fields" }, labelled("patientId", patient), labelled("reason", reason),
      labelled("reviewer", by), labelled("hours", hours)),
    element("button", { class: "danger", type: "submit", "data-testid": "break-glass-open", text: t("open") }), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!patient.value.trim() || !reason.value.trim() || !by.value.trim()) {
      message.className = "error";
      message.textContent = t("needFields");
      return;
    }
    const body = { patient_id: patient.value.trim(), reason: reason.value, by: by.value, hours: Number(hours.value) };
    try {
      const opened = await (await api("/api/sharing/break-glass", "application/json", json(body))).json();
      message.className = "muted";
      message.textContent = `${t("opened")} (#${opened.id}, ${formatTime(opened.ends_at)})`;
    } catch (error) {
      message.className = "error";
      message.textContent = error.message;
    }
  });
  return form;
}

// A receiving facility finds a referred patient with $match (published patients are among
// the candidates) and links one of its own patients to them.
async function referralView() {
  const input = (testid, type = "text") => element("input", { type, "data-testid": testid });
  const [familyKanji, givenKanji, familyKana, givenKana] = ["ref-family-kanji", "ref-given-kanji", "ref-family-kana", "ref-given-kana"].map((id) => input(id));
  const birthDate = input("ref-birth-date", "date");
  const sex = element("select", { "data-testid": "ref-sex" },
    ...[["female", "female"], ["male", "male"], ["other", "other"]].map(([value, label]) => element("option", { value, text: t(label) })));
  const results = element("div", { "data-testid": "ref-results" });
  const form = element("form", { class: "search", "data-testid": "referral" },
    labelled("familyKanji", familyKanji), labelled("givenKanji", givenKanji), labelled("familyKana", familyKana),
    labelled("givenKana", givenKana), labelled("birthDate", birthDate), labelled("sex", sex),
    element("button", { class: "primary", type: "submit", text: t("search") }));
  view.replaceChildren(element("h2", { text: t("referral") }), form, results);
  renderChrome();
  const others = new Set((await (await api("/api/sharing/facilities", "application/json")).json()).map((f) => f.id));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const representation = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation";
    const name = (code, family, given) => ({ extension: [{ url: representation, valueCode: code }], family: family.value, given: [given.value] });
    const patient = { resourceType: "Patient", name: [name("IDE", familyKanji, givenKanji), name("SYL", familyKana, givenKana)], gender: sex.value };
    if (birthDate.value) patient.birthDate = birthDate.value;
    const body = { resourceType: "Parameters", parameter: [{ name: "resource", resource: patient }] };
    const bundle = await (await api("/fhir/Patient/$match", "application/fhir+json",
      { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/fhir+json" } })).json();
    const candidates = (bundle.entry || []).map((entry) => {
      const r = entry.resource;
      const facility = (r.identifier[0].system.match(/^urn:renkei:facility:(.*):patient-id$/) || [])[1];
      const names = (r.name || []).map((n) => n.text).join(" ／ ");
      return { id: Number(r.id), facility, patientId: r.identifier[0].value, names, birthDate: r.birthDate || "",
        grade: entry.search.extension?.[0]?.valueCode ?? "", score: entry.search.score };
    });
    const own = candidates.filter((c) => !others.has(c.facility));
    const referred = candidates.filter((c) => others.has(c.facility));
    const cells = (c) => [c.facility, c.patientId, c.names, c.birthDate, `${(c.score * 100).toFixed(1)}% (${t("grades")[c.grade] ?? c.grade})`]
      .map((value) => element("td", { text: value }));
    const reason = element("input", { "data-testid": "ref-reason", placeholder: t("reason") });
    const operator = element("input", { "data-testid": "ref-operator", placeholder: t("operator"), value: sessionStorage.getItem("renkei.reviewer") || "" });
    const message = element("p", { "data-testid": "ref-message" });
    results.replaceChildren(
      element("h3", { text: t("ownRecords") }),
      table("ref-own", ["", "facility", "patientId", "patientName", "birthDate", "grade"], own.map((c) =>
        element("tr", { "data-testid": "ref-own-row" }, element("td", {}, element("input", { type: "radio", name: "own", value: String(c.id), "data-testid": `ref-own-${c.patientId}` })), ...cells(c)))),
      element("h3", { text: t("referred") }),
      table("ref-referred", ["facility", "patientId", "patientName", "birthDate", "grade", ""], referred.map((c) =>
        element("tr", { "data-testid": "ref-referred-row" }, ...cells(c), element("td", {},
          element("button", { class: "primary", "data-testid": `ref-link-${c.patientId}`, text: t("linkThis"), onclick: async () => {
            const chosen = results.querySelector("input[name=own]:checked");
            if (!chosen) { message.className = "error"; message.textContent = t("chooseOwn"); return; }
            if (!reason.value.trim() || !operator.value.trim()) { message.className = "error"; message.textContent = t("needReason"); return; }
            const decision = { a: Number(chosen.value), b: c.id, decision: "same", reason: reason.value, reviewer: operator.value };
            try {
              await api("/api/mpi/decisions", "application/json", json(decision));
              message.className = "muted";
              message.textContent = `${t("linked")}: ${c.facility}/${c.patientId}`;
            } catch (error) {
              message.className = "error";
              message.textContent = error.message;
            }
          } }))))),
      element("div", { class: "decide" }, operator, reason), message);
  });
}

function recordCells(record) {
  const name = record.name.split("=").filter(Boolean).map((g) => g.replaceAll("^", " ")).join(" ／ ");
  return [record.facility, record.patient_id, name, formatDate(record.birth_date), record.sex];
}

async function reviewView() {
  const reviewer = element("input", { "data-testid": "reviewer", value: sessionStorage.getItem("renkei.reviewer") || "" });
  reviewer.addEventListener("change", () => sessionStorage.setItem("renkei.reviewer", reviewer.value));
  const list = element("div", { class: "tasks", "data-testid": "review-tasks" });
  view.replaceChildren(element("h2", { text: t("review") }), element("label", { class: "reviewer" }, t("reviewer"), reviewer), list);
  renderChrome();
  const tasks = await (await api("/api/mpi/review?limit=50", "application/json")).json();
  if (tasks.length === 0) list.append(element("p", { class: "muted", text: t("noTasks") }));
  for (const task of tasks) {
    const side = (record, which) => element("div", { class: "record", "data-testid": `record-${which}` },
      ...recordCells(record).map((value, i) => i === 1
        ? element("a", { href: `#/person/${record.id}`, "data-testid": "record-link", text: value })
        : element("div", { text: value })));
    const terms = element("tbody", {}, ...task.score.terms.map((term) => element("tr", { "data-testid": "score-term" },
      element("td", { text: t("fields")[term.field] ?? term.field }),
      element("td", { text: t("levels")[term.level] ?? term.level }),
      element("td", { text: term.weight.toFixed(1) }))));
    const reason = element("input", { "data-testid": "reason", placeholder: t("reason") });
    const message = element("p", { class: "error" });
    const card = element("section", { class: "task", "data-testid": "review-task" },
      element("div", { class: "pair" }, side(task.a, "a"), side(task.b, "b")),
      element("p", { text: `${t("probability")}: ${(task.score.probability * 100).toFixed(1)}% (${t("grades")[task.score.grade] ?? task.score.grade})` }),
      element("table", { class: "terms" }, element("thead", {}, element("tr", {},
        ...["field", "level", "weight"].map((k) => element("th", { text: t(k) })))), terms),
      element("div", { class: "decide" }, reason,
        element("button", { class: "primary", "data-testid": "accept", text: t("same"), onclick: () => decide("same") }),
        element("button", { "data-testid": "reject", text: t("different"), onclick: () => decide("different") })),
      message);
    async function decide(decision) {
      if (!reviewer.value.trim() || !reason.value.trim()) { message.textContent = t("needReason"); return; }
      const body = JSON.stringify({ a: task.a.id, b: task.b.id, decision, reason: reason.value, reviewer: reviewer.value });
      await api("/api/mpi/decisions", "application/json", { method: "POST", body, headers: { "Content-Type": "application/json" } });
      card.replaceChildren(element("p", { class: "muted", "data-testid": "recorded", text: `${t("recorded")}: ${recordCells(task.a)[1]} / ${recordCells(task.b)[1]}` }));
    }
    list.append(card);
  }
}

async function personView(id) {
  const records = element("tbody");
  const links = element("tbody");
  const reviewer = element("input", { "data-testid": "reviewer", value: sessionStorage.getItem("renkei.reviewer") || "" });
  reviewer.addEventListener("change", () => sessionStorage.setItem("renkei.reviewer", reviewer.value));
  const reason = element("input", { "data-testid": "person-reason", placeholder: t("reason") });
  const message = element("p", { "data-testid": "person-message" });
  // A decision about two records, by the reviewer, for the reason given; then the view again.
  const decide = async (a, b, decision) => {
    if (!reviewer.value.trim() || !reason.value.trim()) { message.className = "error"; message.textContent = t("needReason"); return; }
    const body = { a, b, decision, reason: reason.value, reviewer: reviewer.value };
    await api("/api/mpi/decisions", "application/json", json(body));
    message.className = "muted";
    message.textContent = t("recorded");
  };
  const facility = element("input", { "data-testid": "link-facility", placeholder: t("facility") });
  const patientId = element("input", { "data-testid": "link-patient", placeholder: t("patientId") });
  view.replaceChildren(element("p", {}, element("button", { onclick: () => history.back(), text: t("back") })),
    element("h2", { text: t("person") }),
    element("table", {}, element("thead", {}, element("tr", {},
      ...["facility", "patientId", "patientName", "birthDate", "sex"].map((k) => element("th", { text: t(k) })))), records),
    element("h2", { text: t("links") }), element("table", {}, links),
    element("div", { class: "decide" }, element("label", { class: "reviewer" }, t("reviewer"), reviewer), reason),
    element("form", { class: "search", "data-testid": "link-form", onsubmit: async (event) => {
      event.preventDefault();
      try {
        const query = new URLSearchParams({ facility: facility.value.trim(), patient_id: patientId.value.trim() });
        const other = await (await api(`/api/mpi/lookup?${query}`, "application/json")).json();
        await decide(Number(id), other.id, "same");
      } catch (error) {
        message.className = "error";
        message.textContent = error.message;
      }
    } }, element("strong", { text: t("linkRecord") }), facility, patientId,
      element("button", { class: "primary", type: "submit", "data-testid": "link-submit", text: t("link") })),
    message);
  renderChrome();
  const person = await (await api(`/api/mpi/records/${id}`, "application/json")).json();
  const label = (recordId) => {
    const found = [...person.records, ...person.others].find((r) => r.id === recordId);
    return found ? `${found.facility}/${found.patient_id}` : `#${recordId}`;
  };
  for (const record of person.records) {
    records.append(element("tr", { "data-testid": "person-record" }, ...recordCells(record).map((value) => element("td", { text: value }))));
  }
  for (const link of person.links) {
    const retired = link.retired ? ` — ${t("retired")}: ${link.retired.by} (${link.retired.why})` : "";
    // A current link can be undone: an automatic one by keeping the two apart, a person's
    // decision by taking it back.
    const action = link.retired || link.kind === "candidate" ? null
      : link.kind === "auto"
        ? element("button", { "data-testid": "unlink", text: t("unlink"), onclick: () => decide(link.a, link.b, "different") })
        : element("button", { "data-testid": "withdraw", text: t("withdraw"), onclick: () => decide(link.a, link.b, "withdraw") });
    links.append(element("tr", { "data-testid": "person-link" },
      element("td", { text: t("kinds")[link.kind] ?? link.kind }), element("td", { text: `${label(link.a)} – ${label(link.b)}` }),
      element("td", { text: `${link.created.by} (${link.created.why})${retired}` }), element("td", {}, action)));
  }
}

// Radiation dose (線量管理): per protocol (DRL category) and device, the distribution of a
// metric against its DRL, its monthly median, the recent exams with their DRL flags, the
// alerts, and for administrators the benchmark across facilities. Charts are Chart.js
// (loaded as /chart.js); each is drawn once its canvas is in the page.
const METRICS = { ct: ["ctdivol", "dlp"], projection: ["dose_rp", "dap"], mammography: ["agd"], nm: ["activity"] };
const getJson = async (path) => (await api(path, "application/json")).json();
const number = (v) => (v === null || v === undefined ? "" : Number(v).toLocaleString(language, { maximumFractionDigits: 2 }));
const when = (unix) => (unix ? new Date(unix * 1000).toLocaleString(language === "ja" ? "ja-JP" : "en-GB", { timeZone: "Asia/Tokyo" }) : "");

function chartBox(testid, config) {
  const canvas = element("canvas", { "data-testid": testid });
  const box = element("div", { class: "chart" }, canvas);
  box.draw = () => {
    canvas.chart = new Chart(canvas, { ...config, options: { animation: false, maintainAspectRatio: false, ...(config.options || {}) } });
    canvas.dataset.drawn = String(config.data.datasets.reduce((n, d) => n + d.data.length, 0));
  };
  return box;
}

// A horizontal DRL line across a chart's categories, and axes that keep it in view.
const levelLine = (level, count) => ({ type: "line", label: t("drlLevel"), data: Array(count).fill(level), borderColor: "#a4262c", borderDash: [6, 4], pointRadius: count > 1 ? 0 : 4, pointStyle: "line" });
const levelOptions = (level) => (level
  ? { plugins: { title: { display: true, text: `${t("drlLevel")} ${number(level)}` } }, scales: { y: { suggestedMin: 0, suggestedMax: level * 1.15 } } }
  : { scales: { y: { suggestedMin: 0 } } });

// A box plot without a plugin: the quartile range as floating bars, the median as points.
function boxPlot(testid, groups, level) {
  const labels = groups.map((g) => g.device || g.month || g.facility);
  const datasets = [
    { type: "bar", label: "Q1–Q3", data: groups.map((g) => [g.q1, g.q3]), backgroundColor: "#9cc4dd" },
    { type: "scatter", label: t("median"), data: groups.map((g, i) => ({ x: labels[i], y: g.median })), backgroundColor: "#0b6e99", pointRadius: 6 },
    { type: "scatter", label: "min / max", data: groups.flatMap((g, i) => [{ x: labels[i], y: g.min }, { x: labels[i], y: g.max }]), backgroundColor: "#5b6b7c", pointStyle: "line", pointRadius: 8 },
  ];
  if (level) datasets.push(levelLine(level, labels.length));
  const options = levelOptions(level);
  return chartBox(testid, { data: { labels, datasets }, options: { ...options, scales: { ...options.scales, x: { type: "category" } } } });
}

function histogram(testid, values, level) {
  if (!values.length) return chartBox(testid, { type: "bar", data: { labels: [], datasets: [{ data: [] }] } });
  const top = Math.max(...values, level || 0) * 1.05;
  const bins = 20;
  const width = top / bins;
  const counts = Array(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor(v / width))] += 1;
  const labels = counts.map((_, i) => number(i * width));
  const colours = counts.map((_, i) => (level && i * width >= level ? "#e8a0a4" : "#9cc4dd"));
  return chartBox(testid, { type: "bar", data: { labels, datasets: [{ label: t("exams"), data: counts, backgroundColor: colours }] },
    options: { plugins: { title: { display: Boolean(level), text: level ? `${t("drlLevel")} ${number(level)}` : "" } } } });
}

const PALETTE = ["#0b6e99", "#d9822b", "#2b9348", "#8e44ad", "#c0392b", "#5b6b7c", "#b8860b", "#16a085"];

// Each device's monthly median as its own line, the DRL across them.
function trendChart(testid, groups, level) {
  const months = [...new Set(groups.map((g) => g.month))].sort();
  const devices = [...new Set(groups.map((g) => g.device ?? String(g.device_id)))];
  const datasets = devices.map((device, i) => ({
    label: device, borderColor: PALETTE[i % PALETTE.length], backgroundColor: PALETTE[i % PALETTE.length], spanGaps: true,
    data: months.map((m) => groups.find((g) => g.month === m && (g.device ?? String(g.device_id)) === device)?.median ?? null),
  }));
  if (level) datasets.push(levelLine(level, months.length));
  return chartBox(testid, { type: "line", data: { labels: months, datasets }, options: levelOptions(level) });
}

// Workload as a punch card: a bubble per weekday and hour (Japan time), its area the exams.
function workloadChart(testid, cells) {
  const busiest = Math.max(1, ...cells.map((c) => c.exams));
  const data = cells.map((c) => ({ x: c.hour, y: c.weekday, r: 2 + 12 * Math.sqrt(c.exams / busiest), exams: c.exams }));
  return chartBox(testid, { type: "bubble", data: { datasets: [{ label: t("exams"), data, backgroundColor: "rgba(11, 110, 153, 0.6)" }] },
    options: {
      scales: {
        x: { min: -1, max: 24, ticks: { stepSize: 1, callback: (h) => (h >= 0 && h <= 23 ? `${h}:00` : "") } },
        y: { min: -1, max: 7, reverse: true, ticks: { stepSize: 1, callback: (d) => t("weekdays")[d] ?? "" } },
      },
      plugins: { tooltip: { callbacks: { label: (c) => `${t("weekdays")[c.raw.y]} ${c.raw.x}:00 — ${c.raw.exams}` } } },
    } });
}

async function doseView(params) {
  const drl = await getJson("/api/dose/drl");
  const kind = params.get("kind") || "ct";
  const metric = METRICS[kind].includes(params.get("metric")) ? params.get("metric") : METRICS[kind][0];
  const category = params.get("category") || "";
  const kindSelect = element("select", { name: "kind", "data-testid": "dose-kind" },
    ...Object.keys(METRICS).map((k) => element("option", { value: k, text: t("doseKinds")[k] ?? k })));
  kindSelect.value = kind;
  const categorySelect = element("select", { name: "category", "data-testid": "dose-category" },
    element("option", { value: "", text: t("allCategories") }),
    ...drl.categories.filter((c) => c.kind === kind).map((c) => element("option", { value: c.id, text: language === "ja" ? c.name_ja : c.name_en })));
  categorySelect.value = category;
  const metricSelect = element("select", { name: "metric", "data-testid": "dose-metric" },
    ...METRICS[kind].map((m) => element("option", { value: m, text: t("metrics")[m] ?? m })));
  metricSelect.value = metric;
  const form = element("form", { class: "search", "data-testid": "dose-filter" },
    element("label", {}, t("doseKind"), kindSelect), element("label", {}, t("category"), categorySelect),
    element("label", {}, t("metric"), metricSelect), element("button", { class: "primary", type: "submit", text: t("show") }));
  kindSelect.addEventListener("change", () => { location.hash = `#/dose?kind=${kindSelect.value}`; });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/dose?${new URLSearchParams({ kind: kindSelect.value, category: categorySelect.value, metric: metricSelect.value })}`;
  });

  const scope = { kind, ...(category ? { category } : {}) };
  const query = new URLSearchParams({ ...scope, metric });
  const [byDevice, trend, exams, alerts, workload] = await Promise.all([
    getJson(`/api/dose/distribution?${query}&by=device`),
    getJson(`/api/dose/distribution?${query}&by=device_month`),
    getJson(`/api/dose/exams?${new URLSearchParams({ ...scope, limit: "5000" })}`),
    getJson(`/api/dose/alerts?since=${Math.floor(Date.now() / 1000) - 365 * 86400}`),
    getJson(`/api/dose/workload?${new URLSearchParams(scope)}`),
  ]);
  const level = byDevice.level;
  const values = exams.map((e) => e[metric]).filter((v) => v !== null && v !== undefined);
  const charts = [
    boxPlot("dose-by-device", byDevice.groups, level),
    histogram("dose-histogram", values, level),
    trendChart("dose-trend", trend.groups, level),
    workloadChart("dose-workload", workload.cells),
  ];
  const rows = exams.slice(0, 50).map((e) => element("tr", {
    class: e.drl.exceeds ? "flagged" : "", "data-testid": "dose-exam",
    onclick: () => { location.hash = `#/dose-patient/${encodeURIComponent(e.patient_id)}`; } },
    element("td", { text: when(e.started_at) }), element("td", { text: e.patient_id }),
    element("td", { text: e.description }), element("td", { text: e.category ?? "" }), element("td", { text: e.device.label }),
    element("td", { text: number(e[metric]) }), element("td", { text: e.drl.exceeds ? t("overDrl") : "" })));
  const csv = element("button", { "data-testid": "dose-csv", type: "button", text: t("csv"), onclick: async () => {
    const blob = await (await api(`/api/dose/exams.csv?${new URLSearchParams({ kind, ...(category ? { category } : {}) })}`, "text/csv")).blob();
    const link = element("a", { href: URL.createObjectURL(blob), download: "dose-exams.csv" });
    link.click();
  } });
  const alertRows = alerts.exams.map((e) => element("tr", { class: "flagged", "data-testid": "dose-alert" },
    element("td", { text: when(e.started_at) }), element("td", { text: e.patient_id }), element("td", { text: e.description }),
    element("td", { text: e.reasons.map((r) => `${t("metrics")[r.metric] ?? r.metric} ${number(r.value)} > ${number(r.level ?? r.threshold)}`).join(" / ") })));
  const patientRows = alerts.patients.map((p) => element("tr", { "data-testid": "dose-patient-alert" },
    element("td", { text: p.patient_id }), element("td", { text: `${t("metrics")[p.metric] ?? p.metric}` }),
    element("td", { text: `${number(p.total)} > ${number(p.threshold)} (${p.weeks}w)` })));

  const parts = [
    element("h2", { text: t("dose") }), form,
    element("p", {}, element("a", { href: "#/dose-settings", "data-testid": "dose-settings-link", text: t("doseSettings") })),
    element("section", { class: "charts" },
      element("div", {}, element("h3", { text: t("byDevice") }), charts[0]),
      element("div", {}, element("h3", { text: t("histogram") }), charts[1]),
      element("div", {}, element("h3", { text: t("trend") }), charts[2]),
      element("div", {}, element("h3", { text: t("workload") }), charts[3])),
    element("h3", { text: t("recentExams") }), csv,
    table("dose-exams", ["date", "patientId", "description", "category", "device", t("metrics")[metric] ?? metric, "overDrl"], rows),
    element("h3", { text: t("alerts") }),
    alerts.complete ? null : element("p", { class: "muted", "data-testid": "dose-alerts-partial", text: t("alertsPartial") }),
    table("dose-alerts", ["date", "patientId", "description", "reasons"], alertRows),
    table("dose-patient-alerts", ["patientId", "metric", "total"], patientRows),
  ];
  if (administrator && category) {
    const benchmark = await getJson(`/api/dose/benchmark?${new URLSearchParams({ category, metric })}`);
    const chart = chartBox("dose-benchmark", { data: { labels: benchmark.facilities.map((f) => f.facility),
      datasets: [{ type: "bar", label: t("median"), data: benchmark.facilities.map((f) => f.median), backgroundColor: "#9cc4dd" },
        ...(benchmark.level ? [levelLine(benchmark.level, benchmark.facilities.length)] : [])] }, options: levelOptions(benchmark.level) });
    charts.push(chart);
    parts.push(element("h3", { text: t("benchmark") }), chart,
      table("dose-benchmark-devices", ["facility", "device", "exams", "median"], benchmark.devices.map((d) => element("tr", {},
        element("td", { text: d.facility }), element("td", { text: d.device ?? "" }), element("td", { text: String(d.exams) }),
        element("td", { text: number(d.median) })))));
  }
  view.replaceChildren(...parts);
  renderChrome();
  for (const chart of charts) chart.draw();
}

// The dose pages' settings: exam names mapped to DRL categories (suggested here, confirmed
// by an administrator), and a facility's alert thresholds (set by its uploader or an
// administrator). The API says no to anyone else, and the page shows why.
async function doseSettingsView() {
  const [drl, protocols, rules] = await Promise.all([
    getJson("/api/dose/drl"), getJson("/api/dose/protocols"), getJson("/api/dose/alert-rules")]);
  const categoryName = (id) => { const c = drl.categories.find((c) => c.id === id); return c ? (language === "ja" ? c.name_ja : c.name_en) : (id ?? t("noCategory")); };
  const operator = element("input", { "data-testid": "dose-operator", placeholder: t("operator") });
  const message = element("p", { "data-testid": "dose-settings-message", role: "status" });
  const post = async (path, body) => {
    if (!operator.value.trim()) { message.className = "error"; message.textContent = t("needFields"); return false; }
    try {
      await api(path, "application/json", json({ ...body, by: operator.value.trim() }));
      return true;
    } catch (error) {
      if (error instanceof Unauthorized) throw error;
      message.className = "error";
      message.textContent = error.message;
      return false;
    }
  };

  const unmappedRows = protocols.unmapped.map((u) => {
    const suggested = u.suggestions.map((s) => s.category);
    const others = drl.categories.filter((c) => c.kind === u.kind && !suggested.includes(c.id)).map((c) => c.id);
    const select = element("select", { "data-testid": "mapping-category" },
      ...[...suggested, ...others].map((id) => element("option", { value: id, text: `${suggested.includes(id) ? "★ " : ""}${categoryName(id)}` })),
      element("option", { value: "", text: t("noCategory") }));
    const confirm = administrator ? element("button", { "data-testid": "mapping-confirm", type: "button", text: t("confirm"), onclick: async () => {
      if (await post("/api/dose/protocols", { facility: u.facility, kind: u.kind, description: u.description, category: select.value || null })) route();
    } }) : null;
    return element("tr", { "data-testid": "unmapped" }, element("td", { text: u.facility }), element("td", { text: t("doseKinds")[u.kind] ?? u.kind }),
      element("td", { text: u.description }), element("td", { text: String(u.exams) }), element("td", {}, select), element("td", {}, confirm));
  });
  const mappingRows = protocols.mappings.map((m) => element("tr", { "data-testid": "mapping" },
    element("td", { text: m.facility }), element("td", { text: t("doseKinds")[m.kind] ?? m.kind }), element("td", { text: m.description }),
    element("td", { text: categoryName(m.category) }), element("td", { text: `${m.confirmed_by} ${formatTime(m.confirmed_at)}` })));

  const metricSelect = element("select", { "data-testid": "rule-metric" },
    ...Object.values(METRICS).flat().map((m) => element("option", { value: m, text: t("metrics")[m] ?? m })));
  const weeks = element("input", { "data-testid": "rule-weeks", type: "number", min: "0", value: "0" });
  const threshold = element("input", { "data-testid": "rule-threshold", type: "number", min: "0", step: "any" });
  const ruleFacility = administrator ? element("input", { "data-testid": "rule-facility", placeholder: t("facility") }) : null;
  const saveRule = (rule, value) => post("/api/dose/alert-rules",
    { ...(rule.facility ? { facility: rule.facility } : {}), metric: rule.metric, weeks: rule.weeks, threshold: value });
  const ruleForm = element("form", { class: "search", "data-testid": "rule-form" },
    ruleFacility ? labelled("facility", ruleFacility) : null, labelled("metric", metricSelect), labelled("weeks", weeks),
    labelled("threshold", threshold), element("button", { class: "primary", type: "submit", text: t("save") }));
  ruleForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = Number(threshold.value);
    if (!threshold.value || !(value > 0) || (ruleFacility && !ruleFacility.value.trim())) { message.className = "error"; message.textContent = t("needFields"); return; }
    const rule = { facility: ruleFacility?.value.trim(), metric: metricSelect.value, weeks: Number(weeks.value) || 0 };
    if (await saveRule(rule, value)) route();
  });
  const ruleRows = rules.map((r) => element("tr", { "data-testid": "rule" },
    element("td", { text: r.facility }), element("td", { text: t("metrics")[r.metric] ?? r.metric }), element("td", { text: String(r.weeks) }),
    element("td", { text: number(r.threshold) }), element("td", { text: `${r.set_by} ${formatTime(r.set_at)}` }),
    element("td", {}, element("button", { type: "button", "data-testid": "rule-remove", text: t("remove"), onclick: async () => {
      if (await saveRule({ facility: administrator ? r.facility : undefined, metric: r.metric, weeks: r.weeks }, null)) route();
    } }))));

  view.replaceChildren(
    element("button", { text: t("back"), onclick: () => { location.hash = "#/dose"; } }),
    element("h2", { text: t("doseSettings") }), labelled("operator", operator), message,
    element("h3", { text: t("unmapped") }),
    table("dose-unmapped", ["facility", "doseKind", "description", "exams", "category", ""], unmappedRows),
    element("h3", { text: t("mappings") }),
    table("dose-mappings", ["facility", "doseKind", "description", "category", "confirmedBy"], mappingRows),
    element("h3", { text: t("thresholds") }), ruleForm,
    table("dose-rules", ["facility", "metric", "weeks", "threshold", "setBy", ""], ruleRows));
  renderChrome();
}

async function doseHistoryView(patientId) {
  const history = await getJson(`/api/dose/history?${new URLSearchParams({ patient_id: patientId })}`);
  let running = 0;
  const points = history.exams.filter((e) => e.dlp !== null && e.dlp !== undefined).map((e) => ({ label: when(e.started_at), value: (running += e.dlp) }));
  const chart = chartBox("dose-history", { type: "line", data: { labels: points.map((p) => p.label),
    datasets: [{ label: `${t("cumulative")} DLP (mGy·cm)`, data: points.map((p) => p.value), borderColor: "#0b6e99", stepped: true }] } });
  const rows = history.exams.map((e) => element("tr", { class: e.drl.exceeds ? "flagged" : "", "data-testid": "history-exam" },
    element("td", { text: when(e.started_at) }), element("td", { text: t("doseKinds")[e.kind] ?? e.kind }), element("td", { text: e.description }),
    element("td", { text: number(e.ctdivol) }), element("td", { text: number(e.dlp) }), element("td", { text: number(e.dap) }),
    element("td", { text: number(e.dose_rp) }), element("td", { text: number(e.activity) })));
  const totals = Object.entries(history.totals).map(([m, v]) => `${t("metrics")[m] ?? m}: ${number(v)}`).join(" ／ ");
  view.replaceChildren(
    element("button", { text: t("back"), onclick: () => window.history.back() }),
    element("h2", { text: `${t("patientHistory")}: ${history.patient.patient_id}` }),
    element("p", { "data-testid": "history-totals", text: `${t("total")}: ${totals}` }),
    element("div", {}, chart),
    table("history-exams", ["date", "doseKind", "description", "CTDIvol", "DLP", "PKA", "Ka,r", "MBq"], rows));
  renderChrome();
  chart.draw();
}

async function route() {
  try {
    if (!token) return loginView();
    const [, page, ...rest] = location.hash.split("?")[0].split("/");
    if (page === "review") return await reviewView();
    if (page === "sharing") return await sharingView();
    if (page === "referral") return await referralView();
    if (page === "dose") return await doseView(new URLSearchParams(location.hash.split("?")[1] || ""));
    if (page === "dose-patient") return await doseHistoryView(decodeURIComponent(rest[0]));
    if (page === "dose-settings") return await doseSettingsView();
    if (page === "person") return await personView(rest[0]);
    if (page === "study") return await studyView(rest[0]);
    if (page === "viewer") return await viewerView(rest[0], rest[1]);
    return await studiesView();
  } catch (error) {
    if (error instanceof Unauthorized) {
      sessionStorage.removeItem("renkei.token");
      token = null;
      return loginView(t("badToken"));
    }
    view.append(element("p", { class: "error", "data-testid": "error", text: error.message }));
  }
}

document.getElementById("language").addEventListener("click", () => {
  language = language === "ja" ? "en" : "ja";
  localStorage.setItem("renkei.language", language);
  route();
});
document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem("renkei.token");
  token = null;
  administrator = false;
  location.hash = "";
  route();
});
document.getElementById("review").addEventListener("click", () => { location.hash = "#/review"; });
document.getElementById("sharing").addEventListener("click", () => { location.hash = "#/sharing"; });
document.getElementById("referral").addEventListener("click", () => { location.hash = "#/referral"; });
document.getElementById("dose").addEventListener("click", () => { location.hash = "#/dose"; });
window.addEventListener("hashchange", route);
if (token) checkAdministrator().then(route); else route();
