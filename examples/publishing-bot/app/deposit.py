"""Step 4 of `publish`: put the rendered article on the site (site/articles/ID.html)
and in its index. The page says which release published it, so a deploy in the middle
of a workflow shows: the render ran in the old release, this step in the new one."""

import html
import json
import os

import bot

args = bot.job()
render = args["parents"]["render"]
article = args["parents"]["validate"]
page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(article['title'])}</title></head>
<body>{render['html']}<p><small>doi:{html.escape(article['doi'])} · rendered by release {render['release']},
published by release {bot.release()} (bot version {bot.version()})</small></p></body></html>"""
bot.write(os.path.join(bot.SITE, "articles", article["id"] + ".html"), page)

index = [a for a in bot.load_index() if a["id"] != article["id"]]
index.append({"id": article["id"], "title": article["title"], "doi": article["doi"],
              "url": f"/articles/{article['id']}.html", "workflow": os.environ.get("BERTH_WORKFLOW_ID")})
bot.write(os.path.join(bot.SITE, "index.json"), json.dumps(index, indent=1))
items = "".join(f'<li><a href="{a["url"]}">{html.escape(a["title"])}</a></li>' for a in index)
bot.write(os.path.join(bot.SITE, "index.html"),
          f'<!doctype html><html><head><meta charset="utf-8"><title>Published</title></head>'
          f'<body><h1>Published articles</h1><ul id="articles">{items}</ul>'
          f'<p><a href="/feed.xml">feed</a> · <a href="/sitemap.xml">sitemap</a></p></body></html>')
print(f"published {article['id']} at /articles/{article['id']}.html")
bot.result({"url": f"/articles/{article['id']}.html", "release": bot.release(), "version": bot.version()})
