import { type InjectionKey, type Plugin } from "vue";
import type { Router } from "vue-router";
import { type Agent, type AgentOptions } from "@analytics/agent";
export declare const AnalyticsKey: InjectionKey<Agent>;
export interface AnalyticsPluginOptions extends AgentOptions {
    /** The app's Vue Router: pageviews follow its navigations. */
    router?: Router;
}
export declare function createAnalytics(options: AnalyticsPluginOptions): Plugin;
/** The app's agent (a no-op agent when the plugin is not installed). */
export declare function useAnalytics(): Agent;
declare module "vue" {
    interface ComponentCustomProperties {
        $analytics: Agent;
    }
}
export type { Agent, AgentOptions, Props, Revenue } from "@analytics/agent";
