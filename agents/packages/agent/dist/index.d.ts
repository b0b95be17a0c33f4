export { init, createAgent, noopAgent } from "./agent";
export type { Agent, AgentOptions, Props, Revenue } from "./agent";
