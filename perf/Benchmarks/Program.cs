// Micro-benchmarks of the ingest hot path and its neighbours. One entry point:
//   dotnet run -c Release --project perf/Benchmarks -- --filter '*'
// CI runs `--job Dry --inProcess` (each benchmark once, via perf/run-all.sh --smoke) to prove they
// work; numbers come from full runs. Exit code 1 when nothing ran (unless only listing or asking
// for help) or any benchmark failed (an exception in its setup or body), so a smoke run cannot
// pass with a broken benchmark.
using BenchmarkDotNet.Running;

var summaries = BenchmarkSwitcher.FromAssembly(typeof(Analytics.Benchmarks.ProtobufReadBenchmarks).Assembly).Run(args).ToList();
bool onlyListing = args.Any(a => a is "--list" or "--help" or "-h" or "-?" or "--info" or "--version");
bool ok = (summaries.Count > 0 || onlyListing) && summaries.All(s => !s.HasCriticalValidationErrors && s.Reports.Length > 0 && s.Reports.All(r => r.Success));
return ok ? 0 : 1;
