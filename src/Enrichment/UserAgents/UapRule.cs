using System.Buffers;
using System.Text;
using System.Text.RegularExpressions;

namespace Analytics.Enrichment.UserAgents;

/// <summary>
/// One rule of uap-core's <c>regexes.yaml</c>: a regex and up to five replacement templates.
/// The semantics are uap-core's specification (docs/specification.md of the release we pin):
/// rules are tried in file order, the first match wins, matching is case-sensitive and unanchored
/// unless the rule says <c>regex_flag: 'i'</c>. Field <c>k</c> of a result is its replacement
/// template when the rule has one, with <c>$1</c>…<c>$9</c> replaced by the matching group (empty
/// when that group did not take part), else capture group <c>k</c>; results are trimmed and an
/// empty result is "not defined" (null). Applying the <c>$N</c> substitution to every template
/// (not only <c>$1</c> in the family, as the first reference parser did) is what the device
/// rules need and changes nothing for the others, whose version templates are plain literals.
/// </summary>
internal sealed class UapRule
{
    private readonly Regex _regex;
    private readonly string?[] _templates;
    private readonly string? _requiredLiteral;
    private readonly SearchValues<string>? _requiredOneOf;
    private readonly StringComparison _literalComparison;

    public UapRule(Regex regex, string pattern, string?[] templates)
    {
        _regex = regex;
        _templates = templates;
        _literalComparison = (regex.Options & RegexOptions.IgnoreCase) != 0 ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        _requiredLiteral = RequiredLiteral.Find(pattern);
        if (_requiredLiteral is null && RequiredLiteral.FindAlternatives(pattern) is { } oneOf)
            _requiredOneOf = SearchValues.Create(oneOf, _literalComparison);
    }

    public bool HasPrefilter => _requiredLiteral is not null || _requiredOneOf is not null;

    /// <summary>The regex's match, or a failed match without running it when the rule's required text is absent.</summary>
    public Match Match(string input)
    {
        if (_requiredLiteral is not null ? !input.Contains(_requiredLiteral, _literalComparison)
            : _requiredOneOf is not null && !input.AsSpan().ContainsAny(_requiredOneOf))
            return System.Text.RegularExpressions.Match.Empty;
        return _regex.Match(input);
    }

    /// <summary>Field <paramref name="index"/> (0-based; the family is 0) of a successful match.</summary>
    public string? Field(Match match, int index, int defaultGroup)
    {
        string? template = index < _templates.Length ? _templates[index] : null;
        string value = template is null ? Group(match, defaultGroup) : Substitute(template, match);
        value = value.Trim();
        return value.Length == 0 ? null : value;
    }

    private static string Group(Match match, int group) =>
        group < match.Groups.Count && match.Groups[group].Success ? match.Groups[group].Value : "";

    private static string Substitute(string template, Match match)
    {
        int dollar = template.IndexOf('$');
        if (dollar < 0) return template;
        var sb = new StringBuilder(template.Length + 16);
        for (int i = 0; i < template.Length; i++)
        {
            char c = template[i];
            if (c == '$' && i + 1 < template.Length && template[i + 1] is >= '1' and <= '9')
            {
                sb.Append(Group(match, template[i + 1] - '0'));
                i++;
            }
            else
            {
                sb.Append(c);
            }
        }
        return sb.ToString();
    }
}
