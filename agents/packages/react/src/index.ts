// @analytics/react: a provider that creates the page's agent and a hook that returns it.
//
//   <AnalyticsProvider options={{ siteKey: "KEY", endpoint: "https://analytics.example.com" }}>
//     <App />
//   </AnalyticsProvider>
//
//   const analytics = useAnalytics();  analytics.track("signup", { plan: "pro" });
//
// The agent is created during the provider's first render (not in an effect), so children's
// effects, which run before their parent's, can already use it. That is safe because `init`
// keeps one agent per page: StrictMode's double render, remounts and several providers all get
// the same agent, and so one WebSocket. On the server `init` returns an agent that does nothing.
import { createContext, createElement, useContext, useState, type ReactNode } from "react";
import { init, noopAgent, type Agent, type AgentOptions } from "@analytics/agent";

const AnalyticsContext = createContext<Agent>(noopAgent);

export interface AnalyticsProviderProps {
  /** Read on the first render only; later changes are ignored (one agent per page). */
  options: AgentOptions;
  children?: ReactNode;
}

export function AnalyticsProvider({ options, children }: AnalyticsProviderProps) {
  const [agent] = useState(() => init(options));
  return createElement(AnalyticsContext.Provider, { value: agent }, children);
}

/** The page's agent (a no-op agent outside an AnalyticsProvider). */
export function useAnalytics(): Agent {
  return useContext(AnalyticsContext);
}

export type { Agent, AgentOptions, Props, Revenue } from "@analytics/agent";
