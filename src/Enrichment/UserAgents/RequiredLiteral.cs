using System.Text;

namespace Analytics.Enrichment.UserAgents;

/// <summary>
/// A prefilter for data-driven regexes: the longest run of literal text that every match of a
/// pattern must contain, found by reading the pattern's top level. A rule whose literal is not in
/// the input cannot match, so it is skipped without entering the regex engine; for uap-core's
/// ~1,200 rules, most of which fail on a given user agent, that is most of the parse cost.
///
/// Conservative by construction: only characters outside any group, class or escape sequence
/// with a meaning count, a quantifier that allows zero repetitions removes the character before
/// it, and a pattern with a top-level alternation has no required literal (null). Such patterns
/// may still have a required group of plain-text alternatives (<see cref="FindAlternatives"/>).
/// The uap-core test files (17,992 cases, all passing) check that no match is filtered away.
/// </summary>
internal static class RequiredLiteral
{
    /// <summary>Literal runs shorter than this are not worth a substring search before the regex.</summary>
    private const int MinimumLength = 3;

    public static string? Find(string pattern)
    {
        string best = "";
        var run = new StringBuilder();
        int depth = 0;
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c == '\\' && i + 1 < pattern.Length)
            {
                char next = pattern[i + 1];
                i++;
                // Escapes that consume more characters (\x41, \u0041, \p{L}, \cA, \k<n>, \0nn)
                // would leave those characters looking literal: give up on such patterns.
                if (next is 'x' or 'u' or 'p' or 'P' or 'c' or 'k' or '0') return null;
                if (depth == 0 && !char.IsAsciiLetterOrDigit(next))
                {
                    // An escaped punctuation character is itself ("\.", "\/", "\(", "\ ").
                    AppendLiteral(run, next, pattern, i, ref best);
                }
                else if (depth == 0)
                {
                    // \d, \s, \b, \1...: not literal text.
                    Close(run, ref best);
                }
                continue;
            }
            switch (c)
            {
                case '(':
                    depth++;
                    Close(run, ref best);
                    if (depth == 1 && i + 2 < pattern.Length && pattern[i + 1] == '?' && pattern[i + 2] is 'i' or '-' or 's' or 'm' or 'x' && LooksLikeInlineOptions(pattern, i))
                    {
                        // "(?i)" and friends change how the rest matches: give up on the literal.
                        return null;
                    }
                    break;
                case ')':
                    depth--;
                    Close(run, ref best);
                    break;
                case '|' when depth == 0:
                    return null;
                case '[':
                    Close(run, ref best);
                    i = SkipClass(pattern, i);
                    break;
                case '.' or '^' or '$':
                    if (depth == 0) Close(run, ref best);
                    break;
                case '*' or '+' or '?' or '{':
                    // Reached only right after a group, class or escape (AppendLiteral handles a
                    // quantifier after a literal character); nothing to take back.
                    if (depth == 0) Close(run, ref best);
                    if (c == '{') i = SkipTo(pattern, i, '}');
                    break;
                default:
                    if (depth == 0) AppendLiteral(run, c, pattern, i, ref best);
                    break;
            }
        }
        Close(run, ref best);
        return best.Length >= MinimumLength ? best : null;
    }

    /// <summary>
    /// For a pattern without a required literal: texts of which every match must contain one,
    /// taken from a top-level group (or the whole pattern) that is an alternation, one text per
    /// alternative (the alternative itself when it is plain text, else its own required literal),
    /// as in <c>(Googlebot|bingbot|Accoona-[A-z]{1,30}-Agent)/(\d+)</c> → Googlebot, bingbot,
    /// Accoona-. Null when there is no such group, when an alternative has no such text (or one
    /// shorter than 2 characters), or when the group may repeat zero times.
    /// </summary>
    public static string[]? FindAlternatives(string pattern)
    {
        if (TopLevelSplit(pattern) is { Count: > 1 } whole) return RequiredPerAlternative(whole);
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c == '\\') { i++; continue; }
            if (c == '[') { i = SkipClass(pattern, i); continue; }
            if (c != '(') continue;
            int close = MatchingParen(pattern, i);
            if (close < 0) return null;
            char after = close + 1 < pattern.Length ? pattern[close + 1] : '\0';
            bool optional = after is '?' or '*' || (after == '{' && RepeatMinimumIsZero(pattern, close + 1));
            string body = pattern[(i + 1)..close];
            if (body.StartsWith("?:", StringComparison.Ordinal)) body = body[2..];
            else if (body.StartsWith('?')) body = ""; // lookaround, named group, inline options
            if (!optional && body.Length > 0 && TopLevelSplit(body) is { } parts && RequiredPerAlternative(parts) is { } found) return found;
            i = close;
        }
        return null;
    }

    /// <summary>The text a pattern matches when it has no regex syntax besides escaped punctuation; else null.</summary>
    public static string? PlainText(string pattern)
    {
        var sb = new StringBuilder(pattern.Length);
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c == '\\')
            {
                if (i + 1 >= pattern.Length || char.IsAsciiLetterOrDigit(pattern[i + 1])) return null;
                sb.Append(pattern[++i]);
            }
            else if (c is '.' or '^' or '$' or '*' or '+' or '?' or '(' or ')' or '[' or ']' or '{' or '}' or '|')
            {
                return null;
            }
            else
            {
                sb.Append(c);
            }
        }
        return sb.Length == 0 ? null : sb.ToString();
    }

    private static string[]? RequiredPerAlternative(List<string> parts)
    {
        var result = new string[parts.Count];
        for (int i = 0; i < parts.Count; i++)
        {
            string? text = PlainText(parts[i]) is { Length: >= 2 } plain ? plain : Find(parts[i]);
            if (text is null) return null;
            result[i] = text;
        }
        return result;
    }

    // Splits at '|' outside groups and classes; null when parentheses do not balance.
    private static List<string>? TopLevelSplit(string pattern)
    {
        var parts = new List<string>();
        int depth = 0, start = 0;
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c == '\\') { i++; continue; }
            if (c == '[') { i = SkipClass(pattern, i); continue; }
            if (c == '(') depth++;
            else if (c == ')' && --depth < 0) return null;
            else if (c == '|' && depth == 0)
            {
                parts.Add(pattern[start..i]);
                start = i + 1;
            }
        }
        if (depth != 0) return null;
        parts.Add(pattern[start..]);
        return parts;
    }

    private static int MatchingParen(string pattern, int open)
    {
        int depth = 0;
        for (int i = open; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c == '\\') { i++; continue; }
            if (c == '[') { i = SkipClass(pattern, i); continue; }
            if (c == '(') depth++;
            else if (c == ')' && --depth == 0) return i;
        }
        return -1;
    }

    // Adds a literal character, unless the quantifier after it allows zero repetitions (then the
    // run ends without it). After "+" or "{n,}" (n ≥ 1) the character is required once but the
    // run still ends, as what follows need not come right after one copy.
    private static void AppendLiteral(StringBuilder run, char c, string pattern, int at, ref string best)
    {
        char next = at + 1 < pattern.Length ? pattern[at + 1] : '\0';
        if (next is '?' or '*' || (next == '{' && RepeatMinimumIsZero(pattern, at + 1)))
        {
            Close(run, ref best);
            return;
        }
        run.Append(c);
        if (next is '+' or '{') Close(run, ref best);
    }

    private static bool RepeatMinimumIsZero(string pattern, int brace)
    {
        int i = brace + 1;
        while (i < pattern.Length && pattern[i] == ' ') i++;
        return i < pattern.Length && pattern[i] == '0' && (i + 1 >= pattern.Length || pattern[i + 1] is ',' or '}');
    }

    private static void Close(StringBuilder run, ref string best)
    {
        if (run.Length > best.Length) best = run.ToString();
        run.Clear();
    }

    private static int SkipClass(string pattern, int open)
    {
        int i = open + 1;
        if (i < pattern.Length && pattern[i] == '^') i++;
        if (i < pattern.Length && pattern[i] == ']') i++; // a leading ']' is literal
        for (; i < pattern.Length; i++)
        {
            if (pattern[i] == '\\') i++;
            else if (pattern[i] == ']') return i;
        }
        return pattern.Length;
    }

    private static int SkipTo(string pattern, int from, char end)
    {
        int i = pattern.IndexOf(end, from);
        return i < 0 ? pattern.Length : i;
    }

    private static bool LooksLikeInlineOptions(string pattern, int open)
    {
        for (int i = open + 2; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c is ')' or ':') return true;
            if (c is not ('i' or 'm' or 's' or 'x' or 'n' or '-')) return false;
        }
        return false;
    }
}
