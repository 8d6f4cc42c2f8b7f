"""Replicas sharing one Postgres and one Redis (`TASKGATE_REDIS_URL`).

- `redis_link`: the one Redis connection of a process, and whether Redis answers right now.
- `notices`: change notices over pub/sub, so every replica drops what it remembers at once.
- `shared_cache`: the response cache in Redis, its TTL Redis's own; the store's cache when Redis is down.
- `span_mirror`: a just-answered span, readable from every replica before its batch reaches the store.
- `wiring`: all of it built from the settings, or the single-node stand-ins without Redis.

Redis is never required for an answer: any Redis failure falls back to what one node does alone,
with a logged warning, and Redis is used again once it answers.
"""
