using System.Text;
using Analytics.ControlPlane;
using Analytics.Store;

namespace Analytics.QueryService.Goals;

/// <summary>
/// A goal as a ClickHouse condition over one row of events_enriched (columns by their own
/// names: name, pathname…). Contract: the condition is true exactly for the events that complete
/// the goal: an event goal on an event of that name, a page goal on a pageview whose path
/// matches (<c>*</c> any characters except '/', <c>**</c> any characters, everything else
/// literal, the whole path). The goal's text reaches SQL only through
/// <see cref="ClickHouseSql.StringLiteral"/>.
/// </summary>
public static class GoalConditions
{
    public static string Sql(Goal goal) => goal.Kind switch
    {
        GoalKinds.Page => $"(name = 'pageview' AND match(pathname, {ClickHouseSql.StringLiteral(PathPattern(goal.Match))}))",
        _ => $"(name = {ClickHouseSql.StringLiteral(goal.Match)})",
    };

    /// <summary>The page pattern as an anchored RE2 expression.</summary>
    private static string PathPattern(string match)
    {
        var re = new StringBuilder("^");
        for (int i = 0; i < match.Length; i++)
        {
            char c = match[i];
            if (c == '*')
            {
                bool twice = i + 1 < match.Length && match[i + 1] == '*';
                re.Append(twice ? ".*" : "[^/]*");
                if (twice) i++;
            }
            else if (char.IsAsciiLetterOrDigit(c) || c is '/' or '-' or '_' or '~' or '%')
            {
                re.Append(c);
            }
            else
            {
                // RE2 takes \x{...} for any code point: no character of a path can break out.
                int codePoint = char.IsHighSurrogate(c) && i + 1 < match.Length ? char.ConvertToUtf32(c, match[++i]) : c;
                re.Append(@"\x{").Append(codePoint.ToString("X", System.Globalization.CultureInfo.InvariantCulture)).Append('}');
            }
        }
        return re.Append('$').ToString();
    }
}
