using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Analytics.Tests.Shared;

/// <summary>
/// A throwaway PostgreSQL cluster owned by the test run: initdb into a temp directory, start it
/// on a free loopback port with its socket in that directory, stop it and delete everything on
/// Dispose (and at process exit, should Dispose never run). Needs Debian's postgresql package
/// (binaries under /usr/lib/postgresql/VERSION/bin); no system service is used. As root the
/// binaries run as the postgres user (postgres refuses to run as root). fsync is off: the
/// cluster lives only as long as the tests. Link this file into a test project with
/// <c>&lt;Compile Include="../Shared/PostgresServer.cs" /&gt;</c> and use one instance per
/// assembly or class; <see cref="CreateDatabase"/> gives each test class its own database.
/// </summary>
public sealed class PostgresServer : IDisposable
{
    private readonly string _bin;
    private readonly string _directory;
    private readonly bool _asPostgresUser;
    private int _stopped;

    public PostgresServer()
    {
        _bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin"))
                .Where(d => File.Exists(Path.Combine(d, "initdb"))).OrderByDescending(d => d, StringComparer.Ordinal).FirstOrDefault() ?? ""
            : "";
        if (_bin.Length == 0)
            throw new InvalidOperationException("PostgreSQL is not installed: apt-get install -y postgresql (test.sh does this).");
        _asPostgresUser = Environment.UserName == "root";
        _directory = Path.Combine(Path.GetTempPath(), "analytics-pg-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
        string data = Path.Combine(_directory, "data");
        try
        {
            if (_asPostgresUser) Run("chown", "postgres:postgres", _directory);
            Port = FreePort();
            Run(Path.Combine(_bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync");
            Run(Path.Combine(_bin, "pg_ctl"), "-D", data, "-l", Path.Combine(_directory, "server.log"), "-w", "-t", "60",
                "-o", $"-p {Port} -k {_directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", "start");
            AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int Port { get; private set; }

    /// <summary>A new empty database; returns its connection string.</summary>
    public string CreateDatabase(string prefix = "t")
    {
        string name = prefix + "_" + Guid.NewGuid().ToString("N");
        using (var db = new NpgsqlConnection(ConnectionString("postgres")))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = $"CREATE DATABASE \"{name}\"";
            cmd.ExecuteNonQuery();
        }
        return ConnectionString(name);
    }

    public string ConnectionString(string database) =>
        new NpgsqlConnectionStringBuilder { Host = "127.0.0.1", Port = Port, Username = "postgres", Database = database, Timeout = 10 }.ToString();

    private void Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(_asPostgresUser && program != "chown" ? "runuser" : program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = _directory,
        };
        if (_asPostgresUser && program != "chown")
        {
            foreach (var a in new[] { "-u", "postgres", "--", program }) start.ArgumentList.Add(a);
        }
        foreach (var a in arguments) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(90)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} did not finish in 90 s");
        }
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{Path.GetFileName(program)} exited with {process.ExitCode}: {stderr.Result}{stdout.Result}{ServerLog()}");
    }

    private string ServerLog()
    {
        string log = Path.Combine(_directory, "server.log");
        try { return File.Exists(log) ? "\nserver.log:\n" + File.ReadAllText(log) : ""; } catch (IOException) { return ""; }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private void OnProcessExit(object? sender, EventArgs e) => Dispose();

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0) return;
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        NpgsqlConnection.ClearAllPools();
        string data = Path.Combine(_directory, "data");
        try
        {
            if (File.Exists(Path.Combine(data, "postmaster.pid")))
                Run(Path.Combine(_bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "-t", "30", "stop");
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or System.ComponentModel.Win32Exception)
        {
            // Still delete the directory: a server without its data directory exits on its own.
        }
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
