export interface AgentOptions {
    /** The site's public key, as shown in the dashboard. */
    siteKey: string;
    /** Base URL of the analytics server, e.g. "https://analytics.example.com". */
    endpoint: string;
    /** Pageviews on load and on pushState / replaceState / popstate path changes. Default true. */
    autoPageviews?: boolean;
    /** Treat the hash as part of the page (hash routers): "#/cart" and "#/" are different pages. */
    hashRouting?: boolean;
    /** Track clicks on links to other hosts as "Outbound Link" events. Default true. */
    outboundLinks?: boolean;
    /** Track clicks on file links (known extensions or `download` attribute) as "File Download". Default true. */
    fileDownloads?: boolean;
    /** Do nothing when the browser sends Do Not Track or Global Privacy Control. Default false. */
    respectDnt?: boolean;
    /** Send nothing until optIn() is called. Default false. */
    requireConsent?: boolean;
    /** Track even headless / automated / bot-like user agents (tests). Default false. */
    trackBots?: boolean;
    /** Send a batch once this many events are waiting. Default 10. */
    batchSize?: number;
    /** ...or this many milliseconds after the first one arrived. Default 1000. */
    flushInterval?: number;
    /** At most this many events wait for a connection; the oldest are dropped first. Default 1000. */
    maxQueue?: number;
}
/** Custom properties: at most 30, key 1-128 bytes, value at most 512 bytes (server limits). */
export type Props = Record<string, string | number | boolean>;
export interface Revenue {
    /** In currency units: 12.34 means 12.34 EUR. */
    amount: number;
    /** ISO 4217 code, e.g. "EUR". */
    currency: string;
}
export interface Agent {
    /** Records a pageview. Without a URL: the current page, unless it is the page already
     *  recorded (so routers and the automatic tracking never count one navigation twice).
     *  With a URL: always recorded. */
    pageview(url?: string): void;
    /** Records a custom event, with optional properties and revenue. */
    track(name: string, props?: Props, revenue?: Revenue): void;
    /** Consent given: tracking starts now (and records the current page if it was not yet). */
    optIn(): void;
    /** Consent withdrawn: nothing more is sent, and what was waiting is discarded. */
    optOut(): void;
    /** Sends what is waiting now instead of at the end of the batching interval. */
    flush(): void;
}
/** Creates an agent. Most pages want `init`, which keeps one per page. */
export declare function createAgent(o: AgentOptions): Agent;
/** An agent that does nothing: what `init` gives where there is no browser (server-side
 *  rendering) or when the options are unusable. */
export declare const noopAgent: Agent;
/** The page's agent: created on the first call, returned by every later one (options of later
 *  calls are ignored), so a page never holds more than one WebSocket. Never throws: without a
 *  browser (server-side rendering) or with unusable options it returns `noopAgent`. */
export declare const init: (options: AgentOptions) => Agent;
