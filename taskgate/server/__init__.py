"""The HTTP machinery under the dialects: how a request reaches its handler, and its answer the socket.

`dispatch` (the ASGI app, and `Endpoint`, an entry of a dialect's route table), `protocol` (the
HTTP protocol `taskgate serve` runs), `request_io` (JSON in and out, errors, the body reader),
`sse` (event streams), `access_log`, `auth` and `disconnect` (a client leaving mid-call).

The request path takes a few shortcuts past what Starlette and uvicorn do by default. They all
live in this package, so that the app's wiring and the handlers read without them. Each one, why
it is there, and what it was measured to save (on the project's 2-core VM; `python -m
bench.server_shortcuts` repeats the in-process figures):

- Fixed paths skip the router (`dispatch.App`). A request for a path without parameters
  (`/v2/call`, `/v3/call`, the OpenAI chat and most others) finds its handler in one dict
  look-up. Starlette's router tries each route's pattern in turn, and wraps the handler, and every
  send of its response, in its own exception handling. With a handler that answers at once, the
  look-up saves 2.3 µs a request on `/v2/call` (the first route), 7.5 µs on
  `/v3/compat/chat/completions` and about 10 µs on `/v3/call`. Paths with parameters, a 404, a 405 and
  the trailing-slash redirect still go through the router.
- No middleware. `request_io.guarded` wraps each handler: it turns errors into their wire body and
  writes the access line (buffered by `access_log`), where a middleware would wrap every send of
  every response. Handlers therefore never build an error response themselves.
- A frozen heap (`dispatch.App`). Once the app has started, `gc.freeze()` moves everything loaded
  so far (libraries, the price table, the wiring) out of the collector's sight. A full collection
  of that heap takes 68 to 75 ms of CPU here, in whichever request it lands; frozen, a few µs.
  With no request leaving a reference cycle behind (tests/e2e/test_no_reference_cycles.py),
  Taskgate's own collections cost about 2 µs a request (bench/README.md).
- A JSON answer leaves in one write (`protocol`). uvicorn writes a response's head the moment the
  app starts it, and its body when it comes: two TCP segments, each of which can cost the client a
  wake-up before it has the body it waits for. Here the head of a response of known length waits
  for its body and both leave in one `writev` (checked with strace); a stream's head still goes at
  once. The same protocol bounds the time and size of a request's head and body.
- Headers and body are read once (`request_io.header_map`, `request_io.read_body`). The headers
  become a dict on first use (Starlette's `Headers` scans the whole list on every look-up), and the
  body is read from the ASGI messages themselves (Starlette's `Request.stream()` is an async
  generator). Four header look-ups and a 2 KB body: about 2 µs a request saved.
- A stream writes from the request's own task (`sse`). Frames go to the socket with no queue in
  between, one write per engine event (v2's span id and OpenAI's role chunk ride with the first
  delta); one guard task sends heartbeats and notices a client leaving, where there were three.
"""
