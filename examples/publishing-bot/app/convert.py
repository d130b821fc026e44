"""Step 2 of `publish`: convert the article to HTML. The converter it stands for times
out now and then; this one fails its first attempt on purpose, so that berth's retry
(max_attempts, backoff) shows: the step's second attempt succeeds."""

import html
import os
import sys

import bot

args = bot.job()
article = args["parents"]["validate"]
if os.environ.get("BERTH_ATTEMPT") == "1":
    print(f"converting {article['id']}: the converter did not answer within 30s", file=sys.stderr)
    sys.exit(1)
body = "".join(f"<p>{html.escape(p)}</p>" for p in article["body"])
print(f"converted {article['id']} on attempt {os.environ.get('BERTH_ATTEMPT')}")
bot.result({"id": article["id"], "html": f"<h1>{html.escape(article['title'])}</h1>{body}"})
