// A small kustomize renderer for the overlays in deploy/kubernetes, so the tests need no kustomize
// binary (none is packaged for this machine's Debian beyond kubernetes-client 1.20's old copy).
//
// Contract: render(dir) returns the objects `kustomize build dir` (kustomize v5) produces, for
// the subset of kustomization fields these manifests use: resources (files and directories),
// namespace, nameSuffix, labels (with includeSelectors), images, replicas, and patches (strategic
// merge of a whole object, or JSON 6902 operations with a target). Any other field, or a feature
// used where this renderer would get it wrong (nameSuffix over objects others refer to by name),
// throws, so the manifests cannot quietly outgrow it. Output order is not kustomize's; callers
// compare sets of objects. YAML is read as YAML 1.1, as Kubernetes reads it (0400 is octal).
import { readFileSync, statSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseAllDocuments } from "yaml";

const SUPPORTED = new Set(["apiVersion", "kind", "resources", "namespace", "nameSuffix", "labels", "images", "replicas", "patches"]);
const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume", "StorageClass"]);
const WORKLOADS = new Set(["Deployment", "StatefulSet"]);

/** Every YAML document of a file, as plain objects (YAML 1.1, like Kubernetes). */
export function readYamlFile(path) {
  return parseAllDocuments(readFileSync(path, "utf8"), { version: "1.1" })
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors[0].message}`);
      return doc.toJS();
    })
    .filter((value) => value !== null && value !== undefined);
}

/** Renders the kustomization in `dir` (kustomization.yaml) to a list of objects. */
export function render(dir) {
  const file = join(dir, "kustomization.yaml");
  if (!existsSync(file)) throw new Error(`${dir}: no kustomization.yaml`);
  const [k] = readYamlFile(file);
  const unknown = Object.keys(k).filter((key) => !SUPPORTED.has(key));
  if (unknown.length > 0) throw new Error(`${file}: fields this renderer does not implement: ${unknown.join(", ")}`);

  let objects = [];
  for (const entry of k.resources ?? []) {
    const path = resolve(dir, entry);
    objects.push(...(statSync(path).isDirectory() ? render(path) : readYamlFile(path)));
  }
  // kustomize's order of built-in transformers: patches, namespace, name prefix/suffix, labels,
  // replicas, images.
  for (const patch of k.patches ?? []) objects = applyPatch(dir, objects, patch);
  if (k.namespace) {
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }
  if (k.nameSuffix) {
    const referable = objects.filter((o) => !WORKLOADS.has(o.kind));
    if (referable.length > 0)
      throw new Error(`${file}: nameSuffix over ${referable.map(id).join(", ")}: references to them would need renaming, which this renderer does not do`);
    for (const o of objects) o.metadata.name += k.nameSuffix;
  }
  for (const label of k.labels ?? []) addLabels(file, objects, label);
  for (const { name, count } of k.replicas ?? []) {
    const targets = objects.filter((o) => WORKLOADS.has(o.kind) && o.metadata.name === name);
    if (targets.length === 0) throw new Error(`${file}: replicas for ${name}, which is not a Deployment or StatefulSet here`);
    for (const o of targets) o.spec.replicas = count;
  }
  for (const image of k.images ?? []) setImage(objects, image);
  return objects;
}

export const id = (o) => `${o.kind}/${o.metadata?.name}`;

function applyPatch(dir, objects, patch) {
  const text = patch.path ? readFileSync(resolve(dir, patch.path), "utf8") : patch.patch;
  const docs = parseAllDocuments(text, { version: "1.1" }).map((d) => d.toJS());
  if (docs.length !== 1) throw new Error(`${dir}: a patch must be one YAML document`);
  const [body] = docs;
  if (Array.isArray(body)) {
    // JSON 6902: a target names the objects.
    const t = patch.target ?? {};
    const targets = objects.filter((o) =>
      (!t.kind || o.kind === t.kind) && (!t.name || o.metadata.name === t.name) &&
      (!t.group || o.apiVersion.split("/")[0] === t.group) && (!t.version || o.apiVersion.split("/").at(-1) === t.version));
    if (targets.length === 0) throw new Error(`${dir}: JSON patch target ${JSON.stringify(t)} matches nothing`);
    for (const o of targets) for (const op of body) jsonPatch(o, op);
    return objects;
  }
  if (patch.target) throw new Error(`${dir}: a strategic-merge patch with a target is not implemented`);
  const targets = objects.filter((o) => o.kind === body.kind && o.metadata.name === body.metadata.name);
  if (targets.length !== 1) throw new Error(`${dir}: patch ${id(body)} matches ${targets.length} objects`);
  return objects.map((o) => (o === targets[0] ? strategicMerge(o, body) : o));
}

function jsonPatch(object, { op, path, value }) {
  const keys = path.split("/").slice(1).map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
  const last = keys.pop();
  let parent = object;
  for (const key of keys) {
    if (parent?.[key] === undefined) throw new Error(`JSON patch ${op} ${path}: ${key} does not exist in ${id(object)}`);
    parent = parent[key];
  }
  if (op === "replace") {
    if (!(last in parent)) throw new Error(`JSON patch replace ${path}: nothing to replace in ${id(object)}`);
    parent[last] = value;
  } else if (op === "add") {
    if (Array.isArray(parent)) parent.splice(last === "-" ? parent.length : Number(last), 0, value);
    else parent[last] = value;
  } else if (op === "remove") {
    if (!(last in parent)) throw new Error(`JSON patch remove ${path}: nothing to remove in ${id(object)}`);
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete parent[last];
  } else {
    throw new Error(`JSON patch op ${op} is not implemented`);
  }
}

/** Maps merge key by key (null deletes); lists of named objects merge by name; other lists are replaced. */
function strategicMerge(base, patch) {
  if (patch === null) return undefined;
  if (Array.isArray(patch)) {
    if (!Array.isArray(base) || !patch.every((p) => p && typeof p === "object" && "name" in p)) return structuredClone(patch);
    const merged = base.map((b) => {
      const p = patch.find((x) => x.name === b.name);
      return p ? strategicMerge(b, p) : b;
    });
    return merged.concat(patch.filter((p) => !base.some((b) => b.name === p.name)));
  }
  if (typeof patch !== "object" || typeof base !== "object" || base === null || Array.isArray(base)) return structuredClone(patch);
  const out = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    const merged = strategicMerge(base[key], value);
    if (merged === undefined) delete out[key];
    else out[key] = merged;
  }
  return out;
}

function addLabels(file, objects, { pairs, includeSelectors, ...rest }) {
  if (Object.keys(rest).length > 0) throw new Error(`${file}: labels options not implemented: ${Object.keys(rest).join(", ")}`);
  for (const o of objects) {
    o.metadata.labels = { ...o.metadata.labels, ...pairs };
    if (!includeSelectors) continue;
    if (!WORKLOADS.has(o.kind)) throw new Error(`${file}: labels with selectors on ${id(o)} are not implemented`);
    // kustomize's field specs for a workload's selector, pod template, spread constraints and
    // (StatefulSet) volume claim templates.
    o.spec.selector.matchLabels = { ...o.spec.selector.matchLabels, ...pairs };
    o.spec.template.metadata.labels = { ...o.spec.template.metadata.labels, ...pairs };
    for (const t of o.spec.volumeClaimTemplates ?? []) t.metadata.labels = { ...t.metadata.labels, ...pairs };
    for (const c of o.spec.template.spec.topologySpreadConstraints ?? []) {
      if (c.labelSelector?.matchLabels) c.labelSelector.matchLabels = { ...c.labelSelector.matchLabels, ...pairs };
    }
  }
}

function setImage(objects, { name, newName, newTag, ...rest }) {
  if (Object.keys(rest).length > 0) throw new Error(`images options not implemented: ${Object.keys(rest).join(", ")}`);
  for (const o of objects.filter((x) => WORKLOADS.has(x.kind))) {
    const spec = o.spec.template.spec;
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      const [image, tag] = splitImage(c.image);
      if (image !== name) continue;
      c.image = `${newName ?? image}${newTag ? ":" + newTag : tag ? ":" + tag : ""}`;
    }
  }
}

function splitImage(image) {
  const colon = image.lastIndexOf(":");
  return colon > image.lastIndexOf("/") ? [image.slice(0, colon), image.slice(colon + 1)] : [image, ""];
}
