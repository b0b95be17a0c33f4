// Angular example shop, compiled just in time in the browser (@angular/compiler is bundled):
// standalone components, Router, pageviews from provideAnalytics()'s Router integration and a
// purchase event from the injected AnalyticsService. The Angular CLI is not used; esbuild bundles
// this file (TypeScript decorators) and the JIT compiler compiles the templates at start.
// The test page sets window.ANALYTICS_CONFIG (site key, endpoint, options). Opened at /#/, the app
// routes with Angular's HashLocationStrategy (withHashLocation()), which provideAnalytics() detects.
import "@angular/compiler";
import { Component, inject, provideZonelessChangeDetection } from "@angular/core";
import { bootstrapApplication } from "@angular/platform-browser";
import { ActivatedRoute, RouterLink, RouterOutlet, provideRouter, withHashLocation, type Routes } from "@angular/router";
import { AnalyticsService, provideAnalytics, type AgentOptions } from "@analytics/angular";

const config: AgentOptions = (window as any).ANALYTICS_CONFIG ?? { siteKey: "demo-site-key", endpoint: "http://127.0.0.1:5080" };

@Component({ selector: "app-home", template: `<h1>Welcome</h1>` })
class HomeComponent {}

@Component({
  selector: "app-products",
  imports: [RouterLink],
  template: `<ul>
    @for (id of ids; track id) {
      <li><a [id]="'product-' + id" [routerLink]="['/products', id]">Product {{ id }}</a></li>
    }
  </ul>`,
})
class ProductsComponent {
  ids = [7, 8];
}

@Component({
  selector: "app-product",
  template: `<h1>Product {{ id }}</h1><button id="buy" (click)="buy()">Buy</button>`,
})
class ProductComponent {
  private analytics = inject(AnalyticsService);
  id = inject(ActivatedRoute).snapshot.paramMap.get("id");
  buy() {
    this.analytics.track("purchase", { product: String(this.id) }, { amount: 19.99, currency: "EUR" });
  }
}

@Component({
  selector: "app-root",
  imports: [RouterLink, RouterOutlet],
  template: `<nav><a id="nav-home" routerLink="/">Home</a> <a id="nav-products" routerLink="/products">Products</a></nav>
    <router-outlet />`,
})
class AppComponent {}

const routes: Routes = [
  { path: "", component: HomeComponent },
  { path: "products", component: ProductsComponent },
  { path: "products/:id", component: ProductComponent },
];

bootstrapApplication(AppComponent, {
  providers: [
    provideZonelessChangeDetection(),
    provideRouter(routes, ...(location.hash.startsWith("#/") ? [withHashLocation()] : [])),
    provideAnalytics(config),
  ],
}).catch((e) => console.error(e));
