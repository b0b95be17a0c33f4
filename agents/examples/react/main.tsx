// React example shop: React Router routes, pageviews from <RouterPageviews />, a purchase event
// from useAnalytics(). The test page sets window.ANALYTICS_CONFIG (site key, endpoint, options).
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter, Link, Route, Routes, useParams } from "react-router";
import { AnalyticsProvider, useAnalytics, type AgentOptions } from "@analytics/react";
import { RouterPageviews } from "@analytics/react/router";

const config: AgentOptions = (window as any).ANALYTICS_CONFIG ?? { siteKey: "demo-site-key", endpoint: "http://127.0.0.1:5080" };

function Nav() {
  return (
    <nav>
      <Link id="nav-home" to="/">Home</Link> <Link id="nav-products" to="/products">Products</Link>
    </nav>
  );
}

function Home() {
  return <h1>Welcome</h1>;
}

function Products() {
  return (
    <ul>
      {[7, 8].map((id) => (
        <li key={id}>
          <Link id={`product-${id}`} to={`/products/${id}`}>Product {id}</Link>
        </li>
      ))}
    </ul>
  );
}

function Product() {
  const { id } = useParams();
  const analytics = useAnalytics();
  return (
    <div>
      <h1>Product {id}</h1>
      <button id="buy" onClick={() => analytics.track("purchase", { product: String(id) }, { amount: 19.99, currency: "EUR" })}>
        Buy
      </button>
    </div>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <AnalyticsProvider options={config}>
      <BrowserRouter>
        <RouterPageviews />
        <Nav />
        <Routes>
          <Route path="/" element={<Home />} />
          <Route path="/products" element={<Products />} />
          <Route path="/products/:id" element={<Product />} />
        </Routes>
      </BrowserRouter>
    </AnalyticsProvider>
  </StrictMode>,
);
