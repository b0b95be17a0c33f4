import { type ReactNode } from "react";
import { type Agent, type AgentOptions } from "@analytics/agent";
export interface AnalyticsProviderProps {
    /** Read on the first render only; later changes are ignored (one agent per page). */
    options: AgentOptions;
    children?: ReactNode;
}
export declare function AnalyticsProvider({ options, children }: AnalyticsProviderProps): import("react").FunctionComponentElement<import("react").ProviderProps<Agent>>;
/** The page's agent (a no-op agent outside an AnalyticsProvider). */
export declare function useAnalytics(): Agent;
export type { Agent, AgentOptions, Props, Revenue } from "@analytics/agent";
