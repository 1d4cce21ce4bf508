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
