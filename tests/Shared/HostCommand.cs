using System.Diagnostics;

namespace Analytics.Tests.Shared;

/// <summary>
/// One run of the built `analytics` binary as a real child process, with its exit code and both
/// output streams (and, optionally, text on its standard input). The child is killed (with its tree) in finally, whatever happens, and a run
/// that outlives its timeout fails the test instead of hanging it.
/// </summary>
public static class HostCommand
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
    }

    public static string Dll => Path.Combine(AppContext.BaseDirectory, "analytics.dll");

    public static Task<Result> RunAsync(params string[] args) => RunAsync(args, environment: null);

    public static async Task<Result> RunAsync(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment, string? dll = null, int timeoutSeconds = 60,
        string? stdin = null)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        start.ArgumentList.Add(dll ?? Dll);
        foreach (var a in args) start.ArgumentList.Add(a);
        // Settings from the test runner's own environment must not leak into the run.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("ANALYTICS_", StringComparison.Ordinal)).ToList()) start.Environment.Remove(name);
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>()) start.Environment[name] = value;
        using var process = Process.Start(start)!;
        try
        {
            if (stdin is not null) await process.StandardInput.WriteAsync(stdin);
            process.StandardInput.Close();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(timeoutSeconds));
            var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
            var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
            await process.WaitForExitAsync(timeout.Token);
            return new Result(process.ExitCode, await stdout, await stderr);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync(CancellationToken.None);
            }
        }
    }
}
