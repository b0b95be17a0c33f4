// Micro-benchmarks of the ingest hot path and its neighbours. One entry point:
//   dotnet run -c Release --project perf/Benchmarks -- --filter '*'
// CI runs `--job Dry` (each benchmark once) to prove they work; numbers come from full runs.
using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Analytics.Benchmarks.ProtobufReadBenchmarks).Assembly).Run(args);
