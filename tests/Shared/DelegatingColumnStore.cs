using System.Text.Json;
using Analytics.Store;

namespace Analytics.Tests.Shared;

/// <summary>
/// A store that passes every call to a real one. A test derives from it and overrides only what it
/// watches or breaks (records statements, fails one), so the rest reaches the real engine as the
/// product sent it. <see cref="Starting"/> sees every call first, for a test that watches them all.
/// </summary>
public abstract class DelegatingColumnStore(IColumnStore inner) : IColumnStore
{
    protected IColumnStore Inner { get; } = inner;

    /// <summary>Called before each call reaches the inner store, with its SQL (for a RowBinary
    /// insert, "INSERT INTO " and the table); throwing here fails the call before the engine sees it.</summary>
    protected virtual void Starting(string statement)
    {
    }

    public virtual Task ExecuteAsync(string sql, CancellationToken cancellationToken = default)
    {
        Starting(sql);
        return Inner.ExecuteAsync(sql, cancellationToken);
    }

    public virtual Task<IReadOnlyList<JsonElement[]>> QueryRowsAsync(string sql, CancellationToken cancellationToken = default)
    {
        Starting(sql);
        return Inner.QueryRowsAsync(sql, cancellationToken);
    }

    public virtual Task<IReadOnlyList<JsonElement[]>> QueryRowsAsync(string sql, KeyRows keys, CancellationToken cancellationToken = default)
    {
        Starting(sql);
        return Inner.QueryRowsAsync(sql, keys, cancellationToken);
    }

    public virtual Task<T> QueryRowBinaryAsync<T>(string sql, RowBinaryRead<T> read, CancellationToken cancellationToken = default)
    {
        Starting(sql);
        return Inner.QueryRowBinaryAsync(sql, read, cancellationToken);
    }

    public virtual Task<long> InsertRowBinaryAsync(string table, string columnsWithTypes, ReadOnlyMemory<byte> rowBinary,
        string? deduplicationToken = null, CancellationToken cancellationToken = default)
    {
        Starting("INSERT INTO " + table);
        return Inner.InsertRowBinaryAsync(table, columnsWithTypes, rowBinary, deduplicationToken, cancellationToken);
    }
}
