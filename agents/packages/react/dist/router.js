import { useEffect } from "react";
import { useLocation } from "react-router";
import { useAnalytics } from "./index.js";
function useRouterPageviews() {
  const agent = useAnalytics();
  const { pathname, hash } = useLocation();
  useEffect(() => agent.pageview(), [agent, pathname, hash]);
}
function RouterPageviews() {
  useRouterPageviews();
  return null;
}
export {
  RouterPageviews,
  useRouterPageviews
};
