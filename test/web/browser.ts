// Headless Chromium for the page tests: Debian's /usr/bin/chromium driven by playwright-core
// (never a downloaded browser). The flags keep it off the network, which this machine closes.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext } from 'playwright-core';

export const CHROMIUM = process.env.DSV4_CHROMIUM ?? '/usr/bin/chromium';
/** Screenshots land here (gitignored). */
export const TEST_OUTPUT = join(process.cwd(), 'test-output');

/** Why the browser tests cannot run here, or null when they can. */
export function browserSkipReason(): string | null {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install -y chromium; .ci/run does this)`;
  return null;
}

export async function launchChromium(): Promise<{ browser: Browser; context: BrowserContext }> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // playwright gives each launch a new empty profile directory itself
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  mkdirSync(TEST_OUTPUT, { recursive: true });
  return { browser, context };
}
