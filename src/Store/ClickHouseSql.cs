// Quoting helpers for building ClickHouse SQL text. Values that come from outside should be
// passed as literals produced here; identifiers (database, table, column names) are validated or
// back-quoted, never pasted in raw.
using System.Text;

namespace Analytics.Store;

public static class ClickHouseSql
{
    /// <summary>Arbitrary bytes as a ClickHouse string literal: '\xNN' for every byte.</summary>
    public static string BytesLiteral(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder(bytes.Length * 4 + 2);
        sb.Append('\'');
        foreach (byte b in bytes) sb.Append(@"\x").Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
        return sb.Append('\'').ToString();
    }

    /// <summary>A single-quoted string literal; backslash and quote are escaped, as ClickHouse's
    /// lexer requires, and control characters are escaped so the literal stays on one line.</summary>
    public static string StringLiteral(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var sb = new StringBuilder(value.Length + 2);
        sb.Append('\'');
        foreach (var c in value)
        {
            switch (c)
            {
                case '\\': sb.Append(@"\\"); break;
                case '\'': sb.Append(@"\'"); break;
                case '\n': sb.Append(@"\n"); break;
                case '\r': sb.Append(@"\r"); break;
                case '\t': sb.Append(@"\t"); break;
                case '\0': sb.Append(@"\0"); break;
                default: sb.Append(c); break;
            }
        }
        return sb.Append('\'').ToString();
    }

    /// <summary>A back-quoted identifier (`name`), for names that are not plain identifiers.</summary>
    public static string QuoteIdentifier(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return "`" + name.Replace("\\", @"\\", StringComparison.Ordinal).Replace("`", @"\`", StringComparison.Ordinal) + "`";
    }

