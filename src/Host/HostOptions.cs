namespace Analytics.Host;

/// <summary>Command line of the embedded host: `analytics [serve|sites|demo-traffic] [--option value]…`.</summary>
public sealed class CommandLine
{
    private readonly Dictionary<string, string> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    public CommandLine(string[] args)
    {
        var positional = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal)) { positional.Add(args[i]); continue; }
            string name = args[i][2..];
            int eq = name.IndexOf('=');
            if (eq >= 0) _options[name[..eq]] = name[(eq + 1)..];
            else if (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal)) _options[name] = args[++i];
            else _flags.Add(name);
        }
        Positional = positional;
    }

    public IReadOnlyList<string> Positional { get; }

    public string Get(string name, string fallback) =>
        _options.TryGetValue(name, out var v) ? v : Environment.GetEnvironmentVariable("ANALYTICS_" + name.ToUpperInvariant().Replace('-', '_')) ?? fallback;

    public string? Get(string name) => _options.TryGetValue(name, out var v) ? v : Environment.GetEnvironmentVariable("ANALYTICS_" + name.ToUpperInvariant().Replace('-', '_'));

    public bool Flag(string name) => _flags.Contains(name) || _options.ContainsKey(name);

    public int GetInt(string name, int fallback) => int.TryParse(Get(name), out int v) ? v : fallback;
}
