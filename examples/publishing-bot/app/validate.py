"""Step 1 of `publish`: read the dropped article (JATS-like XML) and check it has what
publishing needs. A file that is not an article fails here, three times, and the
workflow fails: berth moves the file to incoming/error with its log."""

import os
import xml.etree.ElementTree as ET

import bot

args = bot.job()
path = args["input"]["file"]            # the file, now in incoming/processing
root = ET.parse(path).getroot()
article = {
    "id": (root.findtext("front/article-id") or "").strip(),
    "doi": (root.findtext("front/doi") or "").strip(),
    "title": (root.findtext("front/title") or "").strip(),
    "body": [p.text or "" for p in root.findall("body/p")],
    "file": os.path.basename(path),
}
missing = [k for k in ("id", "doi", "title") if not article[k]]
if missing:
    raise SystemExit(f"{article['file']}: no {', '.join(missing)} in <front>")
print(f"article {article['id']}: {article['title']!r}, {len(article['body'])} paragraphs")
bot.result(article)
