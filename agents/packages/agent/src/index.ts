// @analytics/agent: the ESM entry. One agent per page: `init` creates it, later calls return it.
export { init, createAgent, noopAgent } from "./agent";
export type { Agent, AgentOptions, Props, Revenue } from "./agent";
