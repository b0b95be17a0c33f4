import { type EnvironmentProviders } from "@angular/core";
import { type Agent, type AgentOptions, type Props, type Revenue } from "@analytics/agent";
export declare class AnalyticsService implements Agent {
    private readonly agent;
    constructor(agent: Agent);
    pageview(url?: string): void;
    track(name: string, props?: Props, revenue?: Revenue): void;
    optIn(): void;
    optOut(): void;
    flush(): void;
}
export declare function provideAnalytics(options: AgentOptions): EnvironmentProviders;
export type { Agent, AgentOptions, Props, Revenue } from "@analytics/agent";
