"""The steps of `five-minute` (what cron.py started every five minutes): refresh the
site's feed and sitemap from what `publish` put there.

    python3 site_tasks.py collect | feed | sitemap

`collect` reads the index and says what is new since the last run it saw, from a state
file, not from "the last five minutes of this machine's clock": a late or missed run
loses nothing. `feed` and `sitemap` both wait for it and run side by side."""

import html
import json
import os
import sys

import bot

task = sys.argv[1]
args = bot.job()
state = os.path.join(bot.STATE, "five-minute.json")

if task == "collect":
    index = bot.load_index()
    try:
        with open(state) as f:
            seen = set(json.load(f))
    except FileNotFoundError:
        seen = set()
    new = [a["id"] for a in index if a["id"] not in seen]
    bot.write(state, json.dumps([a["id"] for a in index]))
    print(f"{len(index)} articles, {len(new)} new since the last run: {', '.join(new) or '-'}")
    bot.result({"articles": index, "new": new})
elif task == "feed":
    articles = args["parents"]["collect"]["articles"]
    items = "".join(
        f"<item><title>{html.escape(a['title'])}</title><link>{a['url']}</link><guid>{a['doi']}</guid></item>"
        for a in reversed(articles)
    )
    bot.write(os.path.join(bot.SITE, "feed.xml"),
              f'<?xml version="1.0"?><rss version="2.0"><channel><title>Published articles</title>{items}</channel></rss>\n')
    print(f"feed.xml: {len(articles)} items")
    bot.result({"items": len(articles), "release": bot.release()})
elif task == "sitemap":
    articles = args["parents"]["collect"]["articles"]
    urls = "".join(f"<url><loc>{a['url']}</loc></url>" for a in articles)
    bot.write(os.path.join(bot.SITE, "sitemap.xml"),
              f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>\n')
    print(f"sitemap.xml: {len(articles)} urls")
    bot.result({"urls": len(articles)})
else:
    raise SystemExit(f"unknown task {task!r}")