    /// <summary>True for [A-Za-z_][A-Za-z0-9_]* up to 128 characters: safe to paste unquoted.</summary>
    public static bool IsPlainIdentifier(ReadOnlySpan<char> name)
    {
        if (name.IsEmpty || name.Length > 128 || char.IsAsciiDigit(name[0]))
            return false;
        foreach (var c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '_')
                return false;
        }
        return true;
    }

    /// <summary>Throws unless <paramref name="name"/> is a plain identifier.</summary>
    public static string RequirePlainIdentifier(string name, string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!IsPlainIdentifier(name))
            throw new ArgumentException($"'{name}' is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most 128 characters).", paramName ?? nameof(name));
        return name;
    }

    /// <summary>A table reference "table" or "db.table" with each part a plain identifier.</summary>
    public static string RequireTableName(string table, string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(table);
        var dot = table.IndexOf('.', StringComparison.Ordinal);
        var ok = dot < 0
            ? IsPlainIdentifier(table)
            : IsPlainIdentifier(table.AsSpan(0, dot)) && IsPlainIdentifier(table.AsSpan(dot + 1));
        if (!ok)
            throw new ArgumentException($"'{table}' is not a table name of the form table or database.table with plain identifiers.", paramName ?? nameof(table));
        return table;
    }

    /// <summary>Whether a statement answers with a result set: anything but a statement whose
    /// first keyword (after spaces, comments and opening parentheses) names one that never does
    /// (CREATE, INSERT, ALTER, SET, …), and but an empty one. The engine prints a query's JSON
    /// output (meta, data) even when it has no rows, so empty output from one is a failure, never
    /// "no rows". Unknown forms count as queries on purpose (FROM t SELECT, CHECK TABLE, KILL): a
    /// wrong guess that way is an error a caller sees, the other way silent zeros.</summary>
    public static bool ReturnsResultSet(string sql) => FirstKeyword(sql) is { Length: > 0 } keyword && !NoResultSet.Contains(keyword);

    private static readonly HashSet<string> NoResultSet = new(StringComparer.OrdinalIgnoreCase)
    {
        "CREATE", "ALTER", "DROP", "UNDROP", "INSERT", "DELETE", "UPDATE", "TRUNCATE", "RENAME", "EXCHANGE", "ATTACH", "DETACH",
        "OPTIMIZE", "SYSTEM", "SET", "USE", "GRANT", "REVOKE", "BEGIN", "COMMIT", "ROLLBACK", "MOVE",
    };

    /// <summary>The statement's first word (ASCII letters), after spaces, the engine's comments
    /// (<c>--</c> and <c>#</c> to the end of the line, <c>/* */</c> nested) and opening
    /// parentheses; "" when there is none.</summary>
    internal static string FirstKeyword(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        var rest = sql.AsSpan();
        while (true)
        {
            rest = rest.TrimStart();
            if (rest.StartsWith("--") || rest.StartsWith("#"))
            {
                var end = rest.IndexOf('\n');
                rest = end < 0 ? [] : rest[(end + 1)..];
            }
            else if (rest.StartsWith("/*"))
                rest = AfterBlockComment(rest);
            else if (rest.StartsWith("("))
                rest = rest[1..];
            else
                break;
        }
        var length = 0;
        while (length < rest.Length && char.IsAsciiLetter(rest[length])) length++;
        return rest[..length].ToString();
    }

    private static ReadOnlySpan<char> AfterBlockComment(ReadOnlySpan<char> rest)
    {
        var depth = 0;
        for (var i = 0; i + 1 < rest.Length; i++)
        {
            if (rest[i] == '/' && rest[i + 1] == '*')
            {
                depth++;
                i++;
            }
            else if (rest[i] == '*' && rest[i + 1] == '/')
            {
                if (--depth == 0) return rest[(i + 2)..];
                i++;
            }
        }
        return [];
    }

    /// <summary>Column names of a structure string such as "id UInt64, tags Map(String, String)":
    /// splits at top-level commas (not inside parentheses or quotes) and takes each part's first
    /// token, which may be back-quoted. Returns them ready to paste (plain or back-quoted).</summary>
    public static IReadOnlyList<string> ColumnNames(string columnsWithTypes)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(columnsWithTypes);
        return [.. SplitTopLevel(columnsWithTypes).Select(part => FirstToken(part, columnsWithTypes))];
    }

    /// <summary>Splits "a, b(c, d), e" at commas outside parentheses and quotes; parts are trimmed
    /// (an empty part stays, as ""). Throws on unbalanced parentheses or quotes.</summary>
    public static IReadOnlyList<string> SplitTopLevel(string text)
    {
        var parts = new List<string>();
        var depth = 0;
        char quote = '\0';
        var start = 0;
        for (var i = 0; i <= text.Length; i++)
        {
            var c = i < text.Length ? text[i] : ',';
            if (quote != '\0')
            {
                if (c == '\\') i++;
                else if (c == quote) quote = '\0';
                continue;
            }
            switch (c)
            {
                case '\'' or '`' or '"': quote = c; break;
                case '(': depth++; break;
                case ')': depth--; break;
                case ',' when depth == 0:
                    parts.Add(text.AsSpan(start, i - start).Trim().ToString());
                    start = i + 1;
                    break;
            }
        }
        if (depth != 0 || quote != '\0')
            throw new ArgumentException($"Unbalanced parentheses or quotes in '{text}'.", nameof(text));
        return parts;
    }

    private static string FirstToken(ReadOnlySpan<char> part, string whole)
    {
        part = part.Trim();
        if (part.Length > 0 && part[0] == '`')
        {
            for (var i = 1; i < part.Length; i++)
            {
                if (part[i] == '\\') { i++; continue; }
                if (part[i] == '`')
                    return part[..(i + 1)].ToString();
            }
        }
        else
        {
            var end = part.IndexOfAny(' ', '\t', '\n');
            var name = end < 0 ? part : part[..end];
            if (end > 0 && IsPlainIdentifier(name))
                return name.ToString();
        }
        throw new ArgumentException($"Cannot read a column name and type from '{part}' in '{whole}'.", nameof(whole));
    }
}
