using System.Text;
using Analytics.ControlPlane;
using Analytics.Store;

namespace Analytics.QueryService.Goals;

/// <summary>
/// One goal as a ClickHouse boolean condition over an <c>events_enriched</c> row (columns name,
/// pathname, props, currency): true exactly when the event completes the goal.
/// Event goals: the event's name is the goal's match. Page goals: a pageview whose path matches
/// the pattern, where <c>*</c> is any run of characters except '/', <c>**</c> any run of
/// characters, and everything else literal; the pattern becomes an anchored RE2 expression for
/// <c>match()</c> with every literal escaped. A property adds <c>props[key] = value</c> (an
/// absent property reads as ''), a revenue goal adds its currency. Every value reaches SQL through
/// <see cref="ClickHouseSql.StringLiteral"/>, so a goal's text can never change the statement.
/// </summary>
public static class GoalConditions
{
    public static string Sql(Goal goal)
    {
        var sql = new StringBuilder("(");
        if (goal.Kind == GoalKinds.Page)
            sql.Append("name = 'pageview' AND match(pathname, ").Append(ClickHouseSql.StringLiteral(PathRegex(goal.Match))).Append(')');
        else
            sql.Append("name = ").Append(ClickHouseSql.StringLiteral(goal.Match));
        if (goal.Property is { } property)
            sql.Append(" AND props[").Append(ClickHouseSql.StringLiteral(property.Key)).Append("] = ").Append(ClickHouseSql.StringLiteral(property.Value));
        if (goal.Currency is { } currency)
            sql.Append(" AND currency = ").Append(ClickHouseSql.StringLiteral(currency));
        return sql.Append(')').ToString();
    }

    /// <summary>The page pattern as an anchored RE2 expression. (?s): a path with a newline is
    /// still one path, so ** crosses it.</summary>
    public static string PathRegex(string pattern)
    {
        var re = new StringBuilder("(?s)^");
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c == '*')
            {
                bool twice = i + 1 < pattern.Length && pattern[i + 1] == '*';
                re.Append(twice ? ".*" : "[^/]*");
                if (twice) i++;
            }
            // RE2 reads a backslash before any ASCII punctuation as that character itself;
            // letters, digits and non-ASCII characters are literal as they are.
            else if (char.IsAsciiLetterOrDigit(c) || c > 127) re.Append(c);
            else if (char.IsControl(c)) re.Append(@"\x{").Append(((int)c).ToString("x", System.Globalization.CultureInfo.InvariantCulture)).Append('}');
            else if (c == ' ') re.Append(c);
            else re.Append('\\').Append(c);
        }
        return re.Append('$').ToString();
    }
}
