// Offline checks of the Kubernetes and Istio manifests in deploy/kubernetes, for every overlay:
// each rendered object against its API schema (kubernetes-models, @kubernetes-models/istio) and
// against the fields its type declares (fields.mjs: the schemas accept unknown ones), then
// what schemas cannot see: references between objects (selectors, ports, ConfigMap and Secret
// keys, autoscaler and budget targets, Istio subsets and weights), the settings the product really
// has (ANALYTICS_* names and `serve` options read from src/Host/Cli), and the pod security rules.
// Expected values come from the manifests' own references and the product's declared options,
// never from running the product. Run: npm ci && npm test (in deploy/test).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, existsSync, mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { execFileSync } from "node:child_process";
import { isDeepStrictEqual } from "node:util";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { render, id, readYamlFile } from "./kustomize.mjs";
import { unknownFields, unresolved } from "./fields.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const kubernetesDir = join(repo, "deploy", "kubernetes");
const overlays = ["base", ...readdirSync(join(kubernetesDir, "overlays")).map((o) => `overlays/${o}`)];
const rendered = new Map(overlays.map((o) => [o, render(join(kubernetesDir, o))]));
// Created out of band, never applied with the overlays (that would overwrite the real ones):
// references from the workloads are checked against these names and keys.
const providedSecrets = readYamlFile(join(kubernetesDir, "secrets.example.yaml"));

// ---- what the product accepts, read from its command-line declarations ------------------------

const cliDir = join(repo, "src", "Host", "Cli");
const cliSources = ["ServeCommand.cs", "StoreSettings.cs", "Settings.cs"].map((f) => readFileSync(join(cliDir, f), "utf8")).join("\n");
/** `--name` of every option declared for serve (its own, the store's, --data, --control-plane). */
const serveOptions = new Set([...cliSources.matchAll(/"(--[a-z][a-z0-9-]*)"/g)].map((m) => m[1]));
/** Properties of the settings classes the options pattern binds (case ignored, no separators). */
const settingsProperties = new Set([...cliSources.matchAll(/public [\w?<>[\]]+ (\w+) \{ get; set; \}/g)].map((m) => m[1].toLowerCase()));

// ---- helpers over rendered objects -------------------------------------------------------------

const workloads = (objects) => objects.filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet");
const ofKind = (objects, kind) => objects.filter((o) => o.kind === kind);
const podSpec = (w) => w.spec.template.spec;
const allContainers = (w) => [...(podSpec(w).initContainers ?? []), ...podSpec(w).containers];
const selects = (selector, labels) => Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
const fqdn = (service) => `${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`;
const find = (objects, kind, name) => objects.find((o) => o.kind === kind && o.metadata.name === name);

/** The model module of an object: kubernetes-models for built-in kinds, @kubernetes-models/istio for Istio's. */
function modelPath(o) {
  const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
  return group.endsWith("istio.io")
    ? `@kubernetes-models/istio/${group}/${version}/${o.kind}`
    : `kubernetes-models/${group ? group + "/" : ""}${version}/${o.kind}`;
}

/** The schema class for an object. */
async function modelFor(o) {
  return (await import(modelPath(o)))[o.kind];
}

/** ANALYTICS_* names a container gets: env entries and every key of the ConfigMaps/Secrets it imports. */
function analyticsVariables(objects, container) {
  const names = (container.env ?? []).map((e) => e.name);
  for (const from of container.envFrom ?? []) {
    const source = from.configMapRef ? find(objects, "ConfigMap", from.configMapRef.name) : find(objects, "Secret", from.secretRef?.name);
    names.push(...Object.keys({ ...source?.data, ...source?.stringData }));
  }
  return names.filter((n) => n.startsWith("ANALYTICS_"));
}

// ---- the tests ---------------------------------------------------------------------------------

test("every overlay renders with only the kustomize features the renderer implements", () => {
  assert.ok(overlays.includes("overlays/single-dc") && overlays.includes("overlays/canary"), `overlays found: ${overlays.join(", ")}`);
  for (const [overlay, objects] of rendered) assert.ok(objects.length > 0, `${overlay} rendered nothing`);
});

