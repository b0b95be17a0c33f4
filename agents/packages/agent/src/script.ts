// The script-tag entry (dist/agent.min.js). Every option of AgentOptions can be given as a
// data- attribute of the tag, in kebab case; an attribute without a value means true and "false"
// means false:
//
//   <script defer src="https://analytics.example.com/agent.js" data-site-key="KEY"></script>
//
//   data-site-key          required
//   data-endpoint          server base URL; default: the origin the script was loaded from
//   data-hash-routing, data-auto-pageviews="false", data-outbound-links="false",
//   data-file-downloads="false", data-respect-dnt, data-require-consent, data-track-bots,
//   data-batch-size="10", data-flush-interval="1000", data-max-queue="1000"
//
// The agent is window.analyticsAgent (the page's one agent: see init). Calls made before the script ran can wait in a stub's
// `q` array as [method, ...args]; they are replayed in order (see README).
import { AGENT, createAgent } from "./agent";

try {
  const s = document.currentScript as HTMLScriptElement;
  const data = s.dataset;
  const w = window as any;
  const options: any = { endpoint: new URL(s.src).origin };
  for (const k in data) options[k] = data[k] == "false" ? false : data[k] || true;
  // An agent already on the page (an npm package's, or this script loaded twice) is used as it
  // is: a second one would count everything twice.
  const agent: any = (w[AGENT] ||= createAgent(options));
  const q: unknown[][] = w.analyticsAgent?.q || [];
  w.analyticsAgent = agent;
  for (const [method, ...args] of q) agent[method as string](...args);
} catch {}
