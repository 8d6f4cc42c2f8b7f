"""Keys and projects with limits: requests and tokens per minute, a USD budget per day or month,
and the models they may call (issue 19).

`rules` says what a limit is and checks what callers write; `caller` carries who is calling through
a request; `counters` and `redis_counters` count (in process, or atomically across replicas in
Redis); `ledger` keeps the usage totals in the store, which budgets are counted from after a
restart; `gate` is what the engine asks before a model call and tells after one; `keys` is what the
admin API and the CLI manage keys with.
"""
