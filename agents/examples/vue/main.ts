// Vue example shop: Vue Router routes, pageviews from the plugin's router integration, a
// purchase event from useAnalytics(). Render functions, so no template compiler is bundled.
// The test page sets window.ANALYTICS_CONFIG (site key, endpoint, options). Opened at /#/, the app
// routes with a hash history (createWebHashHistory()), which createAnalytics() detects.
import { createApp, defineComponent, h } from "vue";
import { RouterLink, RouterView, createRouter, createWebHashHistory, createWebHistory, useRoute } from "vue-router";
import { createAnalytics, useAnalytics, type AgentOptions } from "@analytics/vue";

const config: AgentOptions = (window as any).ANALYTICS_CONFIG ?? { siteKey: "demo-site-key", endpoint: "http://127.0.0.1:5080" };

const Home = defineComponent({ render: () => h("h1", "Welcome") });

const Products = defineComponent({
  render: () => h("ul", [7, 8].map((id) => h("li", { key: id }, [h(RouterLink, { id: `product-${id}`, to: `/products/${id}` }, () => `Product ${id}`)]))),
});

const Product = defineComponent({
  setup() {
    const route = useRoute();
    const analytics = useAnalytics();
    return () =>
      h("div", [
        h("h1", `Product ${route.params.id}`),
        h("button", { id: "buy", onClick: () => analytics.track("purchase", { product: String(route.params.id) }, { amount: 19.99, currency: "EUR" }) }, "Buy"),
      ]);
  },
});

const App = defineComponent({
  render: () => [
    h("nav", [h(RouterLink, { id: "nav-home", to: "/" }, () => "Home"), " ", h(RouterLink, { id: "nav-products", to: "/products" }, () => "Products")]),
    h(RouterView),
  ],
});

const router = createRouter({
  history: location.hash.startsWith("#/") ? createWebHashHistory() : createWebHistory(),
  routes: [
    { path: "/", component: Home },
    { path: "/products", component: Products },
    { path: "/products/:id", component: Product },
  ],
});

createApp(App).use(router).use(createAnalytics({ ...config, router })).mount("#root");
