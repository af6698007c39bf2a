"""Screenshots of each role's home page in the staff console, for the README and docs/console.

Run it against a console serving the demo branch:

    ./dev up --demo                      # in one terminal (prints the console's address)
    .venv/bin/python scripts/console_screenshots.py --data-dir .branch \\
        --url http://127.0.0.1:8080      # in another

It signs in with each demo account (<data-dir>/demo.accounts, written by `branch up --demo`),
opens the role's home page in Debian's Chromium (Playwright, as tests/console does), and
writes docs/console/<role>.png (English; `--lang zh_CN` for Chinese, files <role>.zh_CN.png).
Names are Chinese: the machine needs a CJK font (Debian: apt-get install fonts-wqy-microhei),
else they show as boxes.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from services.cli.demo import read_demo_accounts

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


async def shoot(url: str, data_dir: Path, out: Path, lang: str, roles: list[str]) -> None:
    from playwright.async_api import async_playwright

    found = read_demo_accounts(data_dir)
    if found is None:
        raise SystemExit(f"no demo accounts in {data_dir}: start it with `branch up --demo`")
    password, accounts = found
    out.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        for role, employee_no, _name in accounts:
            if roles and role not in roles:
                continue
            context = await browser.new_context(
                viewport={"width": 1280, "height": 900},
                locale="zh-CN" if lang == "zh_CN" else "en-GB")
            await context.add_cookies([{"name": "console_lang", "value": lang, "url": url}])
            page = await context.new_page()
            await page.goto(url.rstrip("/") + "/signin")
            await page.fill("#employee_no", employee_no)
            await page.fill("#password", password)
            await page.click("form.stack button[type=submit]")
            await page.wait_for_load_state("networkidle")
            await page.wait_for_timeout(500)  # charts finish drawing (no event to await)
            suffix = "" if lang == "en" else f".{lang}"
            path = out / f"{role}{suffix}.png"
            await page.screenshot(path=str(path), full_page=True)
            print(f"{path.relative_to(ROOT)}  {page.url}")
            await context.close()
        await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".branch")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    parser.add_argument("--lang", choices=["en", "zh_CN"], default="en")
    parser.add_argument("roles", nargs="*", help="only these roles (default: every demo role)")
    args = parser.parse_args()
    asyncio.run(shoot(args.url, args.data_dir, args.out, args.lang, args.roles))


if __name__ == "__main__":
    main()
