namespace Analytics.Store.ClickHouse;

/// <summary>Where and how to reach a ClickHouse server or cluster (HTTP interface).</summary>
public sealed record ClickHouseServerOptions
{
    /// <summary>The HTTP(S) endpoint, e.g. http://clickhouse-1:8123/ (a load balancer in front of a
    /// cluster is fine: every node accepts queries on the Distributed tables).</summary>
    public required Uri Endpoint { get; init; }

    public string User { get; init; } = "default";

    public string Password { get; init; } = "";

    /// <summary>Cluster name from the servers' remote_servers configuration; null for one server.
    /// With a cluster, migrations run ON CLUSTER (ClusterSchema) and queries use the settings
    /// that keep one merchant's statement on one shard.</summary>
    public string? Cluster { get; init; }

    /// <summary>Attempts per statement, the first included. Only transport failures and server
    /// errors that are transient by their code are retried (see ClickHouseServerStore).</summary>
    public int MaxAttempts { get; init; } = 4;

    /// <summary>Wait before the second attempt; doubles per attempt up to <see cref="MaxBackoff"/>,
    /// with ±25% jitter so retrying writers do not arrive in step.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>HTTP timeout of one attempt.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>gzip request bodies (inserts) and ask for gzip responses: worth it across a network,
    /// where RowBinary event batches compress about 5:1.</summary>
    public bool Compression { get; init; } = true;
}
