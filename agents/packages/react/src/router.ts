// @analytics/react/router: pageviews from React Router (v7, package "react-router"). Render
// <RouterPageviews /> (or call useRouterPageviews()) once, inside the router and the
// AnalyticsProvider. Every change of the location's path (or hash, with hashRouting) records one
// pageview, the first render included. agent.pageview() skips a page it has just recorded, so
// StrictMode's double effects, and the agent's own history tracking if it is left on, never
// count a navigation twice. With a HashRouter (or createHashRouter) give the provider
// `hashRouting: true`: the agent exists before this component can see the router, and without it
// every route is the page "/".
import { useEffect } from "react";
import { useLocation } from "react-router";
import { useAnalytics } from "./index.js";

export function useRouterPageviews(): void {
  const agent = useAnalytics();
  const { pathname, hash } = useLocation();
  useEffect(() => agent.pageview(), [agent, pathname, hash]);
}

export function RouterPageviews(): null {
  useRouterPageviews();
  return null;
}
