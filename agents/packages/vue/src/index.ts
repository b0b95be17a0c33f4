// @analytics/vue: a Vue 3 plugin that creates the page's agent, provides it to components
// (useAnalytics() or this.$analytics) and, given the app's router, records a pageview after
// every successful navigation, the initial one included.
//
//   app.use(createAnalytics({ siteKey: "KEY", endpoint: "https://analytics.example.com", router }))
//
// With a hash-history router (createWebHashHistory) the hash is part of the page, so hashRouting
// is turned on unless the options say otherwise. agent.pageview() skips a page it has just
// recorded, so the agent's own history tracking, if left on, never counts a navigation twice.
import { inject, type App, type InjectionKey, type Plugin } from "vue";
import type { Router } from "vue-router";
import { init, noopAgent, type Agent, type AgentOptions } from "@analytics/agent";

export const AnalyticsKey: InjectionKey<Agent> = Symbol("analytics");

export interface AnalyticsPluginOptions extends AgentOptions {
  /** The app's Vue Router: pageviews follow its navigations. */
  router?: Router;
}

export function createAnalytics(options: AnalyticsPluginOptions): Plugin {
  return {
    install(app: App) {
      const { router, ...agentOptions } = options;
      if (router && agentOptions.hashRouting === undefined)
        agentOptions.hashRouting = router.options.history.base.includes("#");
      const agent = init(agentOptions);
      app.provide(AnalyticsKey, agent);
      app.config.globalProperties.$analytics = agent;
      router?.afterEach((_to, _from, failure) => {
        // The URL is already the new one here; a failed or aborted navigation changed nothing.
        if (!failure) agent.pageview();
      });
    },
  };
}

/** The app's agent (a no-op agent when the plugin is not installed). */
export function useAnalytics(): Agent {
  return inject(AnalyticsKey, noopAgent);
}

declare module "vue" {
  interface ComponentCustomProperties {
    $analytics: Agent;
  }
}

export type { Agent, AgentOptions, Props, Revenue } from "@analytics/agent";
