def handle(job):
    return None
