"""End-to-end tests: the running local stack over HTTP, WebSocket and a browser."""

# A request's failsafe, not a wait: each test waits on the event it expects. On a busy
# 2-core machine (load 20: CI beside other work) the first request to a freshly started
# stack, which imports the app and builds its first schemas, took more than 10 s.
HTTP_TIMEOUT = 60
