// Loads the agent's TypeScript sources for unit tests: esbuild bundles one module to a temporary
// ES module, which is imported. Tests run against the same source the builds use.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as esbuild from "esbuild";
import protobuf from "protobufjs";

const agentsDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export async function loadSource(module) {
  const out = await esbuild.build({
    entryPoints: [join(agentsDir, "packages", "agent", "src", `${module}.ts`)],
    bundle: true,
    format: "esm",
    target: "es2020",
    write: false,
  });
  const dir = mkdtempSync(join(tmpdir(), "agent-unit-"));
  const file = join(dir, `${module}.mjs`);
  writeFileSync(file, out.outputFiles[0].text);
  try {
    return await import(pathToFileURL(file).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The independent decoder: protobufjs loading the repository's schemas/events.proto. */
export const schema = protobuf.loadSync(join(agentsDir, "..", "schemas", "events.proto"));
export const EventBatch = schema.lookupType("analytics.v1.EventBatch");
export const Ack = schema.lookupType("analytics.v1.Ack");

/** A decoded EventBatch as plain values (64-bit integers as strings, bytes as Buffers). */
export const decodeBatch = (bytes) =>
  EventBatch.toObject(EventBatch.decode(bytes), { longs: String, defaults: true, arrays: true });

export const encodeAck = (fields) => Ack.encode(Ack.fromObject(fields)).finish();
