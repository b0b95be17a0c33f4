using System.Collections.Concurrent;
using System.Diagnostics;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// A helper process of a test topology (HAProxy, the Kafka mock cluster, Prometheus, Varnish):
/// output collected, the first stdout line available, killed (SIGKILL, whole tree) on Dispose
/// and, should the test run end first, on the runner's ProcessExit. Nothing outlives its test.
/// </summary>
public sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly TaskCompletionSource<string> _firstLine = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _stopped;

    private ChildProcess(Process process) => _process = process;

    public ConcurrentQueue<string> Output { get; } = new();
    public bool HasExited => _process.HasExited;

    /// <summary>The last lines of its output, for a failing test's message.</summary>
    public string Log => string.Join('\n', Output.TakeLast(30));

    public static ChildProcess Start(string program, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;
        var child = new ChildProcess(Process.Start(start) ?? throw new InvalidOperationException($"could not start {program}"));
        AppDomain.CurrentDomain.ProcessExit += child.OnProcessExit;
        string name = Path.GetFileName(program);
        child._process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            child._firstLine.TrySetResult(e.Data);
            child.Output.Enqueue(e.Data);
        };
        child._process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            child.Output.Enqueue(e.Data);
            TestContext.Current.TestOutputHelper?.WriteLine($"{name}: {e.Data}");
        };
        child._process.Exited += (_, _) => child._firstLine.TrySetException(new InvalidOperationException($"{name} exited: {string.Join(" | ", child.Output)}"));
        child._process.EnableRaisingEvents = true;
        child._process.BeginOutputReadLine();
        child._process.BeginErrorReadLine();
        return child;
    }

    /// <summary>The first line on stdout (the Kafka mock prints its bootstrap servers there).</summary>
    public Task<string> FirstLineAsync(TimeSpan timeout) => _firstLine.Task.WaitAsync(timeout, TestContext.Current.CancellationToken);

    /// <summary>
    /// Polls <paramref name="ready"/> every 100 ms until it holds; fails at once with the output
    /// if the process exits, and after 30 s otherwise.
    /// </summary>
    public async Task WaitUntilAsync(Func<Task<bool>> ready, string what, CancellationToken ct)
    {
        string name = Path.GetFileName(_process.StartInfo.FileName);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited) throw new InvalidOperationException($"{name} exited with {_process.ExitCode}:\n{Log}");
            if (await ready()) return;
            await Task.Delay(100, ct);
        }
        throw new TimeoutException($"{name} was not {what} within 30 s:\n{Log}");
    }

    /// <summary>A free loopback port (for a program that must be told its port before it starts).</summary>
    public static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1) return;
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
    }

    private void OnProcessExit(object? sender, EventArgs e) => Dispose();
}
