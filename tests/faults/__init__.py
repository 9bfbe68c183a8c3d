"""Fault injection: real loopback servers that misbehave, and `python -m agent` subprocesses.

Budgets of a subprocess test (SHUTDOWN_BUDGET, REQUEST_TIMEOUT, HOOK_BUDGET, STOP_FETCH_TIMEOUT)
are wall-clock time on a shared two-core machine, so the outcome a test asserts must not depend
on how much work fits in them (test_coder_faults holds the settings):
- an outcome that ends the process on its own (success, a refusal not retried, a 404, a
  configuration error) gets ENDS_ON_ITS_OWN, budgets no load exhausts; the test stays fast;
- an outcome that needs the budget to run out (5xx, 429, refused, a reset, a black hole) gets
  UNTIL_THE_BUDGET_ENDS and asserts only what holds under any load: the exit code, the one
  outcome line, at least one attempt, the time on the process's own clock
  (assert_within_budget). Never how many attempts fit in the budget: that a fault is retried
  is proved by a server that fails once and then stores (the process's `snapshot_retry`).
- nothing another process must do may share a short budget with the step under test. The
  one-shot `snapshot` fetches /messages first, within its budget: a test whose budget must
  run out in the upload also accepts the fetch's ending (`ended_by_the_budget`), and the
  attempt is proved where nothing comes first: the daemon's stop path, from its mirror.
The end-to-end `peers.env` gives the stop path and the hooks budgets no load exhausts.
"""
