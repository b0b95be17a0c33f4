import { inject } from "vue";
import { init, noopAgent } from "@analytics/agent";
const AnalyticsKey = /* @__PURE__ */ Symbol("analytics");
function createAnalytics(options) {
  return {
    install(app) {
      const { router, ...agentOptions } = options;
      if (router && agentOptions.hashRouting === void 0)
        agentOptions.hashRouting = router.options.history.base.includes("#");
      const agent = init(agentOptions);
      app.provide(AnalyticsKey, agent);
      app.config.globalProperties.$analytics = agent;
      router?.afterEach((_to, _from, failure) => {
        if (!failure) agent.pageview();
      });
    }
  };
}
function useAnalytics() {
  return inject(AnalyticsKey, noopAgent);
}
export {
  AnalyticsKey,
  createAnalytics,
  useAnalytics
};
