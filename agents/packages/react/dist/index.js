import { createContext, createElement, useContext, useState } from "react";
import { init, noopAgent } from "@analytics/agent";
const AnalyticsContext = createContext(noopAgent);
function AnalyticsProvider({ options, children }) {
  const [agent] = useState(() => init(options));
  return createElement(AnalyticsContext.Provider, { value: agent }, children);
}
function useAnalytics() {
  return useContext(AnalyticsContext);
}
export {
  AnalyticsProvider,
  useAnalytics
};
