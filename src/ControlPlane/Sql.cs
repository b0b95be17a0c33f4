using System.Data.Common;

namespace Analytics.ControlPlane;

/// <summary>ADO.NET helpers shared by both backends (named parameters as @name work in both providers).</summary>
internal static class Sql
{
    public static DbCommand Command(DbConnection db, DbTransaction? tx, string sql, params (string Name, object? Value)[] parameters)
    {
        var cmd = db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = name;
            p.Value = value ?? DBNull.Value;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    public static int Execute(DbConnection db, DbTransaction? tx, string sql, params (string Name, object? Value)[] parameters)
    {
        using var cmd = Command(db, tx, sql, parameters);
        return cmd.ExecuteNonQuery();
    }

    public static object? Scalar(DbConnection db, DbTransaction? tx, string sql, params (string Name, object? Value)[] parameters)
    {
        using var cmd = Command(db, tx, sql, parameters);
        var value = cmd.ExecuteScalar();
        return value is DBNull ? null : value;
    }

    public static List<T> Rows<T>(DbConnection db, DbTransaction? tx, Func<DbDataReader, T> map, string sql, params (string Name, object? Value)[] parameters)
    {
        using var cmd = Command(db, tx, sql, parameters);
        using var reader = cmd.ExecuteReader();
        var rows = new List<T>();
        while (reader.Read()) rows.Add(map(reader));
        return rows;
    }

    public static long Long(this DbDataReader r, int i) => Convert.ToInt64(r.GetValue(i), System.Globalization.CultureInfo.InvariantCulture);

    public static DateTimeOffset Time(this DbDataReader r, int i) => DateTimeOffset.FromUnixTimeMilliseconds(r.Long(i));

    public static DateTimeOffset? OptionalTime(this DbDataReader r, int i) => r.IsDBNull(i) ? null : r.Time(i);

    public static long Millis(DateTimeOffset time) => time.ToUnixTimeMilliseconds();
}