test("the renderer produces exactly what kubectl kustomize does, where kubectl is installed", (t) => {
  try {
    execFileSync("kubectl", ["version", "--client"], { stdio: "ignore" });
  } catch {
    t.skip("kubectl is not installed here; the renderer's own checks still apply");
    return;
  }
  for (const [overlay, ours] of rendered) {
    const theirs = parseAllDocuments(execFileSync("kubectl", ["kustomize", join(kubernetesDir, overlay)], { encoding: "utf8" }), { version: "1.1" })
      .map((d) => d.toJS());
    const key = (o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`;
    assert.deepEqual(ours.map(key).sort(), theirs.map(key).sort(), `${overlay}: the same objects`);
    for (const o of ours) {
      const t2 = theirs.find((x) => key(x) === key(o));
      assert.ok(isDeepStrictEqual(JSON.parse(JSON.stringify(o)), t2), `${overlay}: ${key(o)} differs from kubectl kustomize`);
    }
  }
});

test("the field reader reports misspelled fields of Kubernetes and Istio objects that the schemas accept", async () => {
  const objects = structuredClone(rendered.get("base"));
  const deployment = find(objects, "Deployment", "analytics-ingest");
  deployment.spec.template.spec.containers[0].readynessProbe = {};
  const rule = find(objects, "DestinationRule", "analytics-ingest");
  rule.spec.trafficPolicy.outlierDetecton = {};
  const vs = find(objects, "VirtualService", "analytics");
  vs.spec.http[1].route[0].wieght = 100;
  for (const [o, field] of [[deployment, "spec.template.spec.containers[0].readynessProbe"], [rule, "spec.trafficPolicy.outlierDetecton"], [vs, "spec.http[1].route[0].wieght"]]) {
    new (await modelFor(o))(o).validate(); // the schema lets it through...
    assert.deepEqual(unknownFields(o, modelPath(o)), [field]); // ...the declarations do not
  }
});

test("the renderer refuses a kustomization field it does not implement", () => {
  const dir = mkdtempSync(join(tmpdir(), "kustomize-"));
  try {
    writeFileSync(join(dir, "kustomization.yaml"), "resources: []\nnamePrefix: x-\n");
    assert.throws(() => render(dir), /fields this renderer does not implement: namePrefix/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the example Secrets are valid, hold placeholders only, and no overlay renders a Secret", () => {
  for (const secret of providedSecrets) {
    assert.equal(secret.kind, "Secret");
    unknownFields(secret, modelPath(secret)).forEach((f) => assert.fail(`${id(secret)}: ${f}`));
    for (const [key, value] of Object.entries(secret.stringData)) assert.match(value, /REPLACE-ME/, `${id(secret)} ${key} holds a real-looking value`);
  }
  for (const [overlay, objects] of rendered) assert.deepEqual(ofKind(objects, "Secret").map(id), [], `${overlay}: kubectl apply -k would overwrite the real Secret`);
});

for (const [overlay, renderedObjects] of rendered) {
  // What the cluster holds once the overlay is applied: its objects and the Secrets created apart.
  const objects = [...renderedObjects, ...providedSecrets];
  describe(overlay, () => {
    for (const o of objects) {
      test(`${id(o)} is valid against the ${o.apiVersion} schema`, async () => {
        const Model = await modelFor(o).catch((e) => assert.fail(`no schema for ${o.apiVersion} ${o.kind}: ${e.message}`));
        new Model(o).validate();
      });
    }

    test("no object has a field its API type does not declare (a misspelled field the schemas would let through)", () => {
      const unknown = objects.flatMap((o) => unknownFields(o, modelPath(o)).map((f) => `${id(o)}: ${f}`));
      assert.deepEqual(unknown, []);
      assert.deepEqual([...unresolved], [], "types the declaration reader could not follow");
    });

    test("no two objects of one kind share a name in a namespace", () => {
      const keys = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`);
      assert.deepEqual(keys.filter((k, i) => keys.indexOf(k) !== i), []);
    });

    test("every Service selects the pods of a workload, and its target port is one of their container ports", () => {
      for (const s of ofKind(objects, "Service")) {
        const pods = workloads(objects).filter((w) => selects(s.spec.selector, w.spec.template.metadata.labels));
        assert.ok(pods.length > 0, `${id(s)} selects no pods: ${JSON.stringify(s.spec.selector)}`);
        for (const port of s.spec.ports) {
          for (const w of pods) {
            const declared = podSpec(w).containers.flatMap((c) => c.ports ?? []);
            assert.ok(declared.some((p) => p.name === port.targetPort || p.containerPort === port.targetPort),
              `${id(s)} port ${port.name} targets ${port.targetPort}, not a container port of ${id(w)}`);
          }
        }
      }
    });

    test("a workload's selector matches its own pod template", () => {
      for (const w of workloads(objects)) assert.ok(selects(w.spec.selector.matchLabels, w.spec.template.metadata.labels), id(w));
    });

    test("no workload's selector matches another workload's pods", () => {
      for (const a of workloads(objects)) {
        for (const b of workloads(objects).filter((x) => x !== a)) {
          assert.ok(!selects(a.spec.selector.matchLabels, b.spec.template.metadata.labels), `${id(a)} would adopt the pods of ${id(b)}`);
        }
      }
    });

    test("every probe's port is a declared container port, and the app has startup, readiness and liveness probes", () => {
      for (const w of workloads(objects)) {
        for (const c of podSpec(w).containers) {
          for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
            const probe = c[kind];
            assert.ok(probe, `${id(w)} container ${c.name} has no ${kind}`);
            const port = (probe.httpGet ?? probe.tcpSocket ?? probe.grpc).port;
            assert.ok((c.ports ?? []).some((p) => p.name === port || p.containerPort === port), `${id(w)} ${c.name} ${kind} uses port ${port}, not declared`);
          }
          assert.equal(c.readinessProbe.httpGet.path, "/readyz", `${id(w)} readiness`);
          assert.equal(c.livenessProbe.httpGet.path, "/livez", `${id(w)} liveness`);
        }
      }
    });

    test("every ConfigMap, Secret and key a pod references exists", () => {
      for (const w of workloads(objects)) {
        for (const c of allContainers(w)) {
          for (const from of c.envFrom ?? []) {
            if (from.configMapRef) assert.ok(find(objects, "ConfigMap", from.configMapRef.name), `${id(w)} ${c.name}: ConfigMap ${from.configMapRef.name}`);
            if (from.secretRef) assert.ok(find(objects, "Secret", from.secretRef.name), `${id(w)} ${c.name}: Secret ${from.secretRef.name}`);
          }
          for (const e of c.env ?? []) {
            const ref = e.valueFrom?.configMapKeyRef ?? e.valueFrom?.secretKeyRef;
            if (!ref) continue;
            const source = find(objects, e.valueFrom.configMapKeyRef ? "ConfigMap" : "Secret", ref.name);
            assert.ok(source, `${id(w)} ${c.name}: ${e.name} from missing ${ref.name}`);
            assert.ok(ref.key in { ...source.data, ...source.stringData }, `${id(w)} ${c.name}: ${e.name} from ${ref.name} key ${ref.key}, which it does not have`);
          }
          // Files a command reads from a mounted Secret must be keys of that Secret (globs are optional files).
          const script = [...(c.command ?? []), ...(c.args ?? [])].join(" ");
          for (const mount of c.volumeMounts ?? []) {
            const volume = podSpec(w).volumes.find((v) => v.name === mount.name);
            assert.ok(volume ?? w.spec.volumeClaimTemplates?.some((t) => t.metadata.name === mount.name), `${id(w)} ${c.name}: volume ${mount.name}`);
            if (!volume?.secret) continue;
            const secret = find(objects, "Secret", volume.secret.secretName);
            assert.ok(secret, `${id(w)}: Secret ${volume.secret.secretName}`);
            for (const m of script.matchAll(new RegExp(`${mount.mountPath}/([\\w.-]+)(?![\\w.*-])`, "g"))) {
              assert.ok(m[1] in { ...secret.data, ...secret.stringData }, `${id(w)} ${c.name} reads ${mount.mountPath}/${m[1]}, not a key of ${secret.metadata.name}`);
            }
          }
        }
      }
    });

    test("every ANALYTICS_* variable is a setting of `analytics serve` and every argument one of its options", () => {
      for (const w of workloads(objects)) {
        const app = podSpec(w).containers.find((c) => c.name === "analytics");
        assert.ok(app, `${id(w)} has no analytics container`);
        for (const name of analyticsVariables(objects, app)) {
          const suffix = name.slice("ANALYTICS_".length);
          assert.ok(serveOptions.has("--" + suffix.toLowerCase().replaceAll("_", "-")), `${id(w)}: ${name} is not an option of serve (options: ${[...serveOptions].join(" ")})`);
          assert.ok(settingsProperties.has(suffix.toLowerCase().replaceAll("_", "")), `${id(w)}: ${name} binds no settings property`);
        }
        assert.equal(app.args[0], "serve", `${id(w)} runs serve`);
        for (const arg of app.args.filter((a) => a.startsWith("--"))) assert.ok(serveOptions.has(arg), `${id(w)}: ${arg} is not an option of serve`);
        const roles = app.args[app.args.indexOf("--roles") + 1];
        assert.ok(roles.split(",").every((r) => ["ingest", "rollup", "query"].includes(r)), `${id(w)}: roles ${roles}`);
      }
    });

    test("every workload runs non-root, read-only, without capabilities, with requests and limits", () => {
      for (const w of workloads(objects)) {
        const pod = podSpec(w).securityContext ?? {};
        assert.equal(pod.runAsNonRoot, true, `${id(w)} runAsNonRoot`);
        assert.ok(pod.runAsUser > 0, `${id(w)} runAsUser`);
        assert.equal(pod.seccompProfile?.type, "RuntimeDefault", `${id(w)} seccomp`);
        for (const c of allContainers(w)) {
          const sc = c.securityContext ?? {};
          assert.equal(sc.readOnlyRootFilesystem, true, `${id(w)} ${c.name} read-only root`);
          assert.equal(sc.allowPrivilegeEscalation, false, `${id(w)} ${c.name} privilege escalation`);
          assert.deepEqual(sc.capabilities?.drop, ["ALL"], `${id(w)} ${c.name} capabilities`);
          for (const r of ["cpu", "memory"]) {
            assert.ok(c.resources?.requests?.[r] && c.resources?.limits?.[r], `${id(w)} ${c.name} ${r} request and limit`);
          }
        }
      }
    });

    test("every HorizontalPodAutoscaler targets an existing workload that leaves its replica count to it", () => {
      for (const h of ofKind(objects, "HorizontalPodAutoscaler")) {
        const ref = h.spec.scaleTargetRef;
        const target = find(objects, ref.kind, ref.name);
        assert.ok(target && target.apiVersion === ref.apiVersion, `${id(h)} targets ${ref.apiVersion} ${ref.kind}/${ref.name}, which does not exist`);
        assert.equal(target.spec.replicas, undefined, `${id(h)}: ${id(target)} sets replicas, which every apply would reset`);
        assert.ok(h.spec.minReplicas >= 2 && h.spec.minReplicas <= h.spec.maxReplicas, `${id(h)} min ${h.spec.minReplicas} max ${h.spec.maxReplicas}`);
        // Utilization targets are relative to requests: every container needs one.
        for (const m of h.spec.metrics.filter((x) => x.type === "Resource")) {
          for (const c of podSpec(target).containers) assert.ok(c.resources.requests[m.resource.name], `${id(h)}: ${c.name} has no ${m.resource.name} request`);
        }
      }
    });

    test("every PodDisruptionBudget selects pods and still lets one be evicted", () => {
      for (const p of ofKind(objects, "PodDisruptionBudget")) {
        const pods = workloads(objects).filter((w) => selects(p.spec.selector.matchLabels, w.spec.template.metadata.labels));
        assert.ok(pods.length > 0, `${id(p)} selects no pods`);
        if (p.spec.minAvailable !== undefined) {
          const total = pods.reduce((n, w) => n + (w.spec.replicas ?? 1), 0);
          assert.ok(p.spec.minAvailable < total, `${id(p)} would block every eviction`);
        } else {
          assert.ok(p.spec.maxUnavailable >= 1, `${id(p)} maxUnavailable`);
        }
      }
    });

    test("every VirtualService route goes to a Service and a subset its DestinationRule defines, weights summing to 100", () => {
      const services = new Map(ofKind(objects, "Service").map((s) => [fqdn(s), s]));
      const rules = new Map(ofKind(objects, "DestinationRule").map((d) => [d.spec.host, d]));
      for (const vs of ofKind(objects, "VirtualService")) {
        for (const gateway of vs.spec.gateways ?? []) assert.ok(find(objects, "Gateway", gateway), `${id(vs)}: gateway ${gateway}`);
        for (const route of vs.spec.http) {
          if (route.directResponse) continue;
          assert.ok(route.route?.length > 0, `${id(vs)} route ${route.name} goes nowhere`);
          const sum = route.route.reduce((n, r) => n + (r.weight ?? (route.route.length === 1 ? 100 : 0)), 0);
          assert.equal(sum, 100, `${id(vs)} route ${route.name}: weights sum to ${sum}`);
          for (const { destination } of route.route) {
            assert.ok(services.has(destination.host), `${id(vs)} route ${route.name}: no Service ${destination.host}`);
            const rule = rules.get(destination.host);
            assert.ok(rule?.spec.subsets?.some((s) => s.name === destination.subset), `${id(vs)} route ${route.name}: subset ${destination.subset} of ${destination.host} is not defined`);
          }
        }
      }
    });

    test("every subset that receives unpinned traffic has pods behind its Service", () => {
      const rules = new Map(ofKind(objects, "DestinationRule").map((d) => [d.spec.host, d]));
      const services = new Map(ofKind(objects, "Service").map((s) => [fqdn(s), s]));
      for (const vs of ofKind(objects, "VirtualService")) {
        for (const route of vs.spec.http.filter((r) => r.route && !(r.match ?? []).some((m) => m.headers))) {
          for (const { destination, weight } of route.route.filter((r) => (r.weight ?? 100) > 0)) {
            const subset = rules.get(destination.host).spec.subsets.find((s) => s.name === destination.subset);
            const service = services.get(destination.host);
            const pods = workloads(objects).filter((w) =>
              selects(service.spec.selector, w.spec.template.metadata.labels) && selects(subset.labels, w.spec.template.metadata.labels));
            assert.ok(pods.length > 0, `${id(vs)} route ${route.name} sends ${weight}% to ${destination.subset} of ${destination.host}, which has no pods`);
          }
        }
      }
    });

    test("WebSocket ingest routes have no timeout and the ingest pool's idle timeout outlasts the server's 10-minute silence limit", () => {
      const vs = find(objects, "VirtualService", "analytics");
      const ws = vs.spec.http.filter((r) => r.match?.some((m) => m.uri?.prefix === "/v1/ws"));
      assert.ok(ws.length > 0, "a route for /v1/ws");
      for (const r of ws) assert.equal(r.timeout, "0s", `route ${r.name}`);
      const idle = find(objects, "DestinationRule", "analytics-ingest").spec.trafficPolicy.connectionPool.http.idleTimeout;
      assert.ok(parseInt(idle, 10) > 600, `idle timeout ${idle}`);
    });

    test("mTLS is STRICT in the namespace and every DestinationRule uses Istio's certificates", () => {
      const peer = ofKind(objects, "PeerAuthentication");
      assert.ok(peer.some((p) => p.spec.mtls.mode === "STRICT" && !p.spec.selector), "a namespace-wide STRICT PeerAuthentication");
      for (const d of ofKind(objects, "DestinationRule")) assert.equal(d.spec.trafficPolicy?.tls?.mode, "ISTIO_MUTUAL", id(d));
    });
  });
}

