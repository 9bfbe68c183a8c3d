// coder-task-agent for OpenCode: the session's events as the Coder task's status.
//
// OpenCode runs JS/TS plugins, not hook commands. This plugin forwards the events that say
// where a turn is (a prompt, a tool, a permission prompt, the session going idle, an error) to
// `coder-task-agent hook opencode`, one process per event, the event as JSON on its stdin. What
// each event reports is decided there (agent/hooks/opencode.py; docs/hooks.md), not here.
//
// It never holds OpenCode up: a handler only queues the event and returns. The queue runs one
// hook at a time, in order (a late "working" must not land after the "idle" that ended the
// turn), each bounded by TIMEOUT_MS and killed past it. Nothing the hook prints reaches
// OpenCode's screen; a hook that cannot start is skipped.
//
// CODER_TASK_AGENT_COMMAND names the program when `coder-task-agent` is not on PATH.

import { spawn } from "node:child_process";

const COMMAND = process.env.CODER_TASK_AGENT_COMMAND || "coder-task-agent";
const TIMEOUT_MS = 10000;
// Reading the last answer through OpenCode's client must not hold the queue for long.
const ANSWER_TIMEOUT_MS = 2000;
// Bus events forwarded as they are; `session.updated` is only read (which session is whose).
const FORWARDED = new Set([
  "session.created",
  "session.status",
  "session.idle",
  "session.error",
  "permission.asked",
  "permission.updated",
]);

function runHook(envelope) {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(COMMAND, ["hook", "opencode"], { stdio: ["pipe", "ignore", "ignore"] });
    } catch {
      resolve();
      return;
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    child.on("error", done);
    child.on("exit", done);
    child.stdin.on("error", () => {});
    child.stdin.end(JSON.stringify(envelope));
  });
}

function withTimeout(promise, ms) {
  return Promise.race([promise, new Promise((resolve) => setTimeout(resolve, ms))]);
}

async function lastAnswer(client, sessionID) {
  try {
    const result = await withTimeout(client.session.messages({ path: { id: sessionID } }), ANSWER_TIMEOUT_MS);
    const messages = Array.isArray(result) ? result : result?.data;
    if (!Array.isArray(messages)) return undefined;
    for (let i = messages.length - 1; i >= 0; i--) {
      const message = messages[i];
      if (message?.info?.role !== "assistant") continue;
      const parts = Array.isArray(message.parts) ? message.parts : [];
      const text = parts
        .filter((part) => part?.type === "text" && typeof part.text === "string" && !part.synthetic)
        .map((part) => part.text)
        .join("\n");
      return text || undefined;
    }
  } catch {
    // No answer: the hook reports "Turn finished".
  }
  return undefined;
}

export const CoderTaskAgent = async ({ client }) => {
  const parents = new Map(); // sessionID -> parentID, for subagents' sessions
  const errored = new Set(); // sessions whose turn ended on session.error
  let queue = Promise.resolve();

  const send = (type, properties, sessionID, extra = async () => ({})) => {
    const parentID = sessionID ? parents.get(sessionID) : undefined;
    queue = queue
      .then(async () => {
        const envelope = { type, properties, ...(await extra()) };
        if (parentID) envelope.parentID = parentID;
        await runHook(envelope);
      })
      .catch(() => {});
  };

  return {
    "chat.message": async (input, output) => {
      const sessionID = input?.sessionID;
      errored.delete(sessionID);
      const parts = Array.isArray(output?.parts) ? output.parts : [];
      const text = parts
        .filter((part) => part?.type === "text" && typeof part.text === "string" && !part.synthetic)
        .map((part) => part.text)
        .join("\n");
      send("chat.message", { sessionID, text }, sessionID);
    },
    "tool.execute.before": async (input) => {
      send("tool.execute.before", { sessionID: input?.sessionID, tool: input?.tool }, input?.sessionID);
    },
    event: async ({ event }) => {
      const type = event?.type;
      const properties = event?.properties ?? {};
      const info = properties.info;
      if ((type === "session.created" || type === "session.updated") && info?.id && info.parentID) {
        parents.set(info.id, info.parentID);
      }
      if (!FORWARDED.has(type)) return;
      const sessionID = properties.sessionID ?? info?.id;
      if (type === "session.error") {
        errored.add(sessionID);
        send(type, properties, sessionID);
      } else if (type === "session.idle") {
        const afterError = errored.delete(sessionID);
        send(type, properties, sessionID, async () =>
          afterError ? { afterError: true } : { answer: await lastAnswer(client, sessionID) },
        );
      } else {
        send(type, properties, sessionID);
      }
    },
  };
};
