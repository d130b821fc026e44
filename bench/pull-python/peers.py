"""The three Python task queues measured beside berth's pull workers: one no-op task
each, on the Redis the benchmark started (REDIS_URL), with results off and each
system's durable setting (acks after the task ran, where it has one)."""
import os

URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
SYSTEM = os.environ.get("PEER", "")

if SYSTEM == "celery":
    from celery import Celery

    app = Celery("bench", broker=URL)
    app.conf.update(
        task_acks_late=True,  # acknowledged after the task ran, as berth records it
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )

    @app.task(name="noop")
    def noop(i):
        return None

elif SYSTEM == "dramatiq":
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    dramatiq.set_broker(RedisBroker(url=URL))

    @dramatiq.actor(max_retries=0)
    def noop(i):
        return None

elif SYSTEM == "huey":
    from huey import RedisHuey

    huey = RedisHuey("bench", url=URL, results=False)

    @huey.task()
    def noop(i):
        return None
