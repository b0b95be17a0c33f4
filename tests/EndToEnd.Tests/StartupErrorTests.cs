using System.Net;
using System.Net.Sockets;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Start-up mistakes, made for real against the built binary: each run must end with a non-zero
/// exit code and exactly one line on stderr that names the problem, with no stack frame. The
/// cases fail even as root (the tests run as root): a taken port, a data directory that is a
/// file or lies below one, a directory held by a running server, a missing or unloadable engine
/// library.
/// </summary>
public class StartupErrorTests
{
    private static string NewPath(string name) => Path.Combine(Path.GetTempPath(), $"analytics-startup-{name}-{Guid.NewGuid():N}");

    private static void AssertOneLine(HostCommand.Result result, int exitCode, params string[] mentions)
    {
        Assert.True(result.ExitCode == exitCode, result.ToString());
        Assert.True(result.StderrLines.Length == 1, result.ToString());
        Assert.DoesNotContain("   at ", result.Stderr + result.Stdout);
        foreach (string mention in mentions) Assert.Contains(mention, result.Stderr);
    }

    [Fact]
    public async Task A_port_already_in_use_is_one_line_naming_the_address()
    {
        using var occupant = new TcpListener(IPAddress.Loopback, 0);
        occupant.Start();
        int port = ((IPEndPoint)occupant.LocalEndpoint).Port;
        string data = NewPath("port");
        try
        {
            var result = await HostCommand.RunAsync("serve", "--data", data, "--urls", $"http://127.0.0.1:{port}", "--quiet");
            AssertOneLine(result, 1, $"127.0.0.1:{port}", "address already in use", "--urls");
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task A_data_directory_that_is_a_file_is_refused()
    {
        string file = NewPath("file");
        await File.WriteAllTextAsync(file, "not a directory", TestContext.Current.CancellationToken);
        try
        {
            var result = await HostCommand.RunAsync("serve", "--data", file, "--urls", "http://127.0.0.1:0");
            AssertOneLine(result, 1, file, "is a file, not a directory");
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_data_directory_below_a_file_is_refused()
    {
        string file = NewPath("parent");
        await File.WriteAllTextAsync(file, "not a directory", TestContext.Current.CancellationToken);
        try
        {
            var result = await HostCommand.RunAsync("serve", "--data", Path.Combine(file, "data"), "--urls", "http://127.0.0.1:0");
            AssertOneLine(result, 1, file + " is a file");
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_data_directory_held_by_a_running_server_is_refused_and_the_first_keeps_running()
    {
        string data = NewPath("inuse");
        var first = new ServerProcess(data, Ports.Free());
        try
        {
            await first.StartAsync();
            var second = await HostCommand.RunAsync("serve", "--data", data, "--urls", "http://127.0.0.1:0");
            AssertOneLine(second, 1, data, "in use by another running analytics process");
            // Embedded migrate opens the same engine files: refused the same way.
            var migrate = await HostCommand.RunAsync("migrate", "--data", data);
            AssertOneLine(migrate, 1, "in use by another running analytics process");
            Assert.True(first.IsRunning, "the first server must not be disturbed");
        }
        finally
        {
            first.Kill();
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task An_engine_library_path_that_points_nowhere_is_one_line_naming_the_variable()
    {
        string data = NewPath("nolib");
        try
        {
            var result = await HostCommand.RunAsync(["serve", "--data", data, "--urls", "http://127.0.0.1:0"],
                new Dictionary<string, string?> { ["CHDB_LIB_PATH"] = "/nowhere/libchdb.so" });
            AssertOneLine(result, 1, "CHDB_LIB_PATH", "/nowhere/libchdb.so", "scripts/fetch-chdb.sh");
        }
        finally
        {
            if (Directory.Exists(data)) Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task An_engine_library_that_does_not_load_is_one_line()
    {
        string data = NewPath("badlib");
        string notALibrary = NewPath("libchdb") + ".so";
        await File.WriteAllTextAsync(notALibrary, "not an ELF file", TestContext.Current.CancellationToken);
        try
        {
            var result = await HostCommand.RunAsync(["serve", "--data", data, "--urls", "http://127.0.0.1:0"],
                new Dictionary<string, string?> { ["CHDB_LIB_PATH"] = notALibrary });
            AssertOneLine(result, 1, "ClickHouse engine library could not be loaded", notALibrary);
        }
        finally
        {
            File.Delete(notALibrary);
            if (Directory.Exists(data)) Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task A_clickhouse_server_that_does_not_answer_is_one_line_naming_it()
    {
        string data = NewPath("noserver");
        int port = Ports.Free(); // nothing listens there
        try
        {
            var result = await HostCommand.RunAsync("migrate", "--data", data, "--store", "clickhouse", "--clickhouse-url", $"http://127.0.0.1:{port}");
            AssertOneLine(result, 1, $"ClickHouse at http://127.0.0.1:{port}", "could not be reached");
        }
        finally
        {
            if (Directory.Exists(data)) Directory.Delete(data, recursive: true);
        }
    }

    [Theory]
    [InlineData("--log", "kafka", "--kafka-bootstrap")]
    [InlineData("--store", "clickhouse", "--clickhouse-url")]
    [InlineData("--roles", "ingest,reporting", "roles 'ingest,reporting'")]
    [InlineData("--logic-version", "9", "logic version 9 is unknown")]
    [InlineData("--urls", "http://example.com", "urls 'http://example.com'")]
    [InlineData("--clickhouse-url", "notaurl", "--clickhouse-url 'notaurl'")]
    [InlineData("--edge-purge-url", "http://127.0.0.1:6081/,varnish:6081", "--edge-purge-url 'varnish:6081'")]
    [InlineData("--retention-raw", "10x", "--retention-raw: '10x' is not a period")]
    [InlineData("--retention-day", "0d", "--retention-day: '0d' is out of range")]
    [InlineData("--retention-hour", "60y", "--retention-hour: '60y' is out of range")]
    public async Task An_inconsistent_setting_exits_2_before_anything_opens(string option, string value, string mention)
    {
        string data = NewPath("setting");
        var result = await HostCommand.RunAsync("serve", "--data", data, option, value);
        AssertOneLine(result, 2, mention);
        Assert.False(Directory.Exists(data), "nothing may be created for a command that was called wrong");
    }
}
