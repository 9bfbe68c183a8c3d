// coder-task-agent's OpenCode plugin: `coder-task-agent hook install opencode` copies this file
// into OpenCode's plugins directory.
// TODO(lead): placeholder from the installer's branch; the real plugin (forwarding OpenCode's
// events to `coder-task-agent hook opencode`) comes from the hook-runtime branch and replaces
// this file when the branches are merged. As it stands it registers no handler.
export const CoderTaskAgent = async () => ({});
