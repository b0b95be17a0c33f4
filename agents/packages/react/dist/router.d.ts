export declare function useRouterPageviews(): void;
export declare function RouterPageviews(): null;
