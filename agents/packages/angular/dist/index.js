import { inject, makeEnvironmentProviders, provideAppInitializer } from "@angular/core";
import { NavigationEnd, Router } from "@angular/router";
import { init } from "@analytics/agent";
class AnalyticsService {
  constructor(agent) {
    this.agent = agent;
  }
  pageview(url) {
    this.agent.pageview(url);
  }
  track(name, props, revenue) {
    this.agent.track(name, props, revenue);
  }
  optIn() {
    this.agent.optIn();
  }
  optOut() {
    this.agent.optOut();
  }
  flush() {
    this.agent.flush();
  }
}
function provideAnalytics(options) {
  return makeEnvironmentProviders([
    { provide: AnalyticsService, useFactory: () => new AnalyticsService(init(options)) },
    provideAppInitializer(() => {
      const analytics = inject(AnalyticsService);
      inject(Router, { optional: true })?.events.subscribe((e) => {
        if (e instanceof NavigationEnd) analytics.pageview();
      });
    })
  ]);
}
export {
  AnalyticsService,
  provideAnalytics
};
