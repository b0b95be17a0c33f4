// @analytics/angular: an injectable AnalyticsService and Router integration.
//
//   bootstrapApplication(App, { providers: [provideRouter(routes),
//     provideAnalytics({ siteKey: "KEY", endpoint: "https://analytics.example.com" })] });
//
//   class Checkout { private analytics = inject(AnalyticsService); ... this.analytics.track("purchase", {}, { amount: 9.99, currency: "EUR" }) }
//
// When the app has a Router, every NavigationEnd records a pageview (the first navigation
// included); agent.pageview() skips a page it has just recorded, so the agent's own history
// tracking, if left on, never counts a navigation twice. An app whose LocationStrategy is
// Angular's HashLocationStrategy (withHashLocation(), RouterModule's useHash: true) routes in the
// hash (/#/cart), so hashRouting is turned on unless the options set it: without it every route
// would be the page "/". (Like every option, it counts only when this call creates the page's
// agent: a script tag that came first keeps its own.) On the server (no window) the service does
// nothing.
//
// Written without decorators (providers via makeEnvironmentProviders and a factory), so this
// package needs no Angular compiler: it works unchanged in AOT (Angular CLI) and JIT builds.
import { HashLocationStrategy, LocationStrategy } from "@angular/common";
import { inject, makeEnvironmentProviders, provideAppInitializer, type EnvironmentProviders } from "@angular/core";
import { NavigationEnd, Router } from "@angular/router";
import { init, type Agent, type AgentOptions, type Props, type Revenue } from "@analytics/agent";

export class AnalyticsService implements Agent {
  constructor(private readonly agent: Agent) {}
  pageview(url?: string): void {
    this.agent.pageview(url);
  }
  track(name: string, props?: Props, revenue?: Revenue): void {
    this.agent.track(name, props, revenue);
  }
  optIn(): void {
    this.agent.optIn();
  }
  optOut(): void {
    this.agent.optOut();
  }
  flush(): void {
    this.agent.flush();
  }
}

export function provideAnalytics(options: AgentOptions): EnvironmentProviders {
  return makeEnvironmentProviders([
    {
      provide: AnalyticsService,
      useFactory: () =>
        new AnalyticsService(
          init({
            ...options,
            hashRouting: options.hashRouting ?? inject(LocationStrategy, { optional: true }) instanceof HashLocationStrategy,
          }),
        ),
    },
    provideAppInitializer(() => {
      const analytics = inject(AnalyticsService);
      inject(Router, { optional: true })?.events.subscribe((e) => {
        if (e instanceof NavigationEnd) analytics.pageview();
      });
    }),
  ]);
}

export type { Agent, AgentOptions, Props, Revenue } from "@analytics/agent";
