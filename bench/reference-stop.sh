#!/usr/bin/env bash
# Coder's reference stop script, reimplemented faithfully for the benchmarks (not shipped, not
# used by the agent): curl GET /messages, keep the last ten, drop the oldest until the body is
# under 64 KB, POST it. Like the original it measures the body in characters (bash ${#...}),
# not bytes, and posts whatever is left, even one message over the limit.
# Environment: AGENTAPI_URL, CODER_AGENT_URL, TASK_ID, HEADER_FILE (holds the token header, so
# that the token is on no command line).
set -euo pipefail
limit=65536
messages=$(curl -fsS --max-time 5 "$AGENTAPI_URL/messages")
body=$(jq -c '{messages: .messages[-10:]}' <<<"$messages")
while [ "${#body}" -gt "$limit" ] && [ "$(jq '.messages | length' <<<"$body")" -gt 1 ]; do
  body=$(jq -c '{messages: .messages[1:]}' <<<"$body")
done
curl -sS --max-time 5 -o /dev/null -X POST -H "@$HEADER_FILE" \
  -H 'Content-Type: application/json' --data-binary @- \
  "$CODER_AGENT_URL/api/v2/workspaceagents/me/tasks/$TASK_ID/log-snapshot?format=agentapi" \
  <<<"$body"
