"""The REST edge: what stands between API Gateway and the contracts.

`middleware` runs around every route (request ids, credentials, error shapes, CORS);
`http` is what handlers read from a request; `http_errors` the 4xx/5xx they raise;
`auth`, `hs256`, `credentials`, `api_keys` and `service_keys` turn a token or a key into
the caller's principal; `cors`, `overload` and `contract_errors` shape the answers.

This file imports nothing: every Lambda loads `http` and `cors` with app.py, and only
the REST function loads the middleware (and the JWT and key checks behind it).
"""