test("canary: v2 Deployments of ingest and query exist beside v1, and each gets 10% of unpinned traffic", () => {
  const objects = rendered.get("overlays/canary");
  for (const role of ["ingest", "query"]) {
    const v1 = find(objects, "Deployment", `analytics-${role}`);
    const v2 = find(objects, "Deployment", `analytics-${role}-v2`);
    assert.equal(v1.spec.template.metadata.labels.version, "v1");
    assert.equal(v2.spec.template.metadata.labels.version, "v2");
    assert.notEqual(v1.spec.template.spec.containers[0].image, v2.spec.template.spec.containers[0].image, `${role}: v2 runs another image`);
  }
  const vs = find(objects, "VirtualService", "analytics");
  const unpinned = vs.spec.http.filter((r) => r.route && !(r.match ?? []).some((m) => m.headers));
  assert.equal(unpinned.length, 3);
  for (const r of unpinned) assert.deepEqual(r.route.map((d) => [d.destination.subset, d.weight]), [["v1", 90], ["v2", 10]], `route ${r.name}`);
});

test("single-dc: every unpinned route sends all traffic to v1", () => {
  const vs = find(rendered.get("overlays/single-dc"), "VirtualService", "analytics");
  for (const r of vs.spec.http.filter((x) => x.route && !(x.match ?? []).some((m) => m.headers))) {
    assert.deepEqual(r.route.map((d) => [d.destination.subset, d.weight]), [["v1", 100], ["v2", 0]], `route ${r.name}`);
  }
});

