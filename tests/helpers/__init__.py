"""What the tests share instead of copying: one home for each test-side fact.

- `bodies`: the search preference bodies (the contract's defaults, the usual buddy and coach searches).
- `dispatch`: the `dispatch_send` stub (the broker or the Durable API is the far side of a test).
- `durable`: the settings that point the console at a durable stack (the local one, or one behind a proxy).
- `aws`: dummy AWS credentials and moto's DynamoDB in server mode (no Django: the durable tests import it).
- `http`: the loopback HTTP fakes' one base (a server on 127.0.0.1 port 0, quiet, JSON replies).
- `browser`: the one Chromium launch for the Playwright tests.
- `errors`: reading the project's one error shape; `polling`: the one bounded wait.
- `factories`: factory_boy factories for the models.
- the fakes: `snowtrace_fake` (SnowTrace's services), `webhook_receiver` (its notification endpoint),
  `otlp_receiver` (an OTLP/HTTP collector).
"""
