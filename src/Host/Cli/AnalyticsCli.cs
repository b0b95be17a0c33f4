// The `analytics` command line (System.CommandLine).
//
// Contract: every command and subcommand has --help; an unknown or misspelled option, a missing
// or bad value ends with one line on stderr naming it and exit code 2; a start-up failure (port
// taken, data directory unusable or in use, engine library missing) ends with one line and exit
// code 1; never a stack trace. `serve` is the default command, so `analytics --data DIR` serves.
// Each command group lives in its own file as an ICommandGroup and is found by reflection:
// adding a group is adding one file.
using System.CommandLine;
using System.CommandLine.Help;
using System.Reflection;

namespace Analytics.Host.Cli;

/// <summary>One group of commands (for example `sites create|list`), added to the root command.</summary>
public interface ICommandGroup
{
    /// <summary>Where the group's commands appear in `analytics --help` (lower first).</summary>
    int Order { get; }

    IEnumerable<Command> Commands();
}

public static class AnalyticsCli
{
    public const string DefaultCommand = "serve";

    public static RootCommand Build()
    {
        var root = new RootCommand(
            "Analytics: fast ingest, rollups and the metrics API in one process (serve is the default command).\n" +
            "Settings also come from ANALYTICS_<OPTION> environment variables (ANALYTICS_CLICKHOUSE_PASSWORD for\n" +
            "--clickhouse-password) and the \"Analytics\" section of appsettings.json next to the binary;\n" +
            "the command line wins over the environment, which wins over appsettings.json.");
        root.Options.Add(Settings.Data);
        var groups = typeof(AnalyticsCli).Assembly.GetTypes()
            .Where(t => t is { IsClass: true, IsAbstract: false } && typeof(ICommandGroup).IsAssignableFrom(t))
            .Select(t => (ICommandGroup)Activator.CreateInstance(t)!)
            .OrderBy(g => g.Order);
        foreach (var group in groups)
        {
            foreach (var command in group.Commands()) root.Subcommands.Add(command);
        }
        return root;
    }

    public static async Task<int> RunAsync(string[] args)
    {
        var root = Build();
        if (args.Length == 0 || (args[0].StartsWith('-') && !IsHelpOrVersion(args[0]))) args = [DefaultCommand, .. args];
        ParseResult parse;
        try
        {
            parse = root.Parse(args);
        }
        catch (Exception e)
        {
            // A value that breaks an option's own validation: still one line.
            Console.Error.WriteLine($"analytics: {StartupErrors.Describe(Unwrap(e))}");
            return 2;
        }
        if (parse.Action is not HelpAction && parse.Errors.Count > 0)
        {
            string command = string.Join(' ', Path(parse.CommandResult));
            Console.Error.WriteLine($"{command}: {Describe(parse)} (see: {command} --help)");
            return 2;
        }
        try
        {
            return await parse.InvokeAsync(new InvocationConfiguration
            {
                EnableDefaultExceptionHandler = false,
                // The web host handles SIGTERM and Ctrl+C itself (graceful stop); a second handler
                // here would cut that stop short after its timeout.
                ProcessTerminationTimeout = null,
            });
        }
        catch (Exception e) when (Unwrap(e) is UsageException usage)
        {
            Console.Error.WriteLine($"{string.Join(' ', Path(parse.CommandResult))}: {usage.Message}");
            return 2;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"{string.Join(' ', Path(parse.CommandResult))}: {StartupErrors.Describe(Unwrap(e))}");
            return 1;
        }
    }

    private static bool IsHelpOrVersion(string arg) => arg is "-h" or "-?" or "--help" or "--version";

    private static IEnumerable<string> Path(System.CommandLine.Parsing.CommandResult command)
    {
        var names = new Stack<string>();
        for (System.CommandLine.Parsing.SymbolResult? r = command; r is System.CommandLine.Parsing.CommandResult c; r = c.Parent)
            names.Push(c.Command is RootCommand ? "analytics" : c.Command.Name);
        return names;
    }

    /// <summary>The first parse error, with a suggestion when an unknown option is close to a known one.</summary>
    private static string Describe(ParseResult parse)
    {
        string? unknown = parse.UnmatchedTokens.FirstOrDefault();
        if (unknown is null) return parse.Errors[0].Message;
        if (!unknown.StartsWith('-')) return $"unknown command or argument '{unknown}'";
        var known = new List<string>();
        for (System.CommandLine.Parsing.SymbolResult? r = parse.CommandResult; r is System.CommandLine.Parsing.CommandResult c; r = c.Parent)
            known.AddRange(c.Command.Options.Select(o => o.Name));
        // A prefix of a known option (--password for --password-stdin) is the likeliest slip.
        string? closest = known.FirstOrDefault(k => k.StartsWith(unknown, StringComparison.Ordinal)) ?? known.MinBy(k => Distance(k, unknown));
        return closest is not null && (closest.StartsWith(unknown, StringComparison.Ordinal) || Distance(closest, unknown) <= 3)
            ? $"unknown option '{unknown}'; did you mean '{closest}'?"
            : $"unknown option '{unknown}'";
    }

    private static int Distance(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        for (int i = 1; i <= a.Length; i++)
        {
            var current = new int[b.Length + 1];
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            previous = current;
        }
        return previous[b.Length];
    }

    private static Exception Unwrap(Exception e)
    {
        while (e is TargetInvocationException or TypeInitializationException or AggregateException { InnerExceptions.Count: 1 } && e.InnerException is not null)
            e = e.InnerException!;
        return e;
    }
}