test("multi-dc: one Rollup per topic, the site's own and the mirrored one, each in a consumer group of its own", () => {
  const objects = rendered.get("overlays/multi-dc");
  const config = find(objects, "ConfigMap", "analytics-config").data;
  const rollups = ofKind(objects, "StatefulSet").map((s) => {
    const env = Object.fromEntries((podSpec(s).containers[0].env ?? []).map((e) => [e.name, e.value]));
    return [s.metadata.name, env.ANALYTICS_KAFKA_TOPIC ?? config.ANALYTICS_KAFKA_TOPIC, env.ANALYTICS_CONSUMER_GROUP ?? config.ANALYTICS_CONSUMER_GROUP];
  });
  assert.deepEqual(rollups.sort(), [
    ["analytics-rollup", "analytics.events", "rollup"],
    ["analytics-rollup-from-dc1", "dc1.analytics.events", "rollup-from-dc1"],
  ]);
});

test("the Dockerfile runs the analytics binary as the user the pods run as, with the data the ConfigMap names", () => {
  const dockerfile = readFileSync(join(repo, "deploy", "docker", "Dockerfile"), "utf8");
  const user = Number(/^USER (\d+)/m.exec(dockerfile)?.[1]);
  for (const w of workloads(rendered.get("overlays/single-dc"))) assert.equal(podSpec(w).securityContext.runAsUser, user, id(w));
  const config = find(rendered.get("base"), "ConfigMap", "analytics-config").data;
  for (const key of ["ANALYTICS_ENRICHMENT_DATA", "ANALYTICS_AGENT_JS"]) {
    const dir = config[key].split("/").slice(0, 4).join("/");
    assert.ok(dockerfile.includes(dir), `${key} (${config[key]}): ${dir} is not filled by the Dockerfile`);
  }
  assert.ok(/ENTRYPOINT \["dotnet", "\/opt\/analytics\/app\/analytics\.dll"\]/.test(dockerfile), "ENTRYPOINT runs analytics.dll");
  assert.ok(existsSync(join(repo, "deploy", "docker", "build.sh")));
});
