// Coverage-guided fuzz targets for what parses hostile input, run under libFuzzer through
// SharpFuzz (docs/security.md, "Fuzzing", fuzz/run.sh).
//
// Contract of every target: any input whatsoever is answered (parsed, refused with the status
// the endpoint maps to a 4xx) without an exception escaping and without breaking the target's
// own invariants (a frame read consumes what it reports, never more than it was given); an
// exception is a crash that libFuzzer saves as a reproducer.
//
//   Analytics.Fuzz TARGET            run under fuzz/driver/libfuzzer-dotnet (the driver sets the IPC)
//   Analytics.Fuzz TARGET --seed DIR write the target's seed corpus (valid inputs) into DIR
// Saved inputs are replayed through the driver too (fuzz/run.sh --replay): the instrumented
// assemblies write coverage into SharpFuzz's shared memory, which exists only under it.
using Analytics.Fuzz;
using SharpFuzz;

string[] names = ["frames", "batch", "validator", "query"];
if (args.Length == 0 || !names.Contains(args[0]))
{
    Console.Error.WriteLine($"usage: Analytics.Fuzz TARGET [--seed DIR]; targets: {string.Join(", ", names)}");
    return 2;
}
if (args.Length == 3 && args[1] == "--seed")
{
    Directory.CreateDirectory(args[2]);
    int n = 0;
    foreach (var (name, bytes) in Seeds.For(args[0]))
    {
        File.WriteAllBytes(Path.Combine(args[2], name), bytes);
        n++;
    }
    Console.WriteLine($"{args[0]}: {n} seeds in {args[2]}");
    return 0;
}
if (Environment.GetEnvironmentVariable("__LIBFUZZER_SHM_ID") is null)
{
    Console.Error.WriteLine("Analytics.Fuzz: not under libfuzzer-dotnet (no __LIBFUZZER_SHM_ID): use fuzz/run.sh TARGET SECONDS, or fuzz/run.sh --replay TARGET FILE");
    return 2;
}
Fuzzer.LibFuzzer.Run(Targets.For(args[0]));
return 0;
